/*
 * tbexport._fastscan: the hot loop of reading event files, in C.
 *
 * Walks TFRecord framing, verifies both masked CRC32C checksums, and decodes the
 * common case of an Event -- wall_time, step and Summary.Value{tag, simple_value}
 * -- straight from the protobuf wire format into flat arrays. Anything else (a
 * tensor value, a SessionLog, a malformed message) is handed back to Python as a
 * "fallback" record, which decodes it with TensorBoard's protobuf classes. Framing
 * or CRC failures stop the scan at the failing offset; Python classifies the
 * damage and resumes. The pure-Python reader in decode.py gives identical results
 * and is used when this extension is not built.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <string.h>

/* ---------- CRC32C (Castagnoli), slicing-by-8 ---------- */

static uint32_t crc_table[8][256];

static void crc_init(void) {
    for (uint32_t i = 0; i < 256; i++) {
        uint32_t c = i;
        for (int k = 0; k < 8; k++) c = (c & 1) ? (c >> 1) ^ 0x82F63B78u : c >> 1;
        crc_table[0][i] = c;
    }
    for (uint32_t i = 0; i < 256; i++)
        for (int t = 1; t < 8; t++)
            crc_table[t][i] = (crc_table[t - 1][i] >> 8) ^ crc_table[0][crc_table[t - 1][i] & 0xFF];
}

static uint32_t crc32c(const unsigned char *p, size_t n) {
    uint32_t c = 0xFFFFFFFFu;
    while (n && ((uintptr_t)p & 7)) { c = (c >> 8) ^ crc_table[0][(c ^ *p++) & 0xFF]; n--; }
    while (n >= 8) {
        uint32_t lo, hi;
        memcpy(&lo, p, 4);
        memcpy(&hi, p + 4, 4);
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
        lo = __builtin_bswap32(lo);
        hi = __builtin_bswap32(hi);
#endif
        lo ^= c;
        c = crc_table[7][lo & 0xFF] ^ crc_table[6][(lo >> 8) & 0xFF] ^
            crc_table[5][(lo >> 16) & 0xFF] ^ crc_table[4][lo >> 24] ^
            crc_table[3][hi & 0xFF] ^ crc_table[2][(hi >> 8) & 0xFF] ^
            crc_table[1][(hi >> 16) & 0xFF] ^ crc_table[0][hi >> 24];
        p += 8;
        n -= 8;
    }
    while (n--) c = (c >> 8) ^ crc_table[0][(c ^ *p++) & 0xFF];
    return c ^ 0xFFFFFFFFu;
}

static uint32_t masked(const unsigned char *p, size_t n) {
    uint32_t c = crc32c(p, n);
    return ((c >> 15) | (c << 17)) + 0xA282EAD8u;
}

static uint32_t le32(const unsigned char *p) {
    return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) | ((uint32_t)p[3] << 24);
}

static uint64_t le64(const unsigned char *p) {
    return (uint64_t)le32(p) | ((uint64_t)le32(p + 4) << 32);
}

/* ---------- protobuf wire format ---------- */

/* Reads a varint; returns 0 on overrun. */
static int varint(const unsigned char **p, const unsigned char *end, uint64_t *out) {
    uint64_t v = 0;
    for (int shift = 0; shift < 64 && *p < end; shift += 7) {
        unsigned char b = *(*p)++;
        v |= (uint64_t)(b & 0x7F) << shift;
        if (!(b & 0x80)) { *out = v; return 1; }
    }
    return 0;
}

/* Skips a field of the given wire type; returns 0 when it cannot (overrun, groups). */
static int skip(const unsigned char **p, const unsigned char *end, int wire) {
    uint64_t n;
    switch (wire) {
    case 0: return varint(p, end, &n);
    case 1: if (end - *p < 8) return 0; *p += 8; return 1;
    case 2: if (!varint(p, end, &n) || n > (uint64_t)(end - *p)) return 0; *p += n; return 1;
    case 5: if (end - *p < 4) return 0; *p += 4; return 1;
    default: return 0;
    }
}

