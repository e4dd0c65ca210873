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
#include <math.h>
#include <stdlib.h>
#ifndef _WIN32
#include <errno.h>
#include <time.h>
#include <fcntl.h>
#include <dirent.h>
#include <sys/stat.h>
#include <unistd.h>
#include <pthread.h>
#endif

#if defined(__GNUC__) || defined(__clang__)
#define ALWAYS_INLINE inline __attribute__((always_inline))
#else
#define ALWAYS_INLINE inline
#endif

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

/* The CRC32C of bytes that follow bytes whose CRC32C was `crc` (0 to start). */
static uint32_t crc32c(uint32_t crc, const unsigned char *p, size_t n) {
    uint32_t c = ~crc;
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

/* The SSE4.2 crc32 instruction computes CRC32C directly, ~20x faster than the tables;
   chosen at run time so one build still works on CPUs without it. */
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#define HAVE_HW_CRC 1
__attribute__((target("sse4.2"))) static uint32_t crc32c_hw(uint32_t crc, const unsigned char *p,
                                                            size_t n) {
    uint64_t c = ~crc;
    while (n >= 8) {
        uint64_t word;
        memcpy(&word, p, 8);
        c = __builtin_ia32_crc32di(c, word);
        p += 8;
        n -= 8;
    }
    uint32_t c32 = (uint32_t)c;
    /* the rest in at most three steps (records are short: the tail is much of them) */
    if (n >= 4) {
        uint32_t word;
        memcpy(&word, p, 4);
        c32 = __builtin_ia32_crc32si(c32, word);
        p += 4;
        n -= 4;
    }
    if (n >= 2) {
        uint16_t half;
        memcpy(&half, p, 2);
        c32 = __builtin_ia32_crc32hi(c32, half);
        p += 2;
        n -= 2;
    }
    if (n) c32 = __builtin_ia32_crc32qi(c32, *p);
    return c32 ^ 0xFFFFFFFFu;
}
#endif

static uint32_t (*crc32c_best)(uint32_t, const unsigned char *, size_t) = crc32c;

static void crc_choose(void) {
#ifdef HAVE_HW_CRC
    __builtin_cpu_init();
    if (__builtin_cpu_supports("sse4.2") && !getenv("TBEXPORT_NO_HW_CRC")) crc32c_best = crc32c_hw;
#endif
}

static uint32_t mask(uint32_t c) { return ((c >> 15) | (c << 17)) + 0xA282EAD8u; }

static uint32_t masked(const unsigned char *p, size_t n) { return mask(crc32c_best(0, p, n)); }

static uint32_t le32(const unsigned char *p) {
    return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) | ((uint32_t)p[3] << 24);
}

static uint64_t le64(const unsigned char *p) {
    return (uint64_t)le32(p) | ((uint64_t)le32(p + 4) << 32);
}

/* ---------- where records are read from ---------- */

/* The bytes of an event file: all in memory (`base`), or a file read a window at a time
   with ordinary reads. A file is never mapped: one that shrinks under a mapping (a run
   restarted, a disk cleaned up) kills the reading process with SIGBUS, where a read
   just ends early. */
typedef struct {
    const unsigned char *base; /* in memory: the whole buffer; NULL: read from fd */
    int fd;
    unsigned char *window;     /* file bytes [start, start + filled) */
    size_t cap, filled, step;  /* step: how many bytes to read at a time, at least */
    uint64_t start;
    unsigned char *scratch;    /* for checking a record too long for the window */
    int ended;                 /* a read met the end of the file before the size given */
    int error;                 /* the errno of a read that failed */
} Source;

#ifndef _WIN32
#define READS_FILES 1

/* Reads up to `n` bytes at `offset` into `into`; how many it read (fewer: the file
   ended, s->ended, or a read failed, s->error). Needs no GIL. */
static size_t source_read(Source *s, unsigned char *into, size_t n, uint64_t offset) {
    size_t got = 0;
    while (got < n) {
        ssize_t r = pread(s->fd, into + got, n - got, (off_t)(offset + got));
        if (r < 0 && errno == EINTR) continue;
        if (r < 0) { s->error = errno; break; }
        if (r == 0) { s->ended = 1; break; }
        got += (size_t)r;
    }
    return got;
}

/* Moves the window to start at `pos` and fills it with at least `n` bytes (a step's
   worth when the file has them); NULL when the file ended or a read failed first. */
static const unsigned char *source_fill(Source *s, uint64_t pos, uint64_t n, uint64_t size) {
    size_t keep = 0;
    if (pos >= s->start && pos - s->start < s->filled) { /* the bytes still wanted, kept */
        keep = s->filled - (size_t)(pos - s->start);
        memmove(s->window, s->window + (pos - s->start), keep);
    }
    s->start = pos;
    s->filled = keep;
    uint64_t want = n > s->step ? n : s->step;
    if (want > size - pos) want = size - pos; /* (n <= size - pos: want >= n) */
    if (want > (uint64_t)PY_SSIZE_T_MAX) { s->error = ENOMEM; return NULL; }
    if (s->cap < want) { /* a record longer than the window */
        unsigned char *grown = realloc(s->window, (size_t)want);
        if (!grown) { s->error = ENOMEM; return NULL; }
        s->window = grown;
        s->cap = (size_t)want;
    }
    if (s->filled < want)
        s->filled += source_read(s, s->window + s->filled, (size_t)want - s->filled,
                                 pos + s->filled);
    return s->filled >= n ? s->window : NULL;
}
#else
static const unsigned char *source_fill(Source *s, uint64_t pos, uint64_t n, uint64_t size) {
    s->error = EINVAL; /* files are only read from memory here */
    return NULL;
}
#endif

/* Bytes [pos, pos + n) of the source, for n <= size - pos; NULL when the file ended (or
   a read failed) first. Reading a file moves its window: what an earlier call returned
   is stale. Needs no GIL. */
static ALWAYS_INLINE const unsigned char *source_at(Source *s, uint64_t pos, uint64_t n,
                                                    uint64_t size) {
    if (s->base) return s->base + pos;
    if (pos >= s->start && n <= s->filled && pos - s->start <= s->filled - n)
        return s->window + (pos - s->start);
    return source_fill(s, pos, n, size);
}

static void source_free(Source *s) {
    free(s->window);
    free(s->scratch);
    s->window = s->scratch = NULL;
    s->cap = s->filled = 0;
}

/* Whether the `len` bytes at `at` have the masked CRC32C stored after them, read in
   pieces when a file's window does not hold them; -1: the file ended first. */
static int source_crc_matches(Source *s, uint64_t at, uint64_t len, uint64_t size) {
    if (s->base) return masked(s->base + at, (size_t)len) == le32(s->base + at + len);
#ifdef READS_FILES
    enum { PIECE = 1 << 20 };
    if (!s->scratch && !(s->scratch = malloc(PIECE))) { s->error = ENOMEM; return -1; }
    uint32_t crc = 0;
    for (uint64_t done = 0; done < len;) {
        size_t n = len - done < PIECE ? (size_t)(len - done) : PIECE;
        if (source_read(s, s->scratch, n, at + done) != n) return -1;
        crc = crc32c_best(crc, s->scratch, n);
        done += n;
    }
    unsigned char stored[4];
    if (source_read(s, stored, 4, at + len) != 4) return -1;
    return mask(crc) == le32(stored);
#else
    return -1;
#endif
}

/*
 * The first position >= start where a whole record with both CRCs valid begins; size
 * when there is none; -1 when the file ended (or a read failed) before `size`.
 *
 * Most garbage is rejected by its length alone (past the end). A stretch of zeros (a
 * file's hole, a zeroed block) would pass that, and is skipped a word at a time: no
 * record starts with 12 zero bytes (a length of 0 has the masked CRC 0x07980329).
 * Needs no GIL.
 */
static int64_t source_resync(Source *s, uint64_t start, uint64_t size) {
    if (size < 16 || start > size - 16) return (int64_t)size;
    uint64_t last = size - 16; /* the last position a record fits at */
    for (uint64_t pos = start; pos <= last;) {
        /* a chunk: what remains of a buffer, a window's worth of a file */
        uint64_t span = size - pos;
        if (!s->base && span > s->step + 11) span = s->step + 11;
        const unsigned char *b = source_at(s, pos, span, size);
        if (!b) return -1;
        uint64_t stop = pos + span - 11; /* positions whose 12 header bytes are in the chunk */
        if (stop > last + 1) stop = last + 1;
        const unsigned char *end = b + span;
        for (uint64_t p = pos; p < stop;) {
            const unsigned char *h = b + (p - pos);
            uint64_t len = le64(h);
            uint32_t crc = le32(h + 8);
            if (len == 0 && crc == 0) { /* zeros: on to the first byte that is not */
                const unsigned char *q = h + 12;
                uint64_t word;
                while (end - q >= 8 && (memcpy(&word, q, 8), word == 0)) q += 8;
                while (q < end && !*q) q++;
                uint64_t nonzero = pos + (uint64_t)(q - b);
                p = nonzero - 11 > p ? nonzero - 11 : p + 1;
                continue;
            }
            if (len <= size - p - 16 && masked(h, 8) == crc) {
                uint64_t in_chunk = span - (p - pos);
                int ok = len + 16 <= in_chunk
                             ? masked(h + 12, (size_t)len) == le32(h + 12 + len)
                             : source_crc_matches(s, p + 12, len, size);
                if (ok < 0) return -1;
                if (ok) return (int64_t)p;
            }
            p++;
        }
        pos = stop;
    }
    return (int64_t)size;
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

/* Makes room for `size` more bytes; 0: out of memory. */
static int buf_grow(Buf *b, size_t size) {
    if (b->used > SIZE_MAX / 4 || size > SIZE_MAX / 4 - b->used) return 0;
    size_t cap = b->cap ? b->cap * 2 : 1 << 16;
    while (cap < b->used + size) cap *= 2;
    char *grown = realloc(b->data, cap);
    if (!grown) return 0;
    b->data = grown;
    b->cap = cap;
    return 1;
}

/* Inlined: the scanner pushes items of constant sizes, which then copy without a call. */
static ALWAYS_INLINE int buf_push(Buf *b, const void *item, size_t size) {
    if (!size) return 1;
    if (b->cap - b->used < size && !buf_grow(b, size)) return 0;
    memcpy(b->data + b->used, item, size);
    b->used += size;
    return 1;
}

static PyObject *buf_bytes(Buf *b) {
    return PyBytes_FromStringAndSize(b->data ? b->data : "", (Py_ssize_t)b->used);
}

/* A Buf's memory handed to Python without a copy: a writable buffer that frees it when
   the last numpy array viewing it goes. (A bytes copy would double the scan's peak memory
   and leave the heap fragmented.) */
typedef struct {
    PyObject_HEAD
    char *data;
    Py_ssize_t size;
} Block;

static int block_getbuffer(PyObject *self, Py_buffer *view, int flags) {
    Block *block = (Block *)self;
    return PyBuffer_FillInfo(view, self, block->data, block->size, 0, flags);
}

static void block_dealloc(PyObject *self) {
    free(((Block *)self)->data);
    Py_TYPE(self)->tp_free(self);
}

static PyBufferProcs block_buffer = {block_getbuffer, NULL};

static PyTypeObject BlockType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "tbexport._fastscan.Block",
    .tp_basicsize = sizeof(Block),
    .tp_dealloc = block_dealloc,
    .tp_as_buffer = &block_buffer,
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "Memory filled by the scanner, viewed by numpy arrays.",
};

/* Moves b's memory into a new Block (b is left empty); NULL when out of memory. */
static PyObject *buf_block(Buf *b) {
    Block *block = PyObject_New(Block, &BlockType);
    if (!block) return NULL;
    block->data = b->data ? b->data : malloc(1);
    block->size = (Py_ssize_t)b->used;
    b->data = NULL;
    b->used = b->cap = 0;
    if (!block->data) {
        Py_DECREF(block);
        return PyErr_NoMemory();
    }
    return (PyObject *)block;
}

/* ---------- tag interning: tag bytes -> index, in plain C so the scan runs without the GIL ---------- */

typedef struct {
    /* into a bytes object of the caller's list, the scanned buffer, or (copy_names) memory
       of the table's own */
    const unsigned char *ptr;
    uint64_t len;
    uint32_t hash;
    int32_t index; /* -1: empty slot */
} Slot;

