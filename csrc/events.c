/*
 * Decoding one Event from its protobuf bytes: wall_time, step, and each
 * Summary.Value's tag with its simple_value (float32) or rank-0 tensor (every dtype a
 * scalar can have, in tensor_content or the typed *_val fields), with the plugin name
 * the scalars-plugin rules need. Anything protobuf would read another way (merged
 * repeated messages, a oneof whose last member wins, invalid UTF-8, SessionLogs,
 * hparams) is a FALLBACK: Python decodes that record with TensorBoard's classes, so
 * both readers give the same points.
 */

enum { DECODED = 0, FALLBACK = 1, NO_MEMORY = -1 };

/* Point flags: what Python needs to apply the scalars-plugin rules per tag. */
enum { HAS_VALUE = 1, PLUGIN_SCALARS = 2, PLUGIN_OTHER = 4, SIMPLE = 8 };
#define PLAIN (SIMPLE | HAS_VALUE)

typedef struct {
    int64_t step;
    double wall, value;
    int32_t tag;
    int8_t flags;
} Point;

/* Where decoded points go: columns in record order. */
typedef struct {
    Buf steps, walls, values, tags, flags;
    size_t points; /* points emitted */
    int unusual;   /* a point with flags other than PLAIN was emitted */
} Out;

/* Appends a point to the columns. */
static int collect_point(Out *out, const Point *p) {
    if (!buf_push(&out->steps, &p->step, 8) || !buf_push(&out->walls, &p->wall, 8) ||
        !buf_push(&out->values, &p->value, 8) || !buf_push(&out->tags, &p->tag, 4) ||
        !buf_push(&out->flags, &p->flags, 1))
        return NO_MEMORY;
    out->unusual |= p->flags != PLAIN;
    out->points++;
    return DECODED;
}

/* Takes back the points of a record handed over to Python after all. */
static void collect_rollback(Out *out, size_t kept) {
    out->steps.used = out->walls.used = out->values.used = kept * 8;
    out->tags.used = kept * 4;
    out->flags.used = kept;
    out->points = kept;
}

static void out_free(Out *out) {
    free(out->steps.data); free(out->walls.data); free(out->values.data);
    free(out->tags.data); free(out->flags.data);
}

/* Reads SummaryMetadata; returns PLUGIN_SCALARS/PLUGIN_OTHER when it names a plugin, 0
   when not, -1 when protobuf would refuse it. *hparams is set for the hparams plugin,
   whose records Python decodes itself. Repeated plugin_data fields merge, as in protobuf. */
static int plugin_of(const unsigned char *p, const unsigned char *end, int *hparams) {
    int seen = 0;
    const unsigned char *name = (const unsigned char *)"";
    uint64_t name_len = 0;
    while (p < end) {
        uint64_t k, n;
        if (!read_key(&p, end, &k)) return -1;
        if (k == ((1 << 3) | 2)) {
            if (!read_len(&p, end, &n)) return -1;
            const unsigned char *d = p, *d_end = p + n;
            seen = 1;
            while (d < d_end) {
                uint64_t dk, m;
                if (!read_key(&d, d_end, &dk)) return -1;
                if (dk == ((1 << 3) | 2)) {
                    if (!read_len(&d, d_end, &m) || !valid_utf8(d, m)) return -1;
                    name = d; name_len = m; d += m;
                } else if (!skip(&d, d_end, (int)(dk & 7))) {
                    return -1;
                }
            }
            p = d_end;
        } else if (k == ((2 << 3) | 2) || k == ((3 << 3) | 2)) { /* display_name, description */
            if (!read_len(&p, end, &n) || !valid_utf8(p, n)) return -1;
            p += n;
        } else if (!skip(&p, end, (int)(k & 7))) {
            return -1;
        }
    }
    *hparams = name_len == 7 && memcmp(name, "hparams", 7) == 0;
    if (!seen) return 0;
    return (name_len == 0 || (name_len == 7 && memcmp(name, "scalars", 7) == 0))
               ? PLUGIN_SCALARS : PLUGIN_OTHER;
}