/* ---------- growable output ---------- */

typedef struct {
    char *data;
    size_t used, cap;
} Buf;

static int buf_push(Buf *b, const void *item, size_t size) {
    if (b->used + size > b->cap) {
        size_t cap = b->cap ? b->cap * 2 : 1 << 16;
        while (cap < b->used + size) cap *= 2;
        char *grown = realloc(b->data, cap);
        if (!grown) return 0;
        b->data = grown;
        b->cap = cap;
    }
    memcpy(b->data + b->used, item, size);
    b->used += size;
    return 1;
}

static PyObject *buf_bytes(Buf *b) {
    return PyBytes_FromStringAndSize(b->data ? b->data : "", (Py_ssize_t)b->used);
}

/* ---------- tag interning: a per-call hash table in front of Python's dict ---------- */

#define SLOTS 4096
typedef struct {
    const unsigned char *ptr;
    uint64_t len;
    uint32_t hash;
    int32_t index;
} Slot;

typedef struct {
    Slot slots[SLOTS];
    int used;
    PyObject *dict; /* bytes -> int, shared across calls and files of one run */
} Tags;

static int32_t tag_index(Tags *t, const unsigned char *ptr, uint64_t len) {
    uint32_t h = 2166136261u;
    for (uint64_t i = 0; i < len; i++) h = (h ^ ptr[i]) * 16777619u;
    uint32_t at = h & (SLOTS - 1);
    for (int probe = 0; probe < SLOTS; probe++, at = (at + 1) & (SLOTS - 1)) {
        Slot *s = &t->slots[at];
        if (!s->ptr) break;
        if (s->hash == h && s->len == len && memcmp(s->ptr, ptr, len) == 0) return s->index;
    }
    PyObject *key = PyBytes_FromStringAndSize((const char *)ptr, (Py_ssize_t)len);
    if (!key) return -1;
    PyObject *found = PyDict_GetItemWithError(t->dict, key);
    int32_t index;
    if (found) {
        index = (int32_t)PyLong_AsLong(found);
    } else if (PyErr_Occurred()) {
        Py_DECREF(key);
        return -1;
    } else {
        index = (int32_t)PyDict_Size(t->dict);
        PyObject *value = PyLong_FromLong(index);
        if (!value || PyDict_SetItem(t->dict, key, value) < 0) {
            Py_XDECREF(value);
            Py_DECREF(key);
            return -1;
        }
        Py_DECREF(value);
    }
    Py_DECREF(key);
    if (t->used < SLOTS / 2) { /* keep the table sparse; past that, the dict answers */
        Slot *s = &t->slots[at];
        if (!s->ptr) {
            s->ptr = ptr; s->len = len; s->hash = h; s->index = index;
            t->used++;
        }
    }
    return index;
}

/* ---------- event decoding ---------- */

enum { DECODED = 0, FALLBACK = 1, NO_MEMORY = -1 };

typedef struct {
    Buf steps, walls, values, tags, records;
} Out;

