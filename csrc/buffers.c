/*
 * Growable byte buffers (Buf) that the scan and the renderers fill without the GIL, and
 * Block: a Buf's memory handed to Python without a copy, as a buffer object numpy views
 * and frees with its last array. Block is a heap type of the module's state.
 */
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

/* A Buf's memory handed to Python without a copy: a buffer that frees it when the last
   numpy array viewing it goes. (A bytes copy would double the scan's peak memory and
   leave the heap fragmented.) */
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
    PyTypeObject *type = Py_TYPE(self);
    free(((Block *)self)->data);
    type->tp_free(self);
    Py_DECREF(type); /* a heap type: each instance holds a reference to it */
}

static PyType_Slot block_slots[] = {
    {Py_tp_dealloc, block_dealloc},
    {Py_bf_getbuffer, block_getbuffer},
    {Py_tp_doc, "Memory filled by the scanner, viewed by numpy arrays."},
    {0, NULL},
};

static PyType_Spec block_spec = {
    .name = "tbexport._codec.Block",
    .basicsize = sizeof(Block),
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_IMMUTABLETYPE | Py_TPFLAGS_DISALLOW_INSTANTIATION,
    .slots = block_slots,
};

/* Moves b's memory into a new Block of `type` (b is left empty); NULL when out of memory. */
static PyObject *buf_block(PyTypeObject *type, Buf *b) {
    Block *block = PyObject_New(Block, type);
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