static double half_to_double(uint32_t h) {
    uint32_t sign = (h >> 15) & 1, exponent = (h >> 10) & 0x1F, mantissa = h & 0x3FF;
    double v;
    if (exponent == 0) v = ldexp((double)mantissa, -24);
    else if (exponent == 31) {
        if (mantissa) { /* a NaN keeps its payload, as numpy widens it */
            uint64_t bits = (uint64_t)sign << 63 | 0x7FF0000000000000ull | (uint64_t)mantissa << 42;
            memcpy(&v, &bits, 8);
            return v;
        }
        v = INFINITY;
    }
    else v = ldexp((double)(mantissa | 0x400), (int)exponent - 25);
    return sign ? -v : v;
}

static double bfloat16_to_double(uint32_t bits) {
    uint32_t wide = bits << 16;
    float f;
    memcpy(&f, &wide, 4);
    return (double)f;
}

/* TensorFlow DataType values */
enum { DT_FLOAT = 1, DT_DOUBLE = 2, DT_INT32 = 3, DT_UINT8 = 4, DT_INT16 = 5, DT_INT8 = 6,
       DT_INT64 = 9, DT_BOOL = 10, DT_BFLOAT16 = 14, DT_UINT16 = 17, DT_HALF = 19,
       DT_UINT32 = 22, DT_UINT64 = 23 };

/* The first element of a repeated numeric field, packed (wire 2) or not: 1, 0 when none,
   -1 when protobuf would refuse the field (a packed run of partial items, say). */
static int first_of(const unsigned char **p, const unsigned char *end, int wire, int fixed,
                    uint64_t *out) {
    uint64_t n;
    const unsigned char *q = *p;
    if (wire == 2) {
        if (!read_len(&q, end, &n)) return -1;
        const unsigned char *packed_end = q + n;
        int ok = 0;
        if (fixed) {
            if (n % (uint64_t)fixed) return -1;
            if (n) { *out = fixed == 4 ? le32(q) : le64(q); ok = 1; }
        } else {
            for (const unsigned char *r = q; r < packed_end; ok = 1) {
                uint64_t item;
                if (!varint(&r, packed_end, &item)) return -1;
                if (!ok) *out = item;
            }
        }
        *p = packed_end;
        return ok;
    }
    if (fixed == 4 && wire == 5) { if (end - q < 4) return -1; *out = le32(q); *p = q + 4; return 1; }
    if (fixed == 8 && wire == 1) { if (end - q < 8) return -1; *out = le64(q); *p = q + 8; return 1; }
    if (fixed == 0 && wire == 0) { if (!varint(&q, end, out)) return -1; *p = q; return 1; }
    return skip(p, end, wire) ? 0 : -1;
}

/* Counts the dims of a TensorShapeProto; -1 when protobuf would refuse it. */
static int shape_rank(const unsigned char *s, const unsigned char *s_end) {
    int rank = 0;
    while (s < s_end) {
        uint64_t sk, n;
        if (!read_key(&s, s_end, &sk)) return -1;
        if (sk == ((2 << 3) | 2)) { /* a Dim: size 1, name 2 */
            if (!read_len(&s, s_end, &n)) return -1;
            for (const unsigned char *d = s, *d_end = s + n; d < d_end;) {
                uint64_t dk, m;
                if (!read_key(&d, d_end, &dk)) return -1;
                if (dk == ((2 << 3) | 2)) {
                    if (!read_len(&d, d_end, &m) || !valid_utf8(d, m)) return -1;
                    d += m;
                } else if (!skip(&d, d_end, (int)(dk & 7))) {
                    return -1;
                }
            }
            s += n;
            rank++;
        } else if (!skip(&s, s_end, (int)(sk & 7))) {
            return -1;
        }
    }
    return rank;
}

/* Decodes a rank-0 numeric TensorProto like tbexport.protobuf_events.tensor_number:
   1 with a value, 0 without, -1 when protobuf would refuse the tensor. */