/* Decodes one Event. Points go to `out`; FALLBACK asks Python to decode the record. */
static int decode_event(const unsigned char *p, const unsigned char *end, int64_t record,
                        Tags *tags, Out *out) {
    double wall = 0.0;
    int64_t step = 0;
    const unsigned char *summary = NULL, *summary_end = NULL;
    while (p < end) {
        uint64_t key, n;
        if (!varint(&p, end, &key)) return FALLBACK;
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
            if (!varint(&p, end, &n) || n > (uint64_t)(end - p)) return FALLBACK;
            summary = p; /* a repeated message field would merge: leave that to protobuf */
            if (summary_end) return FALLBACK;
            summary_end = p + n;
            p += n;
        } else if (field == 7 || field == 1 || field == 2 || field == 5) {
            return FALLBACK; /* SessionLog, or a known field with an unexpected wire type */
        } else if (!skip(&p, end, wire)) {
            return FALLBACK;
        }
    }
    if (!summary) return DECODED;
    /* First pass: any tensor value (TF2 scalars) goes to Python as a whole record. */
    for (const unsigned char *v = summary; v < summary_end;) {
        uint64_t key, n;
        if (!varint(&v, summary_end, &key)) return FALLBACK;
        if (key != ((1 << 3) | 2)) { if (!skip(&v, summary_end, (int)(key & 7))) return FALLBACK; continue; }
        if (!varint(&v, summary_end, &n) || n > (uint64_t)(summary_end - v)) return FALLBACK;
        const unsigned char *f = v, *f_end = v + n;
        while (f < f_end) {
            uint64_t k;
            if (!varint(&f, f_end, &k)) return FALLBACK;
            if ((k >> 3) == 8) return FALLBACK;
            if (!skip(&f, f_end, (int)(k & 7))) return FALLBACK;
        }
        v = f_end;
    }
    /* Second pass: emit every simple_value. */
    for (const unsigned char *v = summary; v < summary_end;) {
        uint64_t key, n;
        varint(&v, summary_end, &key);
        if (key != ((1 << 3) | 2)) { skip(&v, summary_end, (int)(key & 7)); continue; }
        varint(&v, summary_end, &n);
        const unsigned char *f = v, *f_end = v + n;
        const unsigned char *tag = (const unsigned char *)"";
        uint64_t tag_len = 0;
        int has_value = 0;
        float value = 0.0f;
        while (f < f_end) {
            uint64_t k, m;
            varint(&f, f_end, &k);
            if (k == ((1 << 3) | 2)) { /* tag (field 7 is the legacy node_name) */
                if (!varint(&f, f_end, &m) || m > (uint64_t)(f_end - f)) return FALLBACK;
                tag = f; tag_len = m; f += m;
            } else if (k == ((2 << 3) | 5)) {
                uint32_t bits = le32(f);
                memcpy(&value, &bits, 4);
                has_value = 1;
                f += 4;
            } else {
                skip(&f, f_end, (int)(k & 7));
            }
        }
        v = f_end;
        if (!has_value) continue;
        int32_t index = tag_index(tags, tag, tag_len);
        double number = (double)value;
        if (index < 0) return NO_MEMORY;
        if (!buf_push(&out->steps, &step, 8) || !buf_push(&out->walls, &wall, 8) ||
            !buf_push(&out->values, &number, 8) || !buf_push(&out->tags, &index, 4) ||
            !buf_push(&out->records, &record, 8)) {
            PyErr_NoMemory();
            return NO_MEMORY;
        }
    }
    return DECODED;
}

/*
 * scan(buffer, start, limit, verify, tags, record) ->
 *     (position, failed, record, steps, wall_times, values, tag_indices, record_indices, fallbacks)
 *
 * Reads records from `start` while the position is below `limit`. `failed` is true
 * when the record at `position` is incomplete or fails a CRC. `fallbacks` lists
 * (record, offset, length) of the records Python must decode itself.
 */
