/*
 * The record scan: TFRecord framing over a buffer of an event file's bytes, both CRCs
 * verified, each record's Event decoded (events.c) into columns in record order, and
 * optionally grouped by tag in the same call. The buffer may be a window of a longer
 * file: `size` says how far the file goes, so that a record running past the window
 * asks for more bytes (Python reads them) where one running past the file is damage.
 * Also the search for the next valid record after damage, the counting sort that
 * groups columns by tag, and the step-order check. No I/O and no threads here: Python
 * reads the bytes and runs the threads; every scan runs without the GIL.
 */
/*
 * scan(buffer, start, size, verify, tags, record, rank=None) -> Scan
 *
 * Reads the records of `buffer` from `start` without the GIL (threads read other files
 * meanwhile). `size` is how many bytes the file holds from the buffer's first byte on
 * (the buffer's length when it holds the whole file): a record that runs past the
 * buffer but not past `size` stops the scan with `needed` set to how many bytes from
 * `position` the next buffer must hold; one that runs past `size`, or fails a CRC,
 * stops it with `damaged` set (Python tells a truncated tail from damage, and resumes).
 * `tags` is a list of tag names as bytes whose positions are the tag indices; new tags
 * are appended to it. `record` is the number of the first record read (`records`
 * counts on from it). The columns are buffers of int64 steps, float64 wall times,
 * float64 values, int32 tag indices and int8 flags (None when every point is a plain
 * simple_value). `fallbacks` lists (record, offset, length, points_before) of the
 * records Python must decode itself: the payload's offset in the buffer, and the points
 * this call produced before that record.
 *
 * `rank` (None or int32[k], k >= len(tags)) orders the tags. When it is given and the
 * call read the whole file with nothing left to Python and no tag unknown to it, the
 * columns come back grouped by rank[tag] (stable: record order within a tag), the tag
 * column is None and `bounds` (int64[k+1]) says where each rank's rows start;
 * otherwise bounds is None and the columns are in record order. One call instead of
 * scan + group saves a GIL round trip per file, which is what lets threads reading many
 * small runs scale.
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
   unusual) in place, each source freed once copied (so one extra column at most);
   bounds gets int64[k+1] row starts. */
static int group_out(Out *out, const int32_t *ranks, int64_t k, Buf *bounds) {
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
        free(columns[c]->data);
        *columns[c] = grouped;
    }
    free(cursor);
    bounds->data = (char *)bound;
    bounds->used = bounds->cap = ((size_t)k + 1) * sizeof(int64_t);
    return 1;
}


/* scan()'s second pass found other records than count() did: an exception of its own,
   so that the caller tells it from anything its progress callback raises. */

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



static PyObject *increasing(PyObject *self, PyObject *args) {
    Py_buffer view;
    if (!PyArg_ParseTuple(args, "y*", &view)) return NULL;
    const int64_t *v = view.buf;
    Py_ssize_t n = view.len / 8, i = 1;
    while (i < n && v[i] > v[i - 1]) i++;
    PyBuffer_Release(&view);
    return PyBool_FromLong(i >= n);
}



/* ---------- the scan ---------- */

typedef struct {
    const unsigned char *base;
    uint64_t length; /* of the buffer */
    uint64_t size;   /* of the file from the buffer's first byte */
    uint64_t pos, needed;
    int verify, failed;
    long long record;
    Buf fallbacks;
    Tags tags;
    /* the tag table points into these bytes objects (the caller's names): held for the
       whole call */
    PyObject *known;
} Reader;

/* Reads records from rd->pos to the end of the buffer, the first damaged record, or
   the first that runs past the buffer. Needs no GIL. */