typedef struct {
    Slot *slots;
    size_t cap; /* a power of two, at least twice the tags held */
    int32_t count;
    int32_t known; /* tags the caller already had; the rest are new in this call */
    Slot *order;   /* the tags by index */
    size_t order_cap;
    /* Writers log the same tags in the same order at every step: next[i] is the tag
       that followed tag i last time, tried before hashing (-1: none yet). */
    int32_t *next;
    int32_t last; /* the tag looked up last; -1 at first */
    int copy_names; /* new tags' names are copied (a file's window moves on) */
} Tags;

static uint32_t fnv1a(const unsigned char *ptr, uint64_t len) {
    uint32_t h = 2166136261u;
    for (uint64_t i = 0; i < len; i++) h = (h ^ ptr[i]) * 16777619u;
    return h;
}

static int tags_grow(Tags *t) {
    size_t cap = t->cap ? t->cap * 2 : 64;
    Slot *slots = malloc(cap * sizeof(Slot));
    if (!slots) return 0;
    for (size_t i = 0; i < cap; i++) slots[i].index = -1;
    for (int32_t i = 0; i < t->count; i++) {
        size_t at = t->order[i].hash & (cap - 1);
        while (slots[at].index >= 0) at = (at + 1) & (cap - 1);
        slots[at] = t->order[i];
    }
    free(t->slots);
    t->slots = slots;
    t->cap = cap;
    return 1;
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

enum { TAG_NO_MEMORY = -1, TAG_NOT_UTF8 = -2 };

/* The index of a tag, adding it when new; TAG_NO_MEMORY, or TAG_NOT_UTF8 for a tag
   protobuf would reject (its record then goes to protobuf, which reports it). */
static int32_t tag_lookup(Tags *t, const unsigned char *ptr, uint64_t len) {
    uint32_t h = fnv1a(ptr, len);
    size_t at = h & (t->cap - 1);
    for (; t->slots[at].index >= 0; at = (at + 1) & (t->cap - 1)) {
        Slot *s = &t->slots[at];
        if (s->hash == h && s->len == len && memcmp(s->ptr, ptr, len) == 0) return s->index;
    }
    if (!valid_utf8(ptr, len)) return TAG_NOT_UTF8;
    if (t->count == INT32_MAX) return TAG_NO_MEMORY; /* indices are int32 */
    if ((size_t)t->count >= t->order_cap) {
        size_t cap = t->order_cap ? t->order_cap * 2 : 64;
        Slot *order = realloc(t->order, cap * sizeof(Slot));
        if (!order) return TAG_NO_MEMORY;
        t->order = order;
        int32_t *next = realloc(t->next, cap * sizeof(int32_t));
        if (!next) return TAG_NO_MEMORY;
        for (size_t i = t->order_cap; i < cap; i++) next[i] = -1;
        t->next = next;
        t->order_cap = cap;
    }
    if (t->copy_names) {
        unsigned char *own = malloc(len ? (size_t)len : 1);
        if (!own) return TAG_NO_MEMORY;
        memcpy(own, ptr, (size_t)len);
        ptr = own;
    }
    Slot slot = {ptr, len, h, t->count};
    t->order[t->count++] = slot;
    if ((size_t)t->count * 2 > t->cap) return tags_grow(t) ? slot.index : TAG_NO_MEMORY;
    t->slots[at] = slot;
    return slot.index;
}

static int32_t tag_index(Tags *t, const unsigned char *ptr, uint64_t len) {
    if (t->last >= 0) {
        int32_t guess = t->next[t->last];
        if (guess >= 0 && t->order[guess].len == len && memcmp(t->order[guess].ptr, ptr, len) == 0)
            return t->last = guess;
    }
    int32_t index = tag_lookup(t, ptr, len);
    if (index >= 0) {
        if (t->last >= 0) t->next[t->last] = index;
        t->last = index;
    }
    return index;
}

static void tags_free(Tags *t) {
    if (t->copy_names)
        for (int32_t i = t->known; i < t->count; i++) free((void *)t->order[i].ptr);
    free(t->slots);
    free(t->order);
    free(t->next);
}

/* ---------- event decoding ---------- */

enum { DECODED = 0, FALLBACK = 1, NO_MEMORY = -1, CALLBACK_FAILED = -2, MISMATCH = -3 };

/* Point flags: what Python needs to apply the scalars-plugin rules per tag. */
enum { HAS_VALUE = 1, PLUGIN_SCALARS = 2, PLUGIN_OTHER = 4, SIMPLE = 8 };
#define PLAIN (SIMPLE | HAS_VALUE)

typedef struct {
    int64_t step;
    double wall, value;
    int32_t tag;
    int8_t flags;
} Point;

/* Where decoded points go. COLLECT appends them to columns in record order. COUNT only
   counts them per tag (the first pass of a big file). PLACE writes each straight to
   its row in columns sized and grouped by those counts (the second pass), so a big
   file is never held twice over. */
enum { COLLECT, COUNT, PLACE };

typedef struct {
    int mode;
    Buf steps, walls, values, tags, flags; /* COLLECT */
    Buf counts;                            /* COUNT: int64 per tag index */
    /* PLACE: a tag's next row is cursor[ranks[tag]], below limit[ranks[tag]] */
    char *rows[4]; /* steps, wall times, values, flags (NULL: every point must be plain) */
    const int32_t *ranks;
    int64_t ranked, *cursor;
    const int64_t *limit;
    Buf staged;    /* the points of the record being decoded, emitted once it is done */
    size_t points; /* points emitted */
    int unusual;   /* a point with flags other than PLAIN was emitted */
} Out;

/* Makes out->counts hold at least `tags` counts, new ones zero. */
static int counts_cover(Out *out, size_t tags) {
    static const char zeros[64 * sizeof(int64_t)]; /* counts grow 64 tags at a time */
    while (out->counts.used < tags * sizeof(int64_t))
        if (!buf_push(&out->counts, zeros, sizeof zeros)) return 0;
    return 1;
}

static int count_point(Out *out, int32_t tag) {
    if (!counts_cover(out, (size_t)tag + 1)) return NO_MEMORY;
    ((int64_t *)out->counts.data)[tag]++;
    return DECODED;
}

static int place_point(Out *out, const Point *p) {
    if (p->tag >= out->ranked || (!out->rows[3] && p->flags != PLAIN)) return MISMATCH;
    int32_t r = out->ranks[p->tag];
    int64_t row = out->cursor[r];
    if (row >= out->limit[r]) return MISMATCH;
    out->cursor[r] = row + 1;
    memcpy(out->rows[0] + row * 8, &p->step, 8);
    memcpy(out->rows[1] + row * 8, &p->wall, 8);
    memcpy(out->rows[2] + row * 8, &p->value, 8);
    if (out->rows[3]) out->rows[3][row] = (char)p->flags;
    return DECODED;
}

/* COLLECT: appends a point to the columns at once (the hot path of many small files). */
static int collect_point(Out *out, const Point *p) {
    if (!buf_push(&out->steps, &p->step, 8) || !buf_push(&out->walls, &p->wall, 8) ||
        !buf_push(&out->values, &p->value, 8) || !buf_push(&out->tags, &p->tag, 4) ||
        !buf_push(&out->flags, &p->flags, 1))
        return NO_MEMORY;
    out->unusual |= p->flags != PLAIN;
    out->points++;
    return DECODED;
}

/* COLLECT: takes back the points of a record handed over to Python after all. */
static void collect_rollback(Out *out, size_t kept) {
    out->steps.used = out->walls.used = out->values.used = kept * 8;
    out->tags.used = kept * 4;
    out->flags.used = kept;
    out->points = kept;
}

/* COUNT, PLACE: hands the staged points of a fully decoded record to the sink. */
static int emit_staged(Out *out) {
    const Point *p = (const Point *)out->staged.data;
    size_t n = out->staged.used / sizeof(Point);
    for (size_t i = 0; i < n; i++, p++) {
        int status = out->mode == COUNT ? count_point(out, p->tag) : place_point(out, p);
        if (status != DECODED) return status;
        out->unusual |= p->flags != PLAIN;
        out->points++;
    }
    out->staged.used = 0;
    return DECODED;
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
       protobuf would read another way hands the record over instead: COLLECT takes
       back the record's points, COUNT and PLACE stage them until the record is done
       (counts and rows cannot be taken back). */
    size_t kept = out->points;
    out->staged.used = 0;
#define BAIL()                                                   \
    do {                                                         \
        if (out->mode == COLLECT) collect_rollback(out, kept);   \
        return FALLBACK;                                         \
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
        if (out->mode == COLLECT) {
            if (collect_point(out, &point) != DECODED) return NO_MEMORY;
        } else if (!buf_push(&out->staged, &point, sizeof point)) {
            return NO_MEMORY;
        }
    }
#undef BAIL
    return out->mode == COLLECT ? DECODED : emit_staged(out);
}

/*
 * scan(buffer, start, verify, tags, record, report_every, progress, rank=None, counts=None,
 *      with_flags=False) ->
 *     (position, failed, record, steps, wall_times, values, tag_indices, flags, fallbacks,
 *      bounds)
 *
 * Reads records from `start` to the end of the buffer, or to the first damaged one,
 * without the GIL (threads read other files meanwhile). The buffer may also be a file,
 * as (fd, size, step): its first `size` bytes, read `step` at a time (see Source); one
 * that ends early (it shrank) fails there, as an incomplete record. `tags` is a list of
 * tag names as bytes whose positions are the tag indices; new tags are appended to it.
 * `failed` is true when the record at `position` is incomplete or fails a CRC. Every
 * `report_every` bytes, progress(position) is called (None: never). The columns are
 * buffers of int64, float64, float64, int32 and int8 -- the flags, None when every
 * point is a plain simple_value. `fallbacks` lists
 * (record, offset, length, points_before) of the records Python must decode itself,
 * points_before being the points this call produced before that record.
 *
 * `rank` (optional: None or int32[k], k >= len(tags)) orders the tags. When it is given
 * and the call read the whole buffer with nothing left to Python and no tag unknown to
 * it, the columns come back grouped by rank[tag] (stable: record order within a tag),
 * still without the GIL, the tag column is None and `bounds` (int64[k+1]) says where
 * each rank's rows start; otherwise bounds is None and the columns are in record order.
 * One call instead of scan + group saves a GIL round trip per file, which is what
 * keeps threads reading many small runs from scaling.
 *
 * `counts` (int64 per tag of `tags`, from count() on the same buffer; needs `rank` and
 * start 0) makes this the second pass of a big file: every point is written straight to
 * its grouped row, so the file's points are held once, and the flags column exists only
 * `with_flags` (count() saw a point that is not a plain simple_value). The result is
 * grouped as above. RecordsChanged if the records do not match the counts (the file was
 * rewritten between the passes).
 *
 * count(buffer, verify, tags, report_every, progress) ->
 *     (position, failed, record, counts, unusual, fallbacks)
 *
 * The first pass: reads like scan() from the start but keeps only how many points each
 * tag has (int64 per tag of `tags`, new tags appended as scan() does) and whether any
 * point is not a plain simple_value.
 */
typedef struct {
    int64_t record;
    uint64_t offset, length;
    int64_t points_before;
} Fallback;

/* An empty tag table; 0: out of memory. */
static int tags_start(Tags *tags) {
    tags->count = tags->known = 0;
    tags->last = -1;
    return tags_grow(tags);
}

static int tags_from_tuple(Tags *tags, PyObject *names) { /* names: a tuple of bytes */
    if (!tags_start(tags)) return 0;
    for (Py_ssize_t i = 0; i < PyTuple_GET_SIZE(names); i++) {
        PyObject *name = PyTuple_GET_ITEM(names, i);
        if (!PyBytes_Check(name)) {
            PyErr_SetString(PyExc_TypeError, "tag names must be bytes");
            return 0;
        }
        int32_t index = tag_index(tags, (const unsigned char *)PyBytes_AS_STRING(name),
                                  (uint64_t)PyBytes_GET_SIZE(name));
        if (index != i) { /* out of memory, a name listed twice, or not UTF-8 */
            if (index != TAG_NO_MEMORY)
                PyErr_SetString(PyExc_ValueError, "tag names must be unique UTF-8");
            return 0;
        }
    }
    tags->known = tags->count;
    return 1;
}

static int tags_to_list(Tags *tags, PyObject *names) {
    for (int32_t i = tags->known; i < tags->count; i++) {
        PyObject *name = PyBytes_FromStringAndSize((const char *)tags->order[i].ptr,
                                                   (Py_ssize_t)tags->order[i].len);
        if (!name || PyList_Append(names, name) < 0) { Py_XDECREF(name); return 0; }
        Py_DECREF(name);
    }
    return 1;
}

static PyObject *fallback_list(const Buf *fallbacks) {
    size_t count = fallbacks->used / sizeof(Fallback);
    PyObject *list = PyList_New((Py_ssize_t)count);
    for (size_t i = 0; list && i < count; i++) {
        const Fallback *f = (const Fallback *)fallbacks->data + i;
        PyObject *item = Py_BuildValue("(LKKL)", (long long)f->record,
                                       (unsigned long long)f->offset, (unsigned long long)f->length,
                                       (long long)f->points_before);
        if (!item) { Py_CLEAR(list); break; }
        PyList_SET_ITEM(list, (Py_ssize_t)i, item);
    }
    return list;
}

/* The counting sort behind group() and scan()'s grouping: bound (int64[k+1]) gets where
   each rank's rows start, rank[tag[i]] being row i's rank. */
static void count_ranks(const int32_t *tag, size_t n, const int32_t *ranks, int64_t k,
                        int64_t *bound) {
    memset(bound, 0, ((size_t)k + 1) * sizeof(int64_t));
    for (size_t i = 0; i < n; i++) bound[ranks[tag[i]] + 1]++;
    for (int64_t r = 0; r < k; r++) bound[r + 1] += bound[r];
}

/* Moves n items of `size` bytes (8, 4 or 1) to the rows cursor[rank] hands out in turn. */
static void scatter_rows(char *to, const char *from, size_t size, size_t n, const int32_t *tag,
                         const int32_t *ranks, int64_t *cursor) {
#define SCATTER(bytes)                                                                 \
    for (size_t i = 0; i < n; i++)                                                     \
        memcpy(to + cursor[ranks[tag[i]]]++ * (bytes), from + i * (bytes), (bytes));
    if (size == 8) SCATTER(8)
    else if (size == 4) SCATTER(4)
    else SCATTER(1)
#undef SCATTER
}

/* Copies column `from` (n items of `item` bytes) grouped by rank[tag] into new memory
   `to`; cursor is scratch for k ranks, bound their row starts (from count_ranks). */
static int group_column(const Buf *from, size_t item, size_t n, const int32_t *tag,
                        const int32_t *ranks, int64_t k, const int64_t *bound, int64_t *cursor,
                        Buf *to) {
    char *data = malloc(from->used ? from->used : 1);
    if (!data) return 0;
    memcpy(cursor, bound, (size_t)k * sizeof(int64_t));
    scatter_rows(data, from->data, item, n, tag, ranks, cursor);
    to->data = data;
    to->used = to->cap = from->used;
    return 1;
}

/* Groups the columns of `out` by rank[tag] (steps, wall times, values, and flags when
   unusual) into `into` (new memory, the sources left as they are; NULL: in place, each
   source freed once copied, so one extra column at most); bounds gets int64[k+1] row
   starts. */
static int group_columns(Out *out, const int32_t *ranks, int64_t k, Buf *bounds, Buf *into) {
    size_t n = out->tags.used / 4;
    const int32_t *tag = (const int32_t *)out->tags.data;
    int64_t *cursor = malloc((size_t)(k ? k : 1) * sizeof(int64_t));
    int64_t *bound = malloc(((size_t)k + 1) * sizeof(int64_t));
    if (!cursor || !bound) { free(cursor); free(bound); return 0; }
    count_ranks(tag, n, ranks, k, bound);
    Buf *columns[] = {&out->steps, &out->walls, &out->values, out->unusual ? &out->flags : NULL};
    size_t items[] = {8, 8, 8, 1};
    for (int c = 0; c < 4; c++) {
        if (!columns[c]) continue;
        Buf grouped = {0};
        if (!group_column(columns[c], items[c], n, tag, ranks, k, bound, cursor, &grouped)) {
            free(cursor);
            free(bound);
            return 0;
        }
        if (into) {
            into[c] = grouped;
        } else {
            free(columns[c]->data);
            *columns[c] = grouped;
        }
    }
    free(cursor);
    bounds->data = (char *)bound;
    bounds->used = bounds->cap = ((size_t)k + 1) * sizeof(int64_t);
    return 1;
}

static int group_out(Out *out, const int32_t *ranks, int64_t k, Buf *bounds) {
    return group_columns(out, ranks, k, bounds, NULL);
}

/* scan()'s second pass found other records than count() did: an exception of its own,
   so that the caller tells it from anything its progress callback raises. */
static PyObject *RecordsChanged;

/* The record loop shared by scan() and count(). */
typedef struct {
    Source src;
    uint64_t size, pos, report_every;
    int verify, failed;
    PyObject *progress;
    long long record;
    Buf fallbacks;
    Tags tags;
    /* the tag table points into these bytes objects (the caller's names): held for the
       whole call, whatever the progress callback does to the list */
    PyObject *known;
} Reader;

/* Reads records from rd->pos to the end of the buffer or the first damaged record.
   Runs without the GIL, taking it back (*released) only to report progress. */
static int read_records(Reader *rd, Out *out, PyThreadState **released) {
    uint64_t next_report = rd->pos + rd->report_every;
    while (rd->pos < rd->size) {
        if (rd->progress != Py_None && rd->pos >= next_report) {
            PyEval_RestoreThread(*released);
            PyObject *answer =
                PyObject_CallFunction(rd->progress, "K", (unsigned long long)rd->pos);
            Py_XDECREF(answer);
            *released = PyEval_SaveThread();
            if (!answer) return CALLBACK_FAILED;
            next_report = rd->pos + rd->report_every;
        }
        if (rd->size - rd->pos < 16) { rd->failed = 1; break; }
        const unsigned char *at = source_at(&rd->src, rd->pos, 16, rd->size);
        if (!at) { rd->failed = 1; break; } /* the file shrank: Python sees it and says so */
        uint64_t len = le64(at);
        if (len > rd->size - rd->pos - 16) { rd->failed = 1; break; }
        if (!rd->src.base && !(at = source_at(&rd->src, rd->pos, 16 + len, rd->size))) {
            rd->failed = 1;
            break;
        }
        const unsigned char *data = at + 12;
        if (rd->verify && (masked(at, 8) != le32(at + 8) ||
                           masked(data, (size_t)len) != le32(data + len))) {
            rd->failed = 1;
            break;
        }
        size_t points_before = out->points;
        int status = decode_event(data, data + len, &rd->tags, out);
        if (status == NO_MEMORY || status == MISMATCH) return status;
        if (status == FALLBACK) {
            Fallback item = {(int64_t)rd->record, rd->pos + 12, len, (int64_t)points_before};
            if (!buf_push(&rd->fallbacks, &item, sizeof item)) return NO_MEMORY;
        }
        rd->record++;
        rd->pos += 16 + len;
    }
    return DECODED;
}

/* Points the reader at `size` bytes of rd->src, from `start` (the tag table is set apart). */
static void reader_start(Reader *rd, uint64_t size, uint64_t start, int verify,
                         Py_ssize_t report_every, PyObject *progress, long long record) {
    rd->size = size;
    rd->pos = start;
    rd->verify = verify;
    /* report_every <= 0: never mid-scan */
    rd->report_every = report_every > 0 ? (uint64_t)report_every : size + 1;
    rd->progress = progress; /* (Py_None: compared, never called) */
    rd->record = record;
}

/* The source argument of scan(), count() and resync(): a buffer, or (fd, size, step):
   the first `size` bytes of the open file `fd`, read `step` bytes at a time (see Source).
   `view` is released by source_close. */
static int source_open(PyObject *arg, Py_buffer *view, Source *src, uint64_t *size) {
    static const unsigned char empty[1];
    memset(src, 0, sizeof *src);
    view->obj = NULL;
    if (PyTuple_Check(arg)) {
#ifdef READS_FILES
        int fd;
        long long length;
        Py_ssize_t step;
        if (!PyArg_ParseTuple(arg, "iLn", &fd, &length, &step)) return 0;
        if (fd < 0 || length < 0 || step <= 0) {
            PyErr_SetString(PyExc_ValueError, "a file source is (fd >= 0, size >= 0, step > 0)");
            return 0;
        }
        src->fd = fd;
        src->step = (size_t)step;
        *size = (uint64_t)length;
        return 1;
#else
        PyErr_SetString(PyExc_TypeError, "files are read from buffers on this platform");
        return 0;
#endif
    }
    if (PyObject_GetBuffer(arg, view, PyBUF_SIMPLE) < 0) return 0;
    src->base = view->buf ? (const unsigned char *)view->buf : empty;
    *size = (uint64_t)view->len;
    return 1;
}

static void source_close(Source *src, Py_buffer *view) {
    source_free(src);
    if (view->obj) PyBuffer_Release(view);
}

static int reader_open(Reader *rd, PyObject *source, Py_buffer *view, Py_ssize_t start,
                       int verify, PyObject *names, Py_ssize_t report_every, PyObject *progress,
                       long long record) {
    uint64_t size;
    if (!source_open(source, view, &rd->src, &size)) return 0;
    if (start < 0 || (uint64_t)start > size) {
        PyErr_SetString(PyExc_ValueError, "scan: start outside the buffer");
        return 0;
    }
    reader_start(rd, size, (uint64_t)start, verify, report_every, progress, record);
    if (!(rd->known = PyList_AsTuple(names)) || !tags_from_tuple(&rd->tags, rd->known)) {
        if (!PyErr_Occurred()) PyErr_NoMemory();
        return 0;
    }
    rd->tags.copy_names = !rd->src.base; /* (the names known point into rd->known's bytes) */
    return 1;
}

static void reader_close(Reader *rd, Py_buffer *view) {
    Py_XDECREF(rd->known);
    tags_free(&rd->tags);
    free(rd->fallbacks.data);
    source_close(&rd->src, view);
}

/* Sets PLACE mode up: bound (int64[k+1]) from the counts by rank, and columns of that
   many rows. */
static int place_open(Out *out, const int64_t *counts, int32_t n, const int32_t *ranks,
                      int64_t k, int with_flags, Buf *bounds) {
    int64_t *bound = calloc((size_t)k + 1, sizeof(int64_t));
    out->cursor = malloc((size_t)(k ? k : 1) * sizeof(int64_t));
    if (!bound || !out->cursor) { free(bound); return 0; }
    bounds->data = (char *)bound;
    bounds->used = bounds->cap = ((size_t)k + 1) * sizeof(int64_t);
    for (int32_t i = 0; i < n; i++) bound[ranks[i] + 1] += counts[i];
    for (int64_t r = 0; r < k; r++) bound[r + 1] += bound[r];
    memcpy(out->cursor, bound, (size_t)(k ? k : 1) * sizeof(int64_t));
    out->mode = PLACE;
    out->ranks = ranks;
    out->ranked = k;
    out->limit = bound + 1;
    size_t rows = (size_t)bound[k];
    Buf *columns[] = {&out->steps, &out->walls, &out->values, with_flags ? &out->flags : NULL};
    size_t items[] = {8, 8, 8, 1};
    for (int c = 0; c < 4; c++) {
        if (!columns[c]) continue;
        if (rows > SIZE_MAX / items[c]) return 0; /* (scan() bounds rows by the buffer) */
        size_t size = rows * items[c];
        if (!(columns[c]->data = malloc(size ? size : 1))) return 0;
        columns[c]->used = columns[c]->cap = size;
        out->rows[c] = columns[c]->data;
    }
    return 1;
}

/* Whether every row PLACE mode sized was written. */
static int place_complete(const Out *out) {
    for (int64_t r = 0; r < out->ranked; r++)
        if (out->cursor[r] != out->limit[r]) return 0;
    return 1;
}

static void out_free(Out *out) {
    free(out->steps.data); free(out->walls.data); free(out->values.data);
    free(out->tags.data); free(out->flags.data); free(out->counts.data);
    free(out->staged.data); free(out->cursor);
}

/* Checks rank: int32 ranks 0..k-1 of at least `tags` tags; sets *ranked to k. */
static int rank_valid(const Py_buffer *view, int32_t tags, int64_t *ranked) {
    const int32_t *ranks = view->buf;
    *ranked = view->len / 4;
    int valid = view->len % 4 == 0 && *ranked >= tags;
    for (int64_t r = 0; valid && r < *ranked; r++) valid = ranks[r] >= 0 && ranks[r] < *ranked;
    if (!valid) PyErr_SetString(PyExc_ValueError, "scan: rank must be int32 ranks of every tag");
    return valid;
}

static PyObject *scan(PyObject *self, PyObject *args) {
    Py_buffer view = {0}, rank_view = {0}, counts_view = {0};
    Py_ssize_t start, report_every;
    int verify, with_flags = 0;
    PyObject *source, *names, *progress, *rank = Py_None, *counts = Py_None;
    long long record;
    if (!PyArg_ParseTuple(args, "OnpO!LnO|OOp", &source, &start, &verify, &PyList_Type, &names,
                          &record, &report_every, &progress, &rank, &counts, &with_flags))
        return NULL;
    Reader rd = {0};
    Out out = {0};
    Buf bounds = {0};
    const int32_t *ranks = NULL;
    int64_t ranked = 0; /* k: how many tags `rank` orders */
    int grouped = 0, status = DECODED;
    PyObject *result = NULL, *fallback_items = NULL;
    Tags *tags = &rd.tags;
    if (!reader_open(&rd, source, &view, start, verify, names, report_every, progress, record))
        goto done;
    if (rank != Py_None) {
        if (PyObject_GetBuffer(rank, &rank_view, PyBUF_SIMPLE) < 0) goto done;
        if (!rank_valid(&rank_view, tags->count, &ranked)) goto done;
        ranks = rank_view.buf;
    }
    if (counts != Py_None) {
        if (PyObject_GetBuffer(counts, &counts_view, PyBUF_SIMPLE) < 0) goto done;
        if (!ranks || start != 0 || counts_view.len != (Py_ssize_t)tags->count * 8) {
            PyErr_SetString(PyExc_ValueError, "scan: counts need a rank, start 0 and every tag");
            goto done;
        }
        const int64_t *per_tag = counts_view.buf;
        uint64_t rows = 0; /* every point takes a byte of the buffer at least */
        for (int32_t i = 0; i < tags->count; i++) {
            if (per_tag[i] < 0 || (uint64_t)per_tag[i] > rd.size - rows) {
                PyErr_SetString(PyExc_ValueError, "scan: counts the buffer cannot hold");
                goto done;
            }
            rows += (uint64_t)per_tag[i];
        }
        if (!place_open(&out, per_tag, tags->count, ranks, ranked, with_flags, &bounds)) {
            PyErr_NoMemory();
            goto done;
        }
    }
    PyThreadState *released = PyEval_SaveThread();
    status = read_records(&rd, &out, &released);
    int whole = status == DECODED && !rd.failed && rd.pos == rd.size;
    if (out.mode == PLACE) {
        if (status == DECODED && !(whole && tags->count == tags->known && place_complete(&out)))
            status = MISMATCH;
        grouped = 1;
    } else if (ranks && whole && !rd.fallbacks.used && tags->count == tags->known) {
        /* no tag new to the caller's list (all ranked) */
        if (group_out(&out, ranks, ranked, &bounds)) grouped = 1;
        else status = NO_MEMORY;
    }
    PyEval_RestoreThread(released);
    if (status == NO_MEMORY) { PyErr_NoMemory(); goto done; }
    if (status == MISMATCH) {
        PyErr_SetString(RecordsChanged, "scan: the records differ from the counted ones");
        goto done;
    }
    if (status == CALLBACK_FAILED) goto done;
    if (!tags_to_list(tags, names) || !(fallback_items = fallback_list(&rd.fallbacks))) goto done;
    int flags = out.mode == PLACE ? with_flags : out.unusual;
    result = Py_BuildValue("(KOLNNNNNNN)", (unsigned long long)rd.pos,
                           rd.failed ? Py_True : Py_False, rd.record, buf_block(&out.steps),
                           buf_block(&out.walls), buf_block(&out.values),
                           grouped ? Py_NewRef(Py_None) : buf_block(&out.tags),
                           flags ? buf_block(&out.flags) : Py_NewRef(Py_None),
                           fallback_items, grouped ? buf_block(&bounds) : Py_NewRef(Py_None));
    fallback_items = NULL; /* the tuple owns it now */
done:
    Py_XDECREF(fallback_items);
    reader_close(&rd, &view);
    out_free(&out);
    free(bounds.data);
    if (counts_view.obj) PyBuffer_Release(&counts_view);
    if (rank_view.obj) PyBuffer_Release(&rank_view);
    return result;
}

static PyObject *count(PyObject *self, PyObject *args) {
    Py_buffer view = {0};
    Py_ssize_t report_every;
    int verify;
    PyObject *source, *names, *progress;
    if (!PyArg_ParseTuple(args, "OpO!nO", &source, &verify, &PyList_Type, &names, &report_every,
                          &progress))
        return NULL;
    Reader rd = {0};
    Out out = {.mode = COUNT};
    PyObject *result = NULL, *fallback_items = NULL;
    Tags *tags = &rd.tags;
    if (!reader_open(&rd, source, &view, 0, verify, names, report_every, progress, 0)) goto done;
    PyThreadState *released = PyEval_SaveThread();
    int status = read_records(&rd, &out, &released);
    /* a count for every tag, also one interned for a record handed over after all */
    if (status == DECODED) {
        if (counts_cover(&out, (size_t)tags->count))
            out.counts.used = (size_t)tags->count * sizeof(int64_t);
        else
            status = NO_MEMORY;
    }
    PyEval_RestoreThread(released);
    if (status == NO_MEMORY) { PyErr_NoMemory(); goto done; }
    if (status == CALLBACK_FAILED) goto done;
    if (!tags_to_list(tags, names) || !(fallback_items = fallback_list(&rd.fallbacks))) goto done;
    result = Py_BuildValue("(KOLNON)", (unsigned long long)rd.pos,
                           rd.failed ? Py_True : Py_False, rd.record, buf_block(&out.counts),
                           out.unusual ? Py_True : Py_False, fallback_items);
    fallback_items = NULL;
done:
    Py_XDECREF(fallback_items);
    reader_close(&rd, &view);
    out_free(&out);
    return result;
}


#define MAX_GROUP_COLUMNS 8

/*
 * group(tags, rank, sources, destinations, bounds): a stable counting sort of rows by
 * rank[tag], without the GIL. tags: int32[n]; rank: int32[k]; sources and destinations:
 * tuples of equally long buffers of n items each (item size 1, 4 or 8); bounds: int64[k+1],
 * filled so that rows of rank r land at destination rows bounds[r]..bounds[r+1].
 */
static PyObject *group(PyObject *self, PyObject *args) {
    Py_buffer tags, rank, bounds, src[MAX_GROUP_COLUMNS] = {{0}}, dst[MAX_GROUP_COLUMNS] = {{0}};
    PyObject *sources, *destinations, *result = NULL;
    if (!PyArg_ParseTuple(args, "y*y*O!O!w*", &tags, &rank, &PyTuple_Type, &sources,
                          &PyTuple_Type, &destinations, &bounds))
        return NULL;
    Py_ssize_t n = tags.len / 4, k = rank.len / 4, columns = PyTuple_GET_SIZE(sources), got = 0;
    int64_t *cursor = NULL;
    if (columns > MAX_GROUP_COLUMNS || PyTuple_GET_SIZE(destinations) != columns ||
        bounds.len % 8 || bounds.len / 8 != k + 1 || tags.len % 4 || rank.len % 4) {
        PyErr_SetString(PyExc_ValueError, "group: bad arguments");
        goto done;
    }
    for (; got < columns; got++) {
        if (PyObject_GetBuffer(PyTuple_GET_ITEM(sources, got), &src[got], PyBUF_SIMPLE) < 0) goto done;
        if (PyObject_GetBuffer(PyTuple_GET_ITEM(destinations, got), &dst[got], PyBUF_WRITABLE) < 0) {
            PyBuffer_Release(&src[got]);
            goto done;
        }
        Py_ssize_t size = n ? src[got].len / n : 1;
        if (src[got].len != dst[got].len || (n && src[got].len % n) ||
            (size != 1 && size != 4 && size != 8)) {
            PyBuffer_Release(&src[got]);
            PyBuffer_Release(&dst[got]);
            PyErr_SetString(PyExc_ValueError, "group: columns must match the tags");
            goto done;
        }
    }
    const int32_t *tag = tags.buf, *ranks = rank.buf;
    int64_t *bound = bounds.buf;
    for (Py_ssize_t i = 0; i < n; i++) {
        if (tag[i] < 0 || tag[i] >= k || ranks[tag[i]] < 0 || ranks[tag[i]] >= k) {
            PyErr_SetString(PyExc_ValueError, "group: tag index out of range");
            goto done;
        }
    }
    cursor = malloc((size_t)(k ? k : 1) * sizeof(int64_t));
    if (!cursor) { PyErr_NoMemory(); goto done; }
    Py_BEGIN_ALLOW_THREADS
    count_ranks(tag, (size_t)n, ranks, k, bound);
    for (Py_ssize_t c = 0; c < columns; c++) {
        memcpy(cursor, bound, (size_t)k * sizeof(int64_t));
        size_t size = n ? (size_t)(src[c].len / n) : 1;
        scatter_rows(dst[c].buf, src[c].buf, size, (size_t)n, tag, ranks, cursor);
    }
    Py_END_ALLOW_THREADS
    result = Py_None;
    Py_INCREF(result);
done:
    free(cursor);
    for (Py_ssize_t c = 0; c < got; c++) {
        PyBuffer_Release(&src[c]);
        PyBuffer_Release(&dst[c]);
    }
    PyBuffer_Release(&tags);
    PyBuffer_Release(&rank);
    PyBuffer_Release(&bounds);
    return result;
}


/*
 * join(pieces, destinations, start): each tuple of pieces in pieces[c] written one after
 * the other into destinations[c] from row `start` (rows of the destination's item size),
 * with one release of the GIL for all. A piece is a buffer, copied, or a (value, rows)
 * pair: `rows` rows of the integer `value` (a run's or a tag's code). (numpy's copies
 * release and take the GIL back for every piece: with threads, each is a hand-over the
 * other threads wait for.)
 */
typedef struct {
    const void *from; /* NULL: a fill */
    long long value;
    Py_ssize_t bytes;
} Piece;

static void fill_items(char *to, Py_ssize_t item, long long value, Py_ssize_t rows) {
    for (Py_ssize_t r = 0; r < rows; r++, to += item) {
        switch (item) {
        case 1: *(int8_t *)to = (int8_t)value; break;
        case 2: *(int16_t *)to = (int16_t)value; break;
        case 4: *(int32_t *)to = (int32_t)value; break;
        default: *(int64_t *)to = (int64_t)value; break;
        }
    }
}

static PyObject *join(PyObject *self, PyObject *args) {
    PyObject *pieces, *destinations, *result = NULL;
    Py_ssize_t start, columns, total = 0;
    if (!PyArg_ParseTuple(args, "O!O!n", &PyTuple_Type, &pieces, &PyTuple_Type, &destinations,
                          &start))
        return NULL;
    columns = PyTuple_GET_SIZE(pieces);
    if (PyTuple_GET_SIZE(destinations) != columns || start < 0) {
        PyErr_SetString(PyExc_ValueError, "join: one destination per column, from start >= 0");
        return NULL;
    }
    for (Py_ssize_t c = 0; c < columns; c++) {
        PyObject *column = PyTuple_GET_ITEM(pieces, c);
        if (!PyTuple_Check(column)) {
            PyErr_SetString(PyExc_TypeError, "join: pieces must be tuples");
            return NULL;
        }
        total += PyTuple_GET_SIZE(column);
    }
    /* the copied pieces' views, then the destinations' */
    Py_buffer *views = PyMem_Calloc((size_t)(total + columns) + 1, sizeof(Py_buffer));
    Piece *items = PyMem_Calloc((size_t)total + 1, sizeof(Piece));
    if (!views || !items) { PyErr_NoMemory(); goto done; }
    Py_ssize_t at = 0;
    for (Py_ssize_t c = 0; c < columns; c++) {
        Py_buffer *out = &views[total + c];
        if (PyObject_GetBuffer(PyTuple_GET_ITEM(destinations, c), out,
                               PyBUF_WRITABLE | PyBUF_FORMAT) < 0)
            goto done;
        Py_ssize_t item = out->itemsize;
        if (item != 1 && item != 2 && item != 4 && item != 8) {
            PyErr_SetString(PyExc_ValueError, "join: destinations of 1, 2, 4 or 8-byte items");
            goto done;
        }
        if (start > out->len / item) { /* (checked before start * item is formed) */
            PyErr_SetString(PyExc_ValueError, "join: start past the end of a destination");
            goto done;
        }
        PyObject *column = PyTuple_GET_ITEM(pieces, c);
        Py_ssize_t end = start;
        for (Py_ssize_t p = 0; p < PyTuple_GET_SIZE(column); p++, at++) {
            PyObject *piece = PyTuple_GET_ITEM(column, p);
            Py_ssize_t rows;
            if (PyTuple_Check(piece)) {
                if (!PyArg_ParseTuple(piece, "Ln", &items[at].value, &rows)) goto done;
                if (rows < 0) {
                    PyErr_SetString(PyExc_ValueError, "join: a fill of fewer than 0 rows");
                    goto done;
                }
            } else {
                if (PyObject_GetBuffer(piece, &views[at], PyBUF_SIMPLE) < 0) goto done;
                if (views[at].len % item) {
                    PyErr_SetString(PyExc_ValueError, "join: a piece of part of an item");
                    goto done;
                }
                items[at].from = views[at].buf;
                rows = views[at].len / item;
            }
            /* the bound first: rows * item may overflow a fill's row count */
            if (rows > out->len / item - end) {
                PyErr_SetString(PyExc_ValueError, "join: the pieces overflow the destination");
                goto done;
            }
            items[at].bytes = rows * item; /* <= out->len */
            end += rows;
        }
    }
    Py_BEGIN_ALLOW_THREADS
    at = 0;
    for (Py_ssize_t c = 0; c < columns; c++) {
        Py_ssize_t item = views[total + c].itemsize;
        char *to = (char *)views[total + c].buf + start * item;
        for (Py_ssize_t p = 0; p < PyTuple_GET_SIZE(PyTuple_GET_ITEM(pieces, c)); p++, at++) {
            if (items[at].from) memcpy(to, items[at].from, (size_t)items[at].bytes);
            else fill_items(to, item, items[at].value, items[at].bytes / item);
            to += items[at].bytes;
        }
    }
    Py_END_ALLOW_THREADS
    result = Py_NewRef(Py_None);
done:
    if (views)
        for (Py_ssize_t v = 0; v < total + columns; v++)
            if (views[v].obj) PyBuffer_Release(&views[v]);
    PyMem_Free(views);
    PyMem_Free(items);
    return result;
}

/* ---------- text rendering of number columns (CSV and sheet XML) ---------- */

static int buf_text(Buf *b, const char *text) { return buf_push(b, text, strlen(text)); }

/* ---------- shortest round-trip doubles, Python's repr() format ---------- */

/*
 * repr() goes through David Gay's dtoa, ~0.5 us a number: the slowest part of writing
 * millions of rows. For the numbers training curves are made of (1e-4 <= |v| < 2**53)
 * the shortest digits are found here exactly, with 128-bit integers, by the digit
 * removal loop of Ulf Adams' Ryu (PLDI 2018): scale the rounding interval of v to
 * integers vm < vr < vp of ~17 digits, drop digits while the interval still holds a
 * shorter number, round the last one. Other numbers (and compilers without __int128)
 * go to PyOS_double_to_string. A test compares both on millions of doubles.
 */
#if defined(__SIZEOF_INT128__)
#define HAVE_FAST_REPR 1
typedef unsigned __int128 u128;

static u128 pow10_table[21]; /* exact 10**p, filled at import */

static void pow10_init(void) {
    pow10_table[0] = 1;
    for (int p = 1; p < 21; p++) pow10_table[p] = pow10_table[p - 1] * 10;
}

/* What a number's dropped fraction was, as far as rounding to nearest cares. */
enum { FRACTION_ZERO, FRACTION_BELOW_HALF, FRACTION_HALF, FRACTION_ABOVE_HALF };

/* floor(x * 10**p / 2**s); *exact: whether that is exact; *fraction: the dropped part */
static uint64_t scaled(uint64_t x, u128 ten_p, int s, int *exact, int *fraction) {
    u128 product = (u128)x * ten_p;
    u128 rest = product & (((u128)1 << s) - 1), half = (u128)1 << (s - 1);
    *exact = rest == 0;
    *fraction = rest == 0 ? FRACTION_ZERO : rest < half ? FRACTION_BELOW_HALF
              : rest == half ? FRACTION_HALF : FRACTION_ABOVE_HALF;
    return (uint64_t)(product >> s);
}

static int digits_u64(uint64_t v, char *out) {
    char tmp[24];
    int n = 0;
    do { tmp[n++] = (char)('0' + v % 10); v /= 10; } while (v);
    for (int i = 0; i < n; i++) out[i] = tmp[n - 1 - i];
    return n;
}

/* repr(v) into out (>= 32 bytes) for 1e-4 <= |v| < 2**53; 0 when v is outside. */
static int fast_repr(double v, char *out) {
    double a = fabs(v);
    if (!(a >= 1e-4 && a < 9007199254740992.0)) return 0;
    uint64_t bits;
    memcpy(&bits, &v, 8);
    uint64_t fraction = bits & ((1ULL << 52) - 1);
    int e = (int)((bits >> 52) & 0x7FF) - 1075; /* v = m * 2**e */
    uint64_t m = fraction | (1ULL << 52);
    /* The reals that parse back to v lie between the midpoints mm, mp to its neighbours,
       in units of 2**(e-2) around mv = 4m (the gap below a power of two is half as
       wide); the midpoints themselves belong to v when m is even (ties go to even). */
    uint64_t mv = 4 * m, mp = mv + 2, mm = mv - 1 - (fraction != 0);
    int ends_belong = (m & 1) == 0;
    int s = 2 - e; /* 2..68 in this range */
    /* p = 16 - floor(log10 a): v * 10**p has about 17 digits, as many as a double needs */
    static const double powers[] = {1e-3, 1e-2, 1e-1, 1e0, 1e1, 1e2, 1e3, 1e4,
                                    1e5,  1e6,  1e7,  1e8, 1e9, 1e10, 1e11, 1e12,
                                    1e13, 1e14, 1e15};
    int k = 0;
    while (k < (int)(sizeof powers / sizeof powers[0]) && a >= powers[k]) k++;
    u128 ten_p = pow10_table[20 - k];
    int exact, rounding, ignored;
    uint64_t vr = scaled(mv, ten_p, s, &ignored, &rounding);
    uint64_t hi = scaled(mp, ten_p, s, &exact, &ignored);
    if (exact && !ends_belong) hi--;
    uint64_t lo = scaled(mm, ten_p, s, &exact, &ignored);
    if (!exact || !ends_belong) lo++;
    /* lo..hi: the integers (units of 10**-p) that parse back to v. While a multiple of
       ten is among them, one digit fewer is enough. */
    int removed = 0;
    while (hi / 10 >= (lo + 9) / 10) {
        int digit = (int)(vr % 10);
        rounding = digit > 5 ? FRACTION_ABOVE_HALF
                 : digit == 5 ? (rounding == FRACTION_ZERO ? FRACTION_HALF : FRACTION_ABOVE_HALF)
                 : digit > 0 || rounding != FRACTION_ZERO ? FRACTION_BELOW_HALF : FRACTION_ZERO;
        vr /= 10; hi /= 10; lo = (lo + 9) / 10;
        removed++;
    }
    /* the shortest candidate nearest to v (ties to even), kept inside lo..hi */
    uint64_t output = vr + (rounding == FRACTION_ABOVE_HALF ||
                            (rounding == FRACTION_HALF && (vr & 1)));
    if (output < lo) output = lo;
    if (output > hi) output = hi;
    int p = 20 - k;
    char digits[24];
    int n = digits_u64(output, digits);
    int point = n + removed - p; /* decimal point position relative to the digits */
    char *o = out;
    if (v < 0) *o++ = '-';
    if (point <= 0) {
        *o++ = '0'; *o++ = '.';
        for (int i = 0; i < -point; i++) *o++ = '0';
        memcpy(o, digits, (size_t)n); o += n;
    } else if (point >= n) {
        memcpy(o, digits, (size_t)n); o += n;
        for (int i = 0; i < point - n; i++) *o++ = '0';
        *o++ = '.'; *o++ = '0';
    } else {
        memcpy(o, digits, (size_t)point); o += point;
        *o++ = '.';
        memcpy(o, digits + point, (size_t)(n - point)); o += n - point;
    }
    /* shortest digits never end in 0 after the point */
    return (int)(o - out);
}
#endif

/* Python's repr() of a double: the shortest text that reads back as the same double.
   The renderers run without the GIL (*released is their thread state); Python's own
   formatter, for numbers outside fast_repr's range, takes it back for the call. */
static int buf_double(Buf *b, double v, PyThreadState **released) {
#ifdef HAVE_FAST_REPR
    char fast[40];
    int length = fast_repr(v, fast);
    if (length) return buf_push(b, fast, (size_t)length);
#endif
    PyEval_RestoreThread(*released);
    char *text = PyOS_double_to_string(v, 'r', 0, Py_DTSF_ADD_DOT_0, NULL);
    int ok = text && buf_text(b, text);
    PyMem_Free(text);
    *released = PyEval_SaveThread();
    return ok;
}

/* After a renderer's loop, with the GIL held again: the error it stopped for. */
static void render_failed(void) {
    if (!PyErr_Occurred()) PyErr_NoMemory();
}

static int buf_int(Buf *b, long long v) {
    char text[24], *end = text + sizeof text, *o = end;
    /* through unsigned, so that LLONG_MIN negates without overflow */
    unsigned long long u = v < 0 ? 0ULL - (unsigned long long)v : (unsigned long long)v;
    do { *--o = (char)('0' + u % 10); u /= 10; } while (u);
    if (v < 0) *--o = '-';
    return buf_push(b, o, (size_t)(end - o));
}

/* Borrows the float64 buffers of a tuple of columns, each `n` long. */
static int float_columns(PyObject *tuple, Py_buffer *views, Py_ssize_t count, Py_ssize_t n) {
    for (Py_ssize_t j = 0; j < count; j++) {
        if (PyObject_GetBuffer(PyTuple_GET_ITEM(tuple, j), &views[j], PyBUF_SIMPLE) < 0 ||
            views[j].len != n * 8) {
            if (!PyErr_Occurred())
                PyErr_SetString(PyExc_ValueError, "columns must be float64 of equal length");
            for (Py_ssize_t k = 0; k <= j && k < count; k++)
                if (views[k].obj) PyBuffer_Release(&views[k]);
            return 0;
        }
    }
    return 1;
}

/*
 * csv_rows(prefix, steps, columns) -> bytes: "<prefix>step,c1,c2,...\n" lines.
 * NaN is an empty field, infinities inf/-inf, other numbers as Python's repr().
 */
static PyObject *csv_rows(PyObject *self, PyObject *args) {
    Py_buffer prefix, steps, *views = NULL;
    PyObject *tuple;
    if (!PyArg_ParseTuple(args, "y*y*O!", &prefix, &steps, &PyTuple_Type, &tuple)) return NULL;
    Py_ssize_t count = PyTuple_GET_SIZE(tuple), n = steps.len / 8;
    PyObject *result = NULL;
    Buf out = {0};
    views = PyMem_Calloc((size_t)count + 1, sizeof(Py_buffer));
    if (!views || !float_columns(tuple, views, count, n)) {
        if (!PyErr_Occurred()) PyErr_NoMemory();
        count = 0;
        goto done;
    }
    const int64_t *s = steps.buf;
    int ok = 1;
    PyThreadState *released = PyEval_SaveThread(); /* other threads render other blocks */
    for (Py_ssize_t i = 0; i < n && ok; i++) {
        ok = buf_push(&out, prefix.buf, (size_t)prefix.len) && buf_int(&out, s[i]);
        for (Py_ssize_t j = 0; j < count && ok; j++) {
            double v = ((const double *)views[j].buf)[i];
            ok = buf_text(&out, ",") && (v != v || buf_double(&out, v, &released));
        }
        ok = ok && buf_text(&out, "\n");
    }
    PyEval_RestoreThread(released);
    if (!ok) { render_failed(); goto done; }
    result = buf_bytes(&out);
done:
    free(out.data);
    for (Py_ssize_t j = 0; j < count; j++) PyBuffer_Release(&views[j]);
    PyMem_Free(views);
    PyBuffer_Release(&prefix);
    PyBuffer_Release(&steps);
    return result;
}

#define EXCEL_COLUMNS 16384 /* A to XFD */

/* <c r="B12" s="3" -- the open start tag of a cell (snprintf is 3x slower); column is
   0-based, below EXCEL_COLUMNS */
static int cell_ref(Buf *b, int column, long long row, int style) {
    char letters[3];
    size_t n = 0;
    if (column >= 26 + 26 * 26) letters[n++] = (char)('A' + (column - 26) / (26 * 26) - 1);
    if (column >= 26) letters[n++] = (char)('A' + (column / 26 - 1) % 26);
    letters[n++] = (char)('A' + column % 26);
    return buf_text(b, "<c r=\"") && buf_push(b, letters, n) && buf_int(b, row) &&
           buf_text(b, "\"") && (!style || (buf_text(b, " s=\"") && buf_int(b, style) &&
                                            buf_text(b, "\"")));
}

/*
 * sheet_rows(first_row, run_text, steps, columns, styles, nan_words) -> bytes: <row>
 * elements of a sheet: run_text (XML-escaped, b"" for none) in column A, then the
 * step, then each float64 column with its cell style (0: none). A non-finite value
 * becomes the text nan/inf/-inf where nan_words[j] is true, else an empty cell.
 */
static PyObject *sheet_rows(PyObject *self, PyObject *args) {
    long long row;
    Py_buffer run, steps, *views = NULL;
    PyObject *tuple, *styles, *words;
    if (!PyArg_ParseTuple(args, "Ly*y*O!O!O!", &row, &run, &steps, &PyTuple_Type, &tuple,
                          &PyTuple_Type, &styles, &PyTuple_Type, &words))
        return NULL;
    Py_ssize_t count = PyTuple_GET_SIZE(tuple), n = steps.len / 8;
    PyObject *result = NULL;
    Buf out = {0};
    int *style = PyMem_Calloc((size_t)count + 1, 2 * sizeof(int)), *word = NULL;
    views = PyMem_Calloc((size_t)count + 1, sizeof(Py_buffer));
    if (!style || !views) {
        PyErr_NoMemory();
        count = 0;
        goto done;
    }
    word = style + count + 1;
    if (row < 0 || (long long)n > LLONG_MAX - row) { /* (row++ must not overflow) */
        PyErr_SetString(PyExc_ValueError, "sheet_rows: row numbers out of range");
        count = 0;
        goto done;
    }
    /* the run column (when run_text is given) and the step column, then these: up
       to Excel's last column */
    if (count > EXCEL_COLUMNS - 1 - (run.len ? 1 : 0) || PyTuple_GET_SIZE(styles) != count ||
        PyTuple_GET_SIZE(words) != count || !float_columns(tuple, views, count, n)) {
        if (!PyErr_Occurred()) PyErr_SetString(PyExc_ValueError, "bad column description");
        count = 0;
        goto done;
    }
    for (Py_ssize_t j = 0; j < count; j++) {
        style[j] = (int)PyLong_AsLong(PyTuple_GET_ITEM(styles, j));
        word[j] = PyObject_IsTrue(PyTuple_GET_ITEM(words, j));
        if ((style[j] == -1 || word[j] < 0) && PyErr_Occurred()) goto done;
    }
    const int64_t *s = steps.buf;
    int first = run.len ? 1 : 0, ok = 1;
    PyThreadState *released = PyEval_SaveThread(); /* other threads render other blocks */
    for (Py_ssize_t i = 0; i < n && ok; i++, row++) {
        ok = buf_text(&out, "<row r=\"") && buf_int(&out, row) && buf_text(&out, "\">");
        if (run.len)
            ok = ok && cell_ref(&out, 0, row, 0) && buf_text(&out, " t=\"inlineStr\"><is><t>") &&
                 buf_push(&out, run.buf, (size_t)run.len) && buf_text(&out, "</t></is></c>");
        ok = ok && cell_ref(&out, first, row, 0) && buf_text(&out, "><v>") &&
             buf_int(&out, s[i]) && buf_text(&out, "</v></c>");
        for (Py_ssize_t j = 0; j < count && ok; j++) {
            double v = ((const double *)views[j].buf)[i];
            int column = first + 1 + (int)j;
            if (v - v == 0.0) {
                ok = cell_ref(&out, column, row, style[j]) && buf_text(&out, "><v>") &&
                     buf_double(&out, v, &released) && buf_text(&out, "</v></c>");
            } else if (word[j]) {
                const char *w = v != v ? "nan" : (v > 0 ? "inf" : "-inf");
                ok = cell_ref(&out, column, row, 0) &&
                     buf_text(&out, " t=\"inlineStr\"><is><t>") && buf_text(&out, w) &&
                     buf_text(&out, "</t></is></c>");
            }
        }
        ok = ok && buf_text(&out, "</row>");
    }
    PyEval_RestoreThread(released);
    if (!ok) { render_failed(); goto done; }
    result = buf_bytes(&out);
done:
    free(out.data);
    for (Py_ssize_t j = 0; j < count; j++) PyBuffer_Release(&views[j]);
    PyMem_Free(views);
    PyMem_Free(style);
    PyBuffer_Release(&run);
    PyBuffer_Release(&steps);
    return result;
}

/* increasing(int64 buffer) -> bool: whether every value is above the one before it.
   (The common case of a tag's steps, checked for every tag of every run: numpy's
   three calls cost ~10 us each time.) */
static PyObject *increasing(PyObject *self, PyObject *args) {
    Py_buffer view;
    if (!PyArg_ParseTuple(args, "y*", &view)) return NULL;
    const int64_t *v = view.buf;
    Py_ssize_t n = view.len / 8, i = 1;
    while (i < n && v[i] > v[i - 1]) i++;
    PyBuffer_Release(&view);
    return PyBool_FromLong(i >= n);
}

#ifndef _WIN32
/* The paths of a list encoded for the file system, as a new list of bytes. The list is
   copied first: encoding a path-like object runs its __fspath__, which could change
   the list under the loop. */
static PyObject *encode_paths(PyObject *paths) {
    PyObject *given = PySequence_Tuple(paths), *encoded = NULL;
    if (!given) return NULL;
    Py_ssize_t n = PyTuple_GET_SIZE(given);
    if (!(encoded = PyList_New(n))) goto done;
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *bytes = NULL;
        if (!PyUnicode_FSConverter(PyTuple_GET_ITEM(given, i), &bytes)) {
            Py_CLEAR(encoded);
            goto done;
        }
        PyList_SET_ITEM(encoded, i, bytes);
    }
done:
    Py_DECREF(given);
    return encoded;
}