static PyObject *scan(PyObject *self, PyObject *args) {
    Py_buffer view;
    Py_ssize_t start, limit;
    int verify;
    PyObject *dict;
    long long record;
    if (!PyArg_ParseTuple(args, "y*nnpO!L", &view, &start, &limit, &verify, &PyDict_Type, &dict,
                          &record))
        return NULL;
    const unsigned char *base = view.buf;
    uint64_t size = (uint64_t)view.len, pos = (uint64_t)start;
    Tags *tags = calloc(1, sizeof(Tags));
    Out out = {0};
    PyObject *fallbacks = PyList_New(0);
    PyObject *result = NULL;
    int failed = 0;
    if (!tags || !fallbacks) { PyErr_NoMemory(); goto done; }
    tags->dict = dict;
    while (pos < size && pos < (uint64_t)limit) {
        if (size - pos < 16) { failed = 1; break; }
        uint64_t len = le64(base + pos);
        if (len > size - pos - 16) { failed = 1; break; }
        const unsigned char *data = base + pos + 12;
        if (verify && (masked(base + pos, 8) != le32(base + pos + 8) ||
                       masked(data, (size_t)len) != le32(data + len))) {
            failed = 1;
            break;
        }
        int status = decode_event(data, data + len, (int64_t)record, tags, &out);
        if (status == NO_MEMORY) goto done;
        if (status == FALLBACK) {
            PyObject *item = Py_BuildValue("(LKK)", record, (unsigned long long)(pos + 12),
                                           (unsigned long long)len);
            if (!item || PyList_Append(fallbacks, item) < 0) { Py_XDECREF(item); goto done; }
            Py_DECREF(item);
        }
        record++;
        pos += 16 + len;
    }
    result = Py_BuildValue("(KOLNNNNNO)", (unsigned long long)pos, failed ? Py_True : Py_False,
                           record, buf_bytes(&out.steps), buf_bytes(&out.walls),
                           buf_bytes(&out.values), buf_bytes(&out.tags), buf_bytes(&out.records),
                           fallbacks);
done:
    free(tags);
    free(out.steps.data); free(out.walls.data); free(out.values.data);
    free(out.tags.data); free(out.records.data);
    Py_XDECREF(fallbacks);
    PyBuffer_Release(&view);
    return result;
}


/* ---------- text rendering of number columns (CSV and sheet XML) ---------- */

static int buf_text(Buf *b, const char *text) { return buf_push(b, text, strlen(text)); }

/* Python's repr() of a double: the shortest text that reads back as the same double. */
static int buf_double(Buf *b, double v) {
    char *text = PyOS_double_to_string(v, 'r', 0, Py_DTSF_ADD_DOT_0, NULL);
    if (!text) return 0;
    int ok = buf_text(b, text);
    PyMem_Free(text);
    return ok;
}

static int buf_int(Buf *b, long long v) {
    char text[32];
    snprintf(text, sizeof text, "%lld", v);
    return buf_text(b, text);
}

static int columns(Py_buffer *steps, Py_buffer *walls, Py_buffer *values, Py_ssize_t *n) {
    if (steps->len % 8 || walls->len != steps->len || values->len != steps->len) {
        PyErr_SetString(PyExc_ValueError, "columns must be int64/float64 of equal length");
        return 0;
    }
    *n = steps->len / 8;
    return 1;
}

/* csv_rows(prefix, steps, wall_times, values) -> bytes: "<prefix>step,wall,value\n" lines. */
static PyObject *csv_rows(PyObject *self, PyObject *args) {
    Py_buffer prefix, steps, walls, values;
    Py_ssize_t n;
    if (!PyArg_ParseTuple(args, "y*y*y*y*", &prefix, &steps, &walls, &values)) return NULL;
    PyObject *result = NULL;
    Buf out = {0};
    if (!columns(&steps, &walls, &values, &n)) goto done;
    const int64_t *s = steps.buf;
    const double *w = walls.buf, *v = values.buf;
    for (Py_ssize_t i = 0; i < n; i++) {
        if (!buf_push(&out, prefix.buf, (size_t)prefix.len) || !buf_int(&out, s[i]) ||
            !buf_text(&out, ",") || !buf_double(&out, w[i]) || !buf_text(&out, ",") ||
            (v[i] == v[i] && !buf_double(&out, v[i])) || !buf_text(&out, "\n")) {
            PyErr_NoMemory();
            goto done;
        }
    }
    result = buf_bytes(&out);
done:
    free(out.data);
    PyBuffer_Release(&prefix); PyBuffer_Release(&steps);
    PyBuffer_Release(&walls); PyBuffer_Release(&values);
    return result;
}