static int read_records(Reader *rd, Out *out) {
    const unsigned char *base = rd->base;
    while (rd->pos < rd->length) {
        uint64_t pos = rd->pos;
        if (rd->size - pos < 16) { rd->failed = 1; break; }
        if (rd->length - pos < 16) { rd->needed = 16; break; }
        const unsigned char *at = base + pos;
        uint64_t len = le64(at);
        if (len > rd->size - pos - 16) { rd->failed = 1; break; }
        if (rd->verify && masked(at, 8) != le32(at + 8)) { rd->failed = 1; break; }
        if (len > rd->length - pos - 16) { rd->needed = 16 + len; break; }
        const unsigned char *data = at + 12;
        if (rd->verify && masked(data, (size_t)len) != le32(data + len)) {
            rd->failed = 1;
            break;
        }
        size_t points_before = out->points;
        int status = decode_event(data, data + len, &rd->tags, out);
        if (status == NO_MEMORY) return status;
        if (status == FALLBACK) {
            Fallback item = {(int64_t)rd->record, pos + 12, len, (int64_t)points_before};
            if (!buf_push(&rd->fallbacks, &item, sizeof item)) return NO_MEMORY;
        }
        rd->record++;
        rd->pos = pos + 16 + len;
    }
    return DECODED;
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

static PyObject *scan_result(State *st, Reader *rd, Out *out, int grouped, Buf *bounds,
                             PyObject *fallbacks) {
    PyObject *result = PyStructSequence_New(st->scan_type);
    if (!result) return NULL;
    PyTypeObject *block = st->block_type;
    PyObject *items[SCAN_FIELDS] = {
        PyLong_FromUnsignedLongLong(rd->pos),
        PyBool_FromLong(rd->failed),
        PyLong_FromLongLong(rd->record),
        buf_block(block, &out->steps),
        buf_block(block, &out->walls),
        buf_block(block, &out->values),
        grouped ? Py_NewRef(Py_None) : buf_block(block, &out->tags),
        out->unusual ? buf_block(block, &out->flags) : Py_NewRef(Py_None),
        fallbacks,
        grouped ? buf_block(block, bounds) : Py_NewRef(Py_None),
        PyLong_FromUnsignedLongLong(rd->needed),
    };
    int ok = 1;
    for (int i = 0; i < SCAN_FIELDS; i++) {
        if (!items[i]) ok = 0;
        PyStructSequence_SET_ITEM(result, i, items[i] ? items[i] : Py_NewRef(Py_None));
    }
    if (!ok) Py_CLEAR(result);
    return result;
}

static PyObject *scan(PyObject *module, PyObject *args) {
    Py_buffer view = {0}, rank_view = {0};
    Py_ssize_t start;
    unsigned long long size;
    int verify;
    PyObject *names, *rank = Py_None;
    long long record;
    if (!PyArg_ParseTuple(args, "y*nKpO!L|O", &view, &start, &size, &verify, &PyList_Type,
                          &names, &record, &rank))
        return NULL;
    static const unsigned char empty[1];
    Reader rd = {.base = view.buf ? view.buf : empty, .length = (uint64_t)view.len,
                 .size = size, .verify = verify, .record = record};
    Out out = {0};
    Buf bounds = {0};
    const int32_t *ranks = NULL;
    int64_t ranked = 0; /* k: how many tags `rank` orders */
    int grouped = 0, status = DECODED;
    PyObject *result = NULL, *fallback_items = NULL;
    Tags *tags = &rd.tags;
    if (start < 0 || (uint64_t)start > rd.length || size < rd.length) {
        PyErr_SetString(PyExc_ValueError, "scan: start outside the buffer, or size below it");
        goto done;
    }
    rd.pos = (uint64_t)start;
    if (!(rd.known = PyList_AsTuple(names)) || !tags_from_tuple(tags, rd.known)) {
        if (!PyErr_Occurred()) PyErr_NoMemory();
        goto done;
    }
    if (rank != Py_None) {
        if (PyObject_GetBuffer(rank, &rank_view, PyBUF_SIMPLE) < 0) goto done;
        if (!rank_valid(&rank_view, tags->count, &ranked)) goto done;
        ranks = rank_view.buf;
    }
    Py_BEGIN_ALLOW_THREADS
    status = read_records(&rd, &out);
    int whole = status == DECODED && !rd.failed && rd.pos == rd.size;
    if (ranks && whole && !rd.fallbacks.used && tags->count == tags->known) {
        /* no tag new to the caller's list (all ranked) */
        if (group_out(&out, ranks, ranked, &bounds)) grouped = 1;
        else status = NO_MEMORY;
    }
    Py_END_ALLOW_THREADS
    if (status == NO_MEMORY) { PyErr_NoMemory(); goto done; }
    if (!tags_to_list(tags, names) || !(fallback_items = fallback_list(&rd.fallbacks))) goto done;
    result = scan_result(state_of(module), &rd, &out, grouped, &bounds, fallback_items);
done:
    Py_XDECREF(rd.known);
    tags_free(tags);
    free(rd.fallbacks.data);
    out_free(&out);
    free(bounds.data);
    if (rank_view.obj) PyBuffer_Release(&rank_view);
    PyBuffer_Release(&view);
    return result;
}

/* ---------- finding the next record after damage ---------- */

enum { RESYNC_NONE = 0, RESYNC_VERIFIED = 1, RESYNC_UNCHECKED = 2 };

/*
 * The first position >= start, among those whose 12 header bytes lie in the buffer,
 * where a record can begin: *state RESYNC_VERIFIED when the whole record lies in the
 * buffer and both CRCs match; RESYNC_UNCHECKED when the header's CRC matches and the
 * data run past the buffer (within `size`: Python checks them). RESYNC_NONE when there
 * is none: the position returned is the first one not looked at.
 *
 * Most garbage is rejected by its length alone (past the end). A stretch of zeros (a
 * file's hole, a zeroed block) would pass that, and is skipped a word at a time: no
 * record starts with 12 zero bytes (a length of 0 has the masked CRC 0x07980329).
 * Needs no GIL.
 */
static uint64_t buffer_resync(const unsigned char *b, uint64_t length, uint64_t start,
                              uint64_t size, int *state) {
    *state = RESYNC_NONE;
    if (size < 16 || start > size - 16) return start;
    uint64_t last = size - 16; /* the last position a record fits at */
    uint64_t stop = length >= 12 ? length - 11 : 0; /* positions with a header in b */
    if (stop > last + 1) stop = last + 1;
    const unsigned char *end = b + length;
    uint64_t p = start;
    while (p < stop) {
        const unsigned char *h = b + p;
        uint64_t len = le64(h);
        uint32_t crc = le32(h + 8);
        if (len == 0 && crc == 0) { /* zeros: on to the first byte that is not */
            const unsigned char *q = h + 12;
            uint64_t word;
            while (end - q >= 8 && (memcpy(&word, q, 8), word == 0)) q += 8;
            while (q < end && !*q) q++;
            uint64_t nonzero = (uint64_t)(q - b);
            p = nonzero - 11 > p ? nonzero - 11 : p + 1;
            continue;
        }
        if (len <= size - p - 16 && masked(h, 8) == crc) {
            if (len + 16 > length - p) {
                *state = RESYNC_UNCHECKED;
                return p;
            }
            if (masked(h + 12, (size_t)len) == le32(h + 12 + len)) {
                *state = RESYNC_VERIFIED;
                return p;
            }
        }
        p++;
    }
    return p > start ? p : start;
}

/*
 * resync(buffer, start, size) -> Resync(position, state): buffer_resync over a buffer
 * of the file, `size` being the file's bytes from the buffer's first one on. Without
 * the GIL.
 */
static PyObject *resync(PyObject *module, PyObject *args) {
    Py_buffer view;
    unsigned long long start, size;
    if (!PyArg_ParseTuple(args, "y*KK", &view, &start, &size)) return NULL;
    if (size < (uint64_t)view.len || start > (uint64_t)view.len) {
        PyBuffer_Release(&view);
        PyErr_SetString(PyExc_ValueError, "resync: start outside the buffer, or size below it");
        return NULL;
    }
    int state;
    uint64_t found;
    Py_BEGIN_ALLOW_THREADS
    found = buffer_resync(view.buf, (uint64_t)view.len, start, size, &state);
    Py_END_ALLOW_THREADS
    PyBuffer_Release(&view);
    PyObject *result = PyStructSequence_New(state_of(module)->resync_type);
    if (!result) return NULL;
    PyObject *position = PyLong_FromUnsignedLongLong(found), *kind = PyLong_FromLong(state);
    if (!position || !kind) {
        Py_XDECREF(position);
        Py_XDECREF(kind);
        Py_DECREF(result);
        return NULL;
    }
    PyStructSequence_SET_ITEM(result, 0, position);
    PyStructSequence_SET_ITEM(result, 1, kind);
    return result;
}