/* read_whole()'s error for anything but a regular file (a FIFO, a device). */
#define NOT_REGULAR (-1)

/* The OSError of read_whole()'s error for `path`. */
static PyObject *read_error(int error, PyObject *path) {
    if (error == NOT_REGULAR) {
        PyObject *raised =
            PyObject_CallFunction(PyExc_OSError, "isO", EINVAL, "not a regular file", path);
        if (raised) {
            PyErr_SetObject(PyExc_OSError, raised);
            Py_DECREF(raised);
        }
        return NULL;
    }
    errno = error;
    return PyErr_SetFromErrnoWithFilenameObject(PyExc_OSError, path);
}

/* Reads the file `name` whole into `contents` (reusing its memory when big enough) when
   it holds fewer than `limit` bytes (*big is set when it holds more). Returns 0, the
   errno of the failing call, or NOT_REGULAR. Needs no GIL. */
static int read_whole(const char *name, Py_ssize_t limit, Buf *contents, int *big) {
    int error = 0;
    struct stat st;
    contents->used = 0;
    /* O_NONBLOCK: a FIFO named like an event file would block open() until a writer
       came (it changes nothing for a regular file) */
    int fd = open(name, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
    if (fd < 0) error = errno;
    else if (fstat(fd, &st) < 0) error = errno;
    else if (!S_ISREG(st.st_mode)) error = NOT_REGULAR;
    else if (st.st_size >= limit) *big = 1;
    else if (contents->cap < (size_t)st.st_size || !contents->data) {
        free(contents->data);
        contents->cap = 0;
        if (!(contents->data = malloc(st.st_size ? (size_t)st.st_size : 1))) error = ENOMEM;
        else contents->cap = (size_t)st.st_size;
    }
    if (!error && !*big && fd >= 0) {
        /* up to the size fstat gave: a file being written is read as it was then */
        size_t size = (size_t)st.st_size;
        while (contents->used < size) {
            ssize_t n = read(fd, contents->data + contents->used, size - contents->used);
            if (n < 0 && errno == EINTR) continue;
            if (n < 0) { error = errno; break; }
            if (n == 0) break; /* shrunk meanwhile */
            contents->used += (size_t)n;
        }
    }
    if (fd >= 0) close(fd);
    return error;
}

/* read_small(path, limit) -> Block | None: the whole file when it holds fewer than `limit`
   bytes; None when it holds more (the caller reads it a window at a time). Opening,
   sizing, reading and closing take one release of the GIL. With threads reading many
   small files, each release is a hand-over that the other threads wait for, and
   Python's open() and read() make about ten per file. */
static PyObject *read_small(PyObject *self, PyObject *args) {
    PyObject *path, *encoded = NULL;
    Py_ssize_t limit;
    if (!PyArg_ParseTuple(args, "On", &path, &limit)) return NULL;
    if (!PyUnicode_FSConverter(path, &encoded)) return NULL;
    const char *name = PyBytes_AS_STRING(encoded);
    int error = 0, big = 0;
    Buf contents = {0};
    Py_BEGIN_ALLOW_THREADS
    error = read_whole(name, limit, &contents, &big);
    Py_END_ALLOW_THREADS
    Py_DECREF(encoded);
    if (error) {
        free(contents.data);
        return read_error(error, path);
    }
    if (big) Py_RETURN_NONE;
    PyObject *block = buf_block(&contents);
    free(contents.data); /* NULL once the block owns it */
    return block;
}

/* ---------- prefetching: small files read and scanned ahead on C threads ----------

   With many small runs read on Python threads, every file costs the threads a few
   hand-overs of the GIL (each C call releases it and takes it back), and on a virtual
   machine a hand-over to a sleeping thread is slow. Here C threads that never take the
   GIL read and scan the files, in the order given, while one Python thread turns the
   results into series: the two overlap, and nothing waits for the GIL. Rather than
   wait for a file, take() reads the next one no worker has claimed: the taker is one
   of the readers. (It used to wait, beside a worker per core: on two cores three busy
   threads time-shared two.) */

/* One file of the list, as a worker left it. */
typedef struct {
    char *path;
    int done;    /* set under the lock */
    int error;   /* errno of opening or reading it: the caller reads it again and reports */
    int big;     /* `limit` bytes or more: the caller reads it in windows */
    int status;  /* DECODED, or NO_MEMORY */
    int grouped; /* read whole and undamaged, with no record for protobuf: grouped by tag */
    /* grouped: steps, wall times, values, flags (when unusual); bounds; the tag names,
       each as its uint64 length and bytes, in the order they first appear */
    Buf columns[4], bounds, names;
    /* not grouped: the file's bytes and the scan as it stopped, for Python to go on */
    Buf contents;
    Reader rd; /* pos, failed, record (also when grouped), fallbacks, tags */
    Out out;
    size_t held; /* bytes the result holds */
} Fetched;

/* A reading thread's buffers, reused from file to file: memory freed and allocated
   again by another thread costs page faults (the allocator gives it back to the
   system), so only the grouped columns, which are handed over, are new for each file. */
typedef struct {
    Buf contents;
    Out out;
} Scratch;

static void scratch_free(Scratch *s) {
    free(s->contents.data);
    out_free(&s->out);
    memset(s, 0, sizeof *s);
}

typedef struct {
    PyObject_HEAD
    pthread_mutex_t lock;
    pthread_cond_t changed; /* a file done or taken, or closing */
    Fetched *files;
    Py_ssize_t count, claimed, taken;
    size_t held, budget; /* bytes of files done and not taken; the most held ahead */
    Py_ssize_t limit;
    int verify, stop, workers, started;
    pthread_t *threads;
    Scratch own; /* for the files take() reads itself */
    int busy;    /* a take() is running (set and read with the GIL held) */
} Prefetch;

/* The names of the tags, as Fetched.names holds them. */
static int names_copy(const Tags *tags, Buf *names) {
    for (int32_t i = 0; i < tags->count; i++) {
        uint64_t length = tags->order[i].len;
        if (!buf_push(names, &length, sizeof length) ||
            !buf_push(names, tags->order[i].ptr, (size_t)length))
            return 0;
    }
    return 1;
}

/* The grouped part of a file read whole: columns, bounds and names; 0: out of memory. */
static int fetched_group(Fetched *f, Out *out) {
    int32_t k = f->rd.tags.count;
    int32_t *ranks = malloc((size_t)(k ? k : 1) * sizeof(int32_t));
    if (!ranks) return 0;
    for (int32_t i = 0; i < k; i++) ranks[i] = i;
    int ok = group_columns(out, ranks, k, &f->bounds, f->columns) &&
             names_copy(&f->rd.tags, &f->names);
    free(ranks);
    return ok;
}

/* Reads and scans one file, without the GIL, in `scratch`'s buffers. A file read whole
   and undamaged is grouped by tag (tags in the order they first appear) into new
   memory; any other keeps the buffers (the scratch starts afresh). */
static void fetch_one(Fetched *f, Scratch *scratch, int verify, Py_ssize_t limit) {
    f->error = read_whole(f->path, limit, &scratch->contents, &f->big);
    if (f->error || f->big) return;
    Out *out = &scratch->out;
    out->steps.used = out->walls.used = out->values.used = out->tags.used = 0;
    out->flags.used = out->staged.used = out->points = 0;
    out->unusual = 0;
    Reader *rd = &f->rd;
    rd->src.base = scratch->contents.data ? (const unsigned char *)scratch->contents.data
                                          : (const unsigned char *)"";
    reader_start(rd, (uint64_t)scratch->contents.used, 0, verify, 0, Py_None, 0);
    if (!tags_start(&rd->tags)) { f->status = NO_MEMORY; return; }
    f->status = read_records(rd, out, NULL);
    if (f->status == DECODED && !rd->failed && rd->pos == rd->size && !rd->fallbacks.used) {
        f->grouped = 1;
        if (!fetched_group(f, out)) f->status = NO_MEMORY;
        f->held = out->points * 25 + f->bounds.used + f->names.used;
        tags_free(&rd->tags); /* (they point into the scratch's contents) */
        memset(&rd->tags, 0, sizeof rd->tags);
        return;
    }
    f->contents = scratch->contents; /* handed over with the scan as it stopped */
    f->out = *out;
    memset(scratch, 0, sizeof *scratch);
    f->held = f->contents.used + f->out.points * 29 + rd->fallbacks.used;
}

static void fetched_free(Fetched *f) {
    free(f->path);
    for (int c = 0; c < 4; c++) free(f->columns[c].data);
    free(f->bounds.data);
    free(f->names.data);
    free(f->contents.data);
    tags_free(&f->rd.tags);
    free(f->rd.fallbacks.data);
    out_free(&f->out);
    memset(f, 0, sizeof *f);
}

/* Whether a reader (a worker, or take()) may claim the next file: one is left, and it
   is the one taken next or the results ahead are within the budget. Lock held. */
static int may_claim(const Prefetch *p) {
    return p->claimed < p->count && (p->claimed == p->taken || p->held < p->budget);
}

/* Claims the next file and reads it into `scratch`'s buffers; called, and returns,
   with the lock held (not held while reading). */
static void claim_and_fetch(Prefetch *p, Scratch *scratch) {
    Fetched *f = &p->files[p->claimed++];
    pthread_mutex_unlock(&p->lock);
    fetch_one(f, scratch, p->verify, p->limit);
    pthread_mutex_lock(&p->lock);
    f->done = 1;
    p->held += f->held;
    pthread_cond_broadcast(&p->changed);
}

static void *prefetch_worker(void *arg) {
    Prefetch *p = arg;
    Scratch scratch = {0};
    pthread_mutex_lock(&p->lock);
    while (!p->stop && p->claimed < p->count) {
        if (may_claim(p)) claim_and_fetch(p, &scratch);
        else pthread_cond_wait(&p->changed, &p->lock); /* ahead by the budget */
    }
    pthread_mutex_unlock(&p->lock);
    scratch_free(&scratch);
    return NULL;
}

/* Stops the workers (each finishes its file) and waits for them; no GIL needed. */
static void prefetch_stop(Prefetch *p) {
    if (!p->started) return;
    pthread_mutex_lock(&p->lock);
    p->stop = 1;
    pthread_cond_broadcast(&p->changed);
    pthread_mutex_unlock(&p->lock);
    for (int i = 0; i < p->workers; i++) pthread_join(p->threads[i], NULL);
    p->workers = 0;
}

/* take() and close() are for one thread at a time: another thread's call while a
   take() waits (without the GIL) would free or take the file it is reading. */
static int prefetch_idle(Prefetch *p) {
    if (p->busy)
        PyErr_SetString(PyExc_RuntimeError, "Prefetch: another thread is taking a file");
    return !p->busy;
}

static PyObject *prefetch_close(PyObject *self, PyObject *noargs) {
    Prefetch *p = (Prefetch *)self;
    if (!prefetch_idle(p)) return NULL;
    Py_BEGIN_ALLOW_THREADS
    prefetch_stop(p);
    Py_END_ALLOW_THREADS
    for (Py_ssize_t i = 0; p->files && i < p->count; i++) fetched_free(&p->files[i]);
    scratch_free(&p->own);
    p->taken = p->claimed = p->count; /* nothing left to take */
    Py_RETURN_NONE;
}

static void prefetch_dealloc(PyObject *self) {
    Prefetch *p = (Prefetch *)self;
    Py_XDECREF(prefetch_close(self, NULL));
    if (p->started) {
        pthread_cond_destroy(&p->changed);
        pthread_mutex_destroy(&p->lock);
    }
    free(p->files);
    free(p->threads);
    Py_TYPE(self)->tp_free(self);
}

/* Prefetch(paths, verify, workers, limit, budget): starts `workers` threads reading and
   scanning the files in order, at most `budget` bytes of results ahead of take(). */
static PyObject *prefetch_new(PyTypeObject *type, PyObject *args, PyObject *kwargs) {
    PyObject *paths;
    int verify, workers;
    Py_ssize_t limit, budget;
    if (!PyArg_ParseTuple(args, "O!pinn", &PyList_Type, &paths, &verify, &workers, &limit,
                          &budget))
        return NULL;
    PyObject *encoded = encode_paths(paths);
    if (!encoded) return NULL;
    Prefetch *p = (Prefetch *)type->tp_alloc(type, 0);
    if (!p) {
        Py_DECREF(encoded);
        return NULL;
    }
    p->count = PyList_GET_SIZE(encoded);
    p->verify = verify;
    p->limit = limit;
    p->budget = budget > 0 ? (size_t)budget : 0;
    p->files = calloc((size_t)(p->count ? p->count : 1), sizeof(Fetched));
    p->threads = calloc((size_t)(workers > 0 ? workers : 1), sizeof(pthread_t));
    for (Py_ssize_t i = 0; p->files && i < p->count; i++)
        if (!(p->files[i].path = strdup(PyBytes_AS_STRING(PyList_GET_ITEM(encoded, i))))) break;
    int complete = p->files && p->threads && (!p->count || p->files[p->count - 1].path);
    Py_DECREF(encoded);
    if (!complete) {
        Py_DECREF(p);
        return PyErr_NoMemory();
    }
    if (pthread_mutex_init(&p->lock, NULL) != 0) {
        Py_DECREF(p);
        return PyErr_NoMemory();
    }
    if (pthread_cond_init(&p->changed, NULL) != 0) {
        pthread_mutex_destroy(&p->lock);
        Py_DECREF(p);
        return PyErr_NoMemory();
    }
    p->started = 1;
    /* threads that cannot start are no error: take() reads what no worker claimed */
    for (int i = 0; i < workers; i++) {
        if (pthread_create(&p->threads[p->workers], NULL, prefetch_worker, p) != 0) break;
        p->workers++;
    }
    return (PyObject *)p;
}

/* The tag names of a grouped file, as a list of bytes. */
static PyObject *names_list(const Buf *names) {
    PyObject *list = PyList_New(0);
    for (size_t at = 0; list && at < names->used;) {
        uint64_t length;
        memcpy(&length, names->data + at, sizeof length);
        at += sizeof length;
        PyObject *name = PyBytes_FromStringAndSize(names->data + at, (Py_ssize_t)length);
        at += (size_t)length;
        if (!name || PyList_Append(list, name) < 0) Py_CLEAR(list);
        Py_XDECREF(name);
    }
    return list;
}

static PyObject *fetched_grouped(Fetched *f) {
    PyObject *names = names_list(&f->names), *fallback_items = PyList_New(0);
    if (!names || !fallback_items) {
        Py_XDECREF(names);
        Py_XDECREF(fallback_items);
        return NULL;
    }
    Buf *c = f->columns;
    return Py_BuildValue("(OKOLNNNONNNN)", Py_None, (unsigned long long)f->rd.pos, Py_False,
                         f->rd.record, buf_block(&c[0]), buf_block(&c[1]), buf_block(&c[2]),
                         Py_None, c[3].data ? buf_block(&c[3]) : Py_NewRef(Py_None),
                         fallback_items, buf_block(&f->bounds), names);
}

static PyObject *fetched_scan(Fetched *f) {
    Reader *rd = &f->rd;
    Out *out = &f->out;
    /* names before the contents move: new tags point into them */
    PyObject *names = PyList_New(0), *fallback_items = NULL;
    if (!names || !tags_to_list(&rd->tags, names) ||
        !(fallback_items = fallback_list(&rd->fallbacks))) {
        Py_XDECREF(names);
        return NULL;
    }
    return Py_BuildValue("(NKOLNNNNNNON)", buf_block(&f->contents), (unsigned long long)rd->pos,
                         rd->failed ? Py_True : Py_False, rd->record, buf_block(&out->steps),
                         buf_block(&out->walls), buf_block(&out->values), buf_block(&out->tags),
                         out->unusual ? buf_block(&out->flags) : Py_NewRef(Py_None),
                         fallback_items, Py_None, names);
}

static double monotonic_seconds(void) {
    struct timespec now;
    clock_gettime(CLOCK_MONOTONIC, &now);
    return (double)now.tv_sec + (double)now.tv_nsec * 1e-9;
}

/* take() -> tuple | None: the next file's scan, as scan() returns it, from position 0
   with no tags known, and the file's bytes and tag names: (contents, pos, failed,
   record, steps, wall times, values, tags, flags, fallback, bounds, names). A file read
   whole, undamaged, with no record left for protobuf is grouped: contents and tags are
   None, pos is its size, and names[r]'s rows are bounds[r]:bounds[r + 1]. None: a file
   to read as usual (a big one, or one that could not be read: reading it again reports
   why). While the file is not ready, the files no worker has claimed yet are read here,
   in order, within the budget. */
static PyObject *prefetch_take(PyObject *self, PyObject *noargs) {
    Prefetch *p = (Prefetch *)self;
    if (!prefetch_idle(p)) return NULL;
    if (!p->started || p->taken >= p->count) {
        PyErr_SetString(PyExc_IndexError, "take: no file left");
        return NULL;
    }
    Fetched *f = &p->files[p->taken];
    int interrupted = 0;
    p->busy = 1;
    Py_BEGIN_ALLOW_THREADS
    double checked = monotonic_seconds();
    pthread_mutex_lock(&p->lock);
    while (!f->done && !interrupted) {
        /* Rather than wait for a worker, read the next file no worker has claimed (the
           one taken next, or one ahead within the budget): this thread counts as one of
           the readers, and more threads than cores would time-share them. */
        if (may_claim(p)) {
            claim_and_fetch(p, &p->own);
            if (monotonic_seconds() - checked < 0.1) continue;
        } else {
            struct timespec until;
            clock_gettime(CLOCK_REALTIME, &until);
            until.tv_nsec += 100 * 1000 * 1000;
            if (until.tv_nsec >= 1000 * 1000 * 1000) {
                until.tv_sec += 1;
                until.tv_nsec -= 1000 * 1000 * 1000;
            }
            if (pthread_cond_timedwait(&p->changed, &p->lock, &until) != ETIMEDOUT || f->done)
                continue;
        }
        /* files slow to read (a network mount): Ctrl-C must still stop a take() that
           waits, or reads ahead, for long (checked every 100 ms) */
        pthread_mutex_unlock(&p->lock);
        Py_BLOCK_THREADS
        interrupted = PyErr_CheckSignals() < 0;
        Py_UNBLOCK_THREADS
        checked = monotonic_seconds();
        pthread_mutex_lock(&p->lock);
    }
    if (!interrupted) {
        p->taken++;
        p->held -= f->held;
        pthread_cond_broadcast(&p->changed);
    }
    pthread_mutex_unlock(&p->lock);
    Py_END_ALLOW_THREADS
    p->busy = 0;
    if (interrupted) return NULL; /* (the file is freed by close()) */
    PyObject *result = NULL;
    if (f->status == NO_MEMORY) PyErr_NoMemory();
    else if (f->error || f->big) result = Py_NewRef(Py_None);
    else result = f->grouped ? fetched_grouped(f) : fetched_scan(f);
    fetched_free(f);
    return result;
}

static PyMethodDef prefetch_methods[] = {
    {"take", prefetch_take, METH_NOARGS, "The next file's scan, in order (see the source)."},
    {"close", prefetch_close, METH_NOARGS, "Stop the workers and free what was not taken."},
    {NULL, NULL, 0, NULL},
};

static PyTypeObject PrefetchType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "tbexport._fastscan.Prefetch",
    .tp_basicsize = sizeof(Prefetch),
    .tp_dealloc = prefetch_dealloc,
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "Small event files read and scanned ahead on C threads, taken in order.",
    .tp_methods = prefetch_methods,
    .tp_new = prefetch_new,
};