static int cell_ref(Buf *b, char column, long long row) {
    char text[48];
    snprintf(text, sizeof text, "<c r=\"%c%lld\"", column, row);
    return buf_text(b, text);
}

static int number_cell(Buf *b, char column, long long row, double v, int integer, int64_t iv) {
    if (!cell_ref(b, column, row) || !buf_text(b, "><v>")) return 0;
    if (integer ? !buf_int(b, iv) : !buf_double(b, v)) return 0;
    return buf_text(b, "</v></c>");
}

/*
 * sheet_rows(first_row, run_text, steps, wall_times, values) -> bytes: <row> elements
 * for a tag sheet. run_text (XML-escaped, or b"" for none) fills column A; NaN and
 * +-Inf become the text cells nan/inf/-inf.
 */
static PyObject *sheet_rows(PyObject *self, PyObject *args) {
    long long row;
    Py_buffer run, steps, walls, values;
    Py_ssize_t n;
    if (!PyArg_ParseTuple(args, "Ly*y*y*y*", &row, &run, &steps, &walls, &values)) return NULL;
    PyObject *result = NULL;
    Buf out = {0};
    if (!columns(&steps, &walls, &values, &n)) goto done;
    const int64_t *s = steps.buf;
    const double *w = walls.buf, *v = values.buf;
    char first = run.len ? 'B' : 'A';
    char text[48];
    for (Py_ssize_t i = 0; i < n; i++, row++) {
        snprintf(text, sizeof text, "<row r=\"%lld\">", row);
        int ok = buf_text(&out, text);
        if (run.len)
            ok = ok && cell_ref(&out, 'A', row) && buf_text(&out, " t=\"inlineStr\"><is><t>") &&
                 buf_push(&out, run.buf, (size_t)run.len) && buf_text(&out, "</t></is></c>");
        ok = ok && number_cell(&out, first, row, 0.0, 1, s[i]) &&
             number_cell(&out, first + 1, row, w[i], 0, 0);
        if (v[i] - v[i] == 0.0) {
            ok = ok && number_cell(&out, first + 2, row, v[i], 0, 0);
        } else {
            const char *word = v[i] != v[i] ? "nan" : (v[i] > 0 ? "inf" : "-inf");
            ok = ok && cell_ref(&out, first + 2, row) &&
                 buf_text(&out, " t=\"inlineStr\"><is><t>") && buf_text(&out, word) &&
                 buf_text(&out, "</t></is></c>");
        }
        ok = ok && buf_text(&out, "</row>");
        if (!ok) { PyErr_NoMemory(); goto done; }
    }
    result = buf_bytes(&out);
done:
    free(out.data);
    PyBuffer_Release(&run); PyBuffer_Release(&steps);
    PyBuffer_Release(&walls); PyBuffer_Release(&values);
    return result;
}

static PyObject *py_masked_crc32c(PyObject *self, PyObject *args) {
    Py_buffer view;
    if (!PyArg_ParseTuple(args, "y*", &view)) return NULL;
    uint32_t c = masked(view.buf, (size_t)view.len);
    PyBuffer_Release(&view);
    return PyLong_FromUnsignedLong(c);
}

static PyMethodDef methods[] = {
    {"scan", scan, METH_VARARGS, "Scan and decode records; see the module source."},
    {"masked_crc32c", py_masked_crc32c, METH_VARARGS, "Masked CRC32C, as TFRecord stores it."},
    {"csv_rows", csv_rows, METH_VARARGS, "CSV lines of three number columns."},
    {"sheet_rows", sheet_rows, METH_VARARGS, "Sheet XML rows of three number columns."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_fastscan",
                                    "C fast path for reading event files.", -1, methods};

PyMODINIT_FUNC PyInit__fastscan(void) {
    crc_init();
    return PyModule_Create(&module);
}