static int tensor_scalar(const unsigned char *p, const unsigned char *end, double *value) {
    int64_t dtype = 0;
    int rank = 0;
    const unsigned char *content = NULL;
    uint64_t content_len = 0;
    /* first element of each typed field: float 5, double 6, int 7, int64 10, bool 11,
       half 13, uint32 16, uint64 17 */
    uint64_t first[18] = {0};
    int have[18] = {0};
    while (p < end) {
        uint64_t k, n;
        if (!read_key(&p, end, &k)) return -1;
        int field = (int)(k >> 3), wire = (int)(k & 7);
        if (field == 1 && wire == 0) { /* an enum: protobuf keeps the low 32 bits, signed */
            if (!varint(&p, end, &n)) return -1;
            dtype = (int64_t)(int32_t)(uint32_t)n;
        } else if (field == 2 && wire == 2) {
            if (!read_len(&p, end, &n)) return -1;
            int dims = shape_rank(p, p + n);
            if (dims < 0) return -1;
            rank += dims;
            p += n;
        } else if (field == 4 && wire == 2) { /* bytes: the last one wins */
            if (!read_len(&p, end, &n)) return -1;
            content = n ? p : NULL;
            content_len = n;
            p += n;
        } else if (field == 5 || field == 6 || field == 7 || field == 10 || field == 11 ||
                   field == 13 || field == 16 || field == 17) {
            int fixed = field == 5 ? 4 : field == 6 ? 8 : 0;
            uint64_t v;
            int got = first_of(&p, end, wire, fixed, &v);
            if (got < 0) return -1;
            if (got && !have[field]) { have[field] = 1; first[field] = v; }
        } else if ((field == 9 || field == 12) && wire == 2) { /* packed complex values */
            if (!read_len(&p, end, &n) || n % (field == 9 ? 4u : 8u)) return -1;
            p += n;
        } else if (field == 14 || field == 15) { /* resource handles, variants */
            return -1;
        } else if (!skip(&p, end, wire)) {
            return -1;
        }
    }
    if (rank != 0) return 0;
    if (content) {
        const unsigned char *c = content;
        switch (dtype) {
        case DT_FLOAT: { if (content_len < 4) return 0; uint32_t b = le32(c); float f; memcpy(&f, &b, 4); *value = f; return 1; }
        case DT_DOUBLE: { if (content_len < 8) return 0; uint64_t b = le64(c); memcpy(value, &b, 8); return 1; }
        case DT_INT32: if (content_len < 4) return 0; *value = (double)(int32_t)le32(c); return 1;
        case DT_UINT8: *value = (double)c[0]; return 1;
        case DT_INT16: if (content_len < 2) return 0; *value = (double)(int16_t)(c[0] | (c[1] << 8)); return 1;
        case DT_INT8: *value = (double)(int8_t)c[0]; return 1;
        case DT_INT64: if (content_len < 8) return 0; *value = (double)(int64_t)le64(c); return 1;
        case DT_BOOL: *value = c[0] ? 1.0 : 0.0; return 1;
        case DT_HALF: if (content_len < 2) return 0; *value = half_to_double((uint32_t)(c[0] | (c[1] << 8))); return 1;
        case DT_UINT16: if (content_len < 2) return 0; *value = (double)(c[0] | (c[1] << 8)); return 1;
        case DT_UINT32: if (content_len < 4) return 0; *value = (double)le32(c); return 1;
        case DT_UINT64: if (content_len < 8) return 0; *value = (double)le64(c); return 1;
        case DT_BFLOAT16: if (content_len < 2) return 0; *value = bfloat16_to_double((uint32_t)(c[0] | (c[1] << 8))); return 1;
        default: return 0;
        }
    }
    switch (dtype) {
    case DT_FLOAT: if (!have[5]) return 0; { uint32_t b = (uint32_t)first[5]; float f; memcpy(&f, &b, 4); *value = f; } return 1;
    case DT_DOUBLE: if (!have[6]) return 0; memcpy(value, &first[6], 8); return 1;
    case DT_INT32: case DT_UINT8: case DT_INT16: case DT_INT8: case DT_UINT16:
        if (!have[7]) return 0;
        *value = (double)(int32_t)(int64_t)first[7];
        return 1;
    case DT_INT64: if (!have[10]) return 0; *value = (double)(int64_t)first[10]; return 1;
    case DT_UINT32: if (!have[16]) return 0; *value = (double)(uint32_t)first[16]; return 1;
    case DT_UINT64: if (!have[17]) return 0; *value = (double)first[17]; return 1;
    case DT_BOOL: if (!have[11]) return 0; *value = first[11] ? 1.0 : 0.0; return 1;
    case DT_HALF: if (!have[13]) return 0; *value = half_to_double((uint32_t)first[13] & 0xFFFF); return 1;
    case DT_BFLOAT16: if (!have[13]) return 0; *value = bfloat16_to_double((uint32_t)first[13] & 0xFFFF); return 1;
    default: return 0;
    }
}