/* file_sizes(paths) -> [int]: each file's size in bytes (-1: it cannot be stat'ed), in
   one release of the GIL for them all. */
static PyObject *file_sizes(PyObject *self, PyObject *args) {
    PyObject *paths, *encoded, *result = NULL;
    if (!PyArg_ParseTuple(args, "O!", &PyList_Type, &paths)) return NULL;
    if (!(encoded = encode_paths(paths))) return NULL;
    Py_ssize_t n = PyList_GET_SIZE(encoded);
    long long *sizes = PyMem_Malloc((size_t)(n ? n : 1) * sizeof(long long));
    if (!sizes) { PyErr_NoMemory(); goto done; }
    Py_BEGIN_ALLOW_THREADS
    for (Py_ssize_t i = 0; i < n; i++) {
        struct stat st;
        sizes[i] = stat(PyBytes_AS_STRING(PyList_GET_ITEM(encoded, i)), &st) == 0
                       ? (long long)st.st_size
                       : -1;
    }
    Py_END_ALLOW_THREADS
    if (!(result = PyList_New(n))) goto done;
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *size = PyLong_FromLongLong(sizes[i]);
        if (!size) { Py_CLEAR(result); goto done; }
        PyList_SET_ITEM(result, i, size);
    }
done:
    PyMem_Free(sizes);
    Py_DECREF(encoded);
    return result;
}

