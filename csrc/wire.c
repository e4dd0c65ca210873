/*
 * The protobuf wire format, checked as protobuf's own parser checks it: varints of at
 * most 10 bytes, field keys of at most 5 bytes with a field number from 1 and a wire
 * type protobuf knows, length prefixes that fit, and strict UTF-8 for string fields.
 * A record these rules would reject is never decoded here: it goes to Python, whose
 * protobuf classes report it.
 */
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

/* Strict UTF-8, as protobuf checks a string field: no overlong forms, no surrogates,
   nothing above U+10FFFF. */
static int valid_utf8(const unsigned char *p, uint64_t len) {
    const unsigned char *end = p + len;
    while (p < end) {
        unsigned char c = *p++;
        if (c < 0x80) continue;
        int more;
        uint32_t code;
        if (c >= 0xC2 && c <= 0xDF) { more = 1; code = c & 0x1F; }
        else if (c >= 0xE0 && c <= 0xEF) { more = 2; code = c & 0x0F; }
        else if (c >= 0xF0 && c <= 0xF4) { more = 3; code = c & 0x07; }
        else return 0;
        if (end - p < more) return 0;
        for (int i = 0; i < more; i++) {
            if ((p[i] & 0xC0) != 0x80) return 0;
            code = (code << 6) | (p[i] & 0x3F);
        }
        p += more;
        if ((more == 2 && (code < 0x800 || (code >= 0xD800 && code <= 0xDFFF))) ||
            (more == 3 && (code < 0x10000 || code > 0x10FFFF)))
            return 0;
    }
    return 1;
}

/* Reads a field key as protobuf does: at most 5 bytes, a 32-bit value, a field number
   other than 0, a wire type protobuf knows; 0 otherwise (the record goes to protobuf). */
static ALWAYS_INLINE int read_key(const unsigned char **p, const unsigned char *end,
                                  uint64_t *out) {
    const unsigned char *start = *p;
    if (*p < end && **p < 0x80) { /* one byte: the usual case */
        *out = *(*p)++;
        return *out >= 8 && (*out & 7) < 6;
    }
    if (!varint(p, end, out)) return 0;
    return *p - start <= 5 && *out <= 0xFFFFFFFFu && *out >= 8 && (*out & 7) < 6;
}

/* Reads a length prefix and checks it fits; 0 otherwise. */
static ALWAYS_INLINE int read_len(const unsigned char **p, const unsigned char *end,
                                  uint64_t *n) {
    return varint(p, end, n) && *n <= (uint64_t)(end - *p);
}

/* Walks a message no field of which this scanner reads, checking only what protobuf
   would refuse there: keys and framing; packed fields of `fixed`-byte items listed in
   `packed` (a bit per field number) must hold whole items. 0: protobuf would refuse. */
static int wire_valid(const unsigned char *p, const unsigned char *end, uint32_t packed,
                      int fixed) {
    while (p < end) {
        uint64_t k, n;
        if (!read_key(&p, end, &k)) return 0;
        if ((k & 7) == 2 && (k >> 3) < 32 && (packed >> (k >> 3) & 1)) {
            if (!read_len(&p, end, &n) || n % (uint64_t)fixed) return 0;
            p += n;
        } else if (!skip(&p, end, (int)(k & 7))) {
            return 0;
        }
    }
    return 1;
}