/* The tag under which SummaryWriter.add_hparams writes: Python decodes those values. */
#define HPARAMS_TAG "_hparams_/session_start_info"

/* Decodes one Event. Points go to `out`; FALLBACK asks Python to decode the record:
   anything protobuf would refuse or read another way (merged repeated messages, a
   oneof whose last member wins), SessionLogs, hparams. */
static int decode_event(const unsigned char *p, const unsigned char *end, Tags *tags, Out *out) {
    double wall = 0.0;
    int64_t step = 0;
    const unsigned char *summary = NULL, *summary_end = NULL;
    while (p < end) {
        uint64_t key, n;
        if (!read_key(&p, end, &key)) return FALLBACK;
        int field = (int)(key >> 3), wire = (int)(key & 7);
        if (field == 1 && wire == 1) {
            if (end - p < 8) return FALLBACK;
            uint64_t bits = le64(p);
            memcpy(&wall, &bits, 8);
            p += 8;
        } else if (field == 2 && wire == 0) {
            if (!varint(&p, end, &n)) return FALLBACK;
            step = (int64_t)n;
        } else if (field == 5 && wire == 2) {
            if (!read_len(&p, end, &n)) return FALLBACK;
            if (summary) return FALLBACK; /* a repeated message field would merge */
            summary = p;
            summary_end = p + n;
            p += n;
        } else if ((field == 3 || field == 4 || field == 9) && wire == 2) {
            /* another member of the oneof: after a summary, it would clear it */
            if (summary || !read_len(&p, end, &n)) return FALLBACK;
            if (field == 3 && !valid_utf8(p, n)) return FALLBACK;
            p += n;
        } else if (field == 10 && wire == 2) { /* SourceMetadata: writer, a string (1) */
            if (!read_len(&p, end, &n)) return FALLBACK;
            for (const unsigned char *q = p, *q_end = p + n; q < q_end;) {
                uint64_t k, m;
                if (!read_key(&q, q_end, &k)) return FALLBACK;
                if (k == ((1 << 3) | 2)) {
                    if (!read_len(&q, q_end, &m) || !valid_utf8(q, m)) return FALLBACK;
                    q += m;
                } else if (!skip(&q, q_end, (int)(k & 7))) {
                    return FALLBACK;
                }
            }
            p += n;
        } else if (field <= 10) {
            return FALLBACK; /* SessionLog and other messages, or an unexpected wire type */
        } else if (!skip(&p, end, wire)) {
            return FALLBACK;
        }
    }
    if (!summary) return DECODED;
    /* Emit every simple_value, and every tensor value with its plugin flags. Anything
       protobuf would read another way hands the record over instead: its points
       are taken back. */
    size_t kept = out->points;
#define BAIL()                       \
    do {                             \
        collect_rollback(out, kept); \
        return FALLBACK;             \
    } while (0)
    for (const unsigned char *v = summary; v < summary_end;) {
        uint64_t key, n;
        if (!read_key(&v, summary_end, &key)) BAIL();
        if (key != ((1 << 3) | 2)) { if (!skip(&v, summary_end, (int)(key & 7))) BAIL(); continue; }
        if (!read_len(&v, summary_end, &n)) BAIL();
        const unsigned char *f = v, *f_end = v + n;
        v = f_end;
        const unsigned char *tag = (const unsigned char *)"";
        uint64_t tag_len = 0;
        int member = 0, members = 0, tensors = 0, metas = 0, tags_seen = 0, plugin = 0, hparams = 0, got = 0;
        float value = 0.0f;
        double number = NAN;
        while (f < f_end) {
            uint64_t k, m;
            if (!read_key(&f, f_end, &k)) BAIL();
            if (k == ((1 << 3) | 2)) { /* tag: the last one wins, each must be UTF-8 */
                if (!read_len(&f, f_end, &m)) BAIL();
                if (tags_seen++ && !valid_utf8(tag, tag_len)) BAIL();
                tag = f; tag_len = m; f += m;
            } else if (k == ((2 << 3) | 5)) {
                if (f_end - f < 4) BAIL();
                uint32_t bits = le32(f);
                memcpy(&value, &bits, 4);
                member = 2;
                members |= 1 << 2;
                f += 4;
            } else if (k == ((8 << 3) | 2)) {
                if (!read_len(&f, f_end, &m) || tensors++) BAIL(); /* two would merge */
                got = tensor_scalar(f, f + m, &number);
                if (got < 0) BAIL();
                member = 8;
                members |= 1 << 8;
                f += m;
            } else if (k == ((9 << 3) | 2)) {
                if (!read_len(&f, f_end, &m) || metas++) BAIL(); /* two would merge */
                plugin = plugin_of(f, f + m, &hparams);
                if (plugin < 0) BAIL();
                f += m;
            } else if (k == ((7 << 3) | 2)) { /* node_name */
                if (!read_len(&f, f_end, &m) || !valid_utf8(f, m)) BAIL();
                f += m;
            } else if (k == ((3 << 3) | 2)) { /* obsolete_old_style_histogram: bytes */
                if (!read_len(&f, f_end, &m)) BAIL();
                member = 3;
                members |= 1 << 3;
                f += m;
            } else if (k == ((5 << 3) | 2)) { /* histo: doubles only */
                if (!read_len(&f, f_end, &m) || !wire_valid(f, f + m, (1u << 6) | (1u << 7), 8))
                    BAIL();
                member = 5;
                members |= 1 << 5;
                f += m;
            } else if ((k >> 3) <= 9 && (k >> 3) != 1) {
                BAIL(); /* image, audio (strings inside), or an unexpected wire type */
            } else if (!skip(&f, f_end, (int)(k & 7))) {
                BAIL();
            }
        }
        /* two members of the oneof: protobuf keeps the last, and lets it decide */
        if (hparams || (members & (members - 1)) || (metas && member != 2 && member != 8) ||
            (tag_len == sizeof HPARAMS_TAG - 1 && memcmp(tag, HPARAMS_TAG, tag_len) == 0))
            BAIL();
        int8_t flags = 0;
        if (member == 2) {
            number = (double)value;
            flags = SIMPLE | HAS_VALUE;
        } else if (member == 8) {
            flags = (int8_t)((got ? HAS_VALUE : 0) | plugin);
        }
        if (!flags) { /* neither a value nor a plugin name to remember */
            if (!valid_utf8(tag, tag_len)) BAIL();
            continue;
        }
        int32_t index = tag_index(tags, tag, tag_len);
        if (index == TAG_NOT_UTF8) BAIL();
        if (index < 0) return NO_MEMORY;
        Point point = {step, wall, number, index, flags};
        if (collect_point(out, &point) != DECODED) return NO_MEMORY;
    }
#undef BAIL
    return DECODED;
}