/* What a directory entry is to the walk: 'd' a directory, 'l' a link to one (entered
   too, as TensorBoard's walk enters it), 'f' anything else. Errors make a file, as
   os.scandir's is_dir() does. */
static char entry_kind(int dir_fd, const struct dirent *entry) {
    unsigned char type = entry->d_type;
    struct stat st;
    if (type == DT_UNKNOWN) { /* file systems that do not say: ask */
        if (fstatat(dir_fd, entry->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0) return 'f';
        if (!S_ISLNK(st.st_mode)) return S_ISDIR(st.st_mode) ? 'd' : 'f';
        type = DT_LNK;
    }
    if (type == DT_DIR) return 'd';
    if (type == DT_LNK)
        return fstatat(dir_fd, entry->d_name, &st, 0) == 0 && S_ISDIR(st.st_mode) ? 'l' : 'f';
    return 'f';
}

/* Appends the entries of one directory to `out` as kind, name, NUL; then 'E' (listed)
   and the directory's device and inode numbers (two uint64), or 'X' (unreadable: left
   out whole, as a failed os.scandir). 0: out of memory. */
static int list_one(const char *path, Buf *out) {
    DIR *dir = opendir(path);
    struct stat self;
    if (dir && fstat(dirfd(dir), &self) < 0) { closedir(dir); dir = NULL; }
    if (!dir) return buf_push(out, "X", 1);
    uint64_t identity[2] = {(uint64_t)self.st_dev, (uint64_t)self.st_ino};
    size_t listed = out->used;
    struct dirent *entry;
    errno = 0;
    while ((entry = readdir(dir))) {
        const char *name = entry->d_name;
        if (name[0] == '.' && (!name[1] || (name[1] == '.' && !name[2]))) continue;
        char kind = entry_kind(dirfd(dir), entry);
        if (!buf_push(out, &kind, 1) || !buf_push(out, name, strlen(name) + 1)) {
            closedir(dir);
            return 0;
        }
        errno = 0;
    }
    int failed = errno != 0;
    closedir(dir);
    if (failed) out->used = listed; /* a read error midway: as if unreadable */
    if (failed) return buf_push(out, "X", 1);
    return buf_push(out, "E", 1) && buf_push(out, identity, sizeof identity);
}

/* A stretch of the directories list_dirs() lists, on a thread of its own. */
typedef struct {
    PyObject *encoded; /* the paths, as bytes (read only: no GIL is taken) */
    Py_ssize_t first, end;
    Buf out;
    int ok;
    pthread_t thread;
    int started;
} ListStretch;

static void *list_stretch(void *arg) {
    ListStretch *s = arg;
    s->ok = 1;
    for (Py_ssize_t i = s->first; s->ok && i < s->end; i++)
        s->ok = list_one(PyBytes_AS_STRING(PyList_GET_ITEM(s->encoded, i)), &s->out);
    return NULL;
}

/* Lists the directories of `encoded` on up to `threads` threads (this one included),
   a stretch each, into `out` in order. 0: out of memory. Needs no GIL. */
static int list_all(PyObject *encoded, int threads, Buf *out) {
    Py_ssize_t n = PyList_GET_SIZE(encoded);
    /* below a few dozen directories a thread costs more than it saves */
    Py_ssize_t most = n / 32 > 1 ? n / 32 : 1;
    int k = threads < 1 ? 1 : threads > most ? (int)most : threads;
    ListStretch *stretches = calloc((size_t)k, sizeof(ListStretch));
    if (!stretches) return 0;
    for (int t = 0; t < k; t++) {
        stretches[t].encoded = encoded;
        /* n / k * t + n % k * t / k: n * t / k without forming n * t */
        stretches[t].first = n / k * t + n % k * t / k;
        stretches[t].end = n / k * (t + 1) + n % k * (t + 1) / k;
    }
    /* a thread that cannot start is no error: its stretch is listed here */
    for (int t = 1; t < k; t++)
        stretches[t].started =
            pthread_create(&stretches[t].thread, NULL, list_stretch, &stretches[t]) == 0;
    list_stretch(&stretches[0]);
    for (int t = 1; t < k; t++) {
        if (stretches[t].started) pthread_join(stretches[t].thread, NULL);
        else list_stretch(&stretches[t]);
    }
    int ok = 1;
    for (int t = 0; t < k; t++) {
        ok = ok && stretches[t].ok;
        if (ok && t == 0 && !out->data) {
            *out = stretches[0].out; /* (handed over, not copied) */
            continue;
        }
        ok = ok && buf_push(out, stretches[t].out.data, stretches[t].out.used);
        free(stretches[t].out.data);
    }
    free(stretches);
    return ok;
}

/* list_dirs(paths, threads=1) -> [(files, directories, links, (device, inode)) | None]:
   the entries of each directory, read in one release of the GIL for them all, on up to
   `threads` threads. files: every entry that is neither of the others; directories:
   its subdirectories; links: its links to directories; (device, inode): the
   directory's own, which tells a directory met again through a link (None where the
   file system has no inode numbers); None: the directory could not be read. */
static PyObject *list_dirs(PyObject *self, PyObject *args) {
    PyObject *paths, *encoded = NULL, *result = NULL, *files = NULL, *dirs = NULL,
             *links = NULL;
    int threads = 1;
    if (!PyArg_ParseTuple(args, "O!|i", &PyList_Type, &paths, &threads)) return NULL;
    if (!(encoded = encode_paths(paths))) return NULL;
    Py_ssize_t n = PyList_GET_SIZE(encoded);
    Buf out = {0};
    int ok = 1;
    Py_BEGIN_ALLOW_THREADS
    ok = list_all(encoded, threads, &out);
    Py_END_ALLOW_THREADS
    if (!ok) { PyErr_NoMemory(); free(out.data); goto done; }
    if (!(result = PyList_New(n))) { free(out.data); goto done; }
    const char *at = out.data, *end = out.data + out.used;
    for (Py_ssize_t i = 0; i < n; i++) {
        if (!(files = PyList_New(0)) || !(dirs = PyList_New(0)) || !(links = PyList_New(0)))
            goto failed;
        while (at < end && *at != 'E' && *at != 'X') {
            size_t length = strlen(at + 1);
            PyObject *name = PyUnicode_DecodeFSDefaultAndSize(at + 1, (Py_ssize_t)length);
            PyObject *into = *at == 'd' ? dirs : *at == 'l' ? links : files;
            if (!name || PyList_Append(into, name) < 0) {
                Py_XDECREF(name);
                goto failed;
            }
            Py_DECREF(name);
            at += length + 2;
        }
        PyObject *listing = Py_NewRef(Py_None);
        if (*at++ == 'E') {
            uint64_t identity[2];
            memcpy(identity, at, sizeof identity);
            at += sizeof identity;
            Py_DECREF(listing);
            /* no inode numbers (some network and FAT file systems): no identity */
            listing = identity[1] ? Py_BuildValue("(OOO(KK))", files, dirs, links,
                                                  (unsigned long long)identity[0],
                                                  (unsigned long long)identity[1])
                                  : PyTuple_Pack(4, files, dirs, links, Py_None);
        }
        Py_CLEAR(files);
        Py_CLEAR(dirs);
        Py_CLEAR(links);
        if (!listing) goto failed;
        PyList_SET_ITEM(result, i, listing);
    }
    free(out.data);
    goto done;
failed:
    free(out.data);
    Py_XDECREF(files);
    Py_XDECREF(dirs);
    Py_XDECREF(links);
    Py_CLEAR(result);
done:
    Py_DECREF(encoded);
    return result;
}
#endif

/*
 * resync(source, start) -> int: the first position >= start where a whole record with
 * both CRCs valid begins, in a buffer or a (fd, size, step) file as scan() takes them;
 * the size when there is none; -1 when the file ended before its size (it shrank). An
 * OSError when a read fails. Without the GIL.
 */
static PyObject *resync(PyObject *self, PyObject *args) {
    PyObject *arg;
    unsigned long long start;
    Py_buffer view = {0};
    Source src;
    uint64_t size;
    if (!PyArg_ParseTuple(args, "OK", &arg, &start)) return NULL;
    if (!source_open(arg, &view, &src, &size)) return NULL;
    int64_t found;
    Py_BEGIN_ALLOW_THREADS
    found = source_resync(&src, (uint64_t)start, size);
    Py_END_ALLOW_THREADS
    int error = src.error;
    source_close(&src, &view);
    if (found < 0 && error) {
        errno = error;
        return PyErr_SetFromErrno(PyExc_OSError);
    }
    return PyLong_FromLongLong((long long)found);
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
    {"count", count, METH_VARARGS, "Count each tag's points (a big file's first pass)."},
    {"increasing", increasing, METH_VARARGS, "Whether int64 values strictly increase."},
    {"group", group, METH_VARARGS, "Stable counting sort of columns by tag rank."},
    {"join", join, METH_VARARGS, "Copy pieces one after the other into destinations."},
#ifndef _WIN32
    {"read_small", read_small, METH_VARARGS, "A small file's bytes, read in one GIL release."},
    {"list_dirs", list_dirs, METH_VARARGS, "Directories' entries, read in one GIL release."},
    {"file_sizes", file_sizes, METH_VARARGS, "Files' sizes, taken in one GIL release."},
#endif
    {"masked_crc32c", py_masked_crc32c, METH_VARARGS, "Masked CRC32C, as TFRecord stores it."},
    {"resync", resync, METH_VARARGS, "Where the next whole, CRC-valid record begins."},
    {"csv_rows", csv_rows, METH_VARARGS, "CSV lines of a step and float columns."},
    {"sheet_rows", sheet_rows, METH_VARARGS, "Sheet XML rows of a step and float columns."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_fastscan",
                                    "C fast path for reading event files.", -1, methods};

PyMODINIT_FUNC PyInit__fastscan(void) {
    if (PyType_Ready(&BlockType) < 0) return NULL;
#ifndef _WIN32
    if (PyType_Ready(&PrefetchType) < 0) return NULL;
#endif
    crc_init();
    crc_choose();
#ifdef HAVE_FAST_REPR
    pow10_init();
#endif
    PyObject *m = PyModule_Create(&module);
    if (!m) return NULL;
    RecordsChanged = PyErr_NewExceptionWithDoc(
        "tbexport._fastscan.RecordsChanged",
        "The records differ from the ones counted (the file changed between the passes).",
        NULL, NULL);
    if (!RecordsChanged || PyModule_AddObjectRef(m, "RecordsChanged", RecordsChanged) < 0
#ifdef READS_FILES
        /* scan(), count() and resync() read (fd, size, step) files too */
        || PyModule_AddIntConstant(m, "READS_FILES", 1) < 0
#endif
#ifndef _WIN32
        || PyModule_AddObjectRef(m, "Prefetch", (PyObject *)&PrefetchType) < 0
#endif
    ) {
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
