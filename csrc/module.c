/*
 * tbexport._codec: the hot loops of tbexport, in C, over bytes Python hands over.
 *
 * It decodes event files' records (records.c: TFRecord framing and CRC32C, then the
 * Event protobuf of each record, events.c) into flat columns, and renders number
 * columns as text for the CSV and xlsx writers (render.c). It opens no file, lists no
 * directory and starts no thread: Python does all I/O (tbexport's reading seam) and
 * runs the threads; every long call here releases the GIL. Records it cannot decode
 * exactly as TensorBoard's protobuf classes would go back to Python, which decodes
 * them with those classes: both readers give the same points (a fuzzer checks it).
 *
 * One translation unit: this file includes the others in the order they build on each
 * other (crc32c, wire, buffers, tags, events, records, render), so that the helpers of
 * the per-record loop stay static and can be inlined into it across files. Module state
 * (multi-phase init, PEP 489) holds the types; the CRC and power-of-ten tables are
 * constants computed once per process.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <string.h>
#include <math.h>
#include <stdlib.h>

#if defined(__GNUC__) || defined(__clang__)
#define ALWAYS_INLINE inline __attribute__((always_inline))
#else
#define ALWAYS_INLINE inline
#endif

typedef struct {
    PyTypeObject *block_type;  /* Block: scanned columns, viewed by numpy */
    PyTypeObject *scan_type;   /* Scan: what scan() returns */
    PyTypeObject *resync_type; /* Resync: what resync() returns */
} State;

static State *state_of(PyObject *module) { return (State *)PyModule_GetState(module); }

#define SCAN_FIELDS 11

#include "crc32c.c"
#include "wire.c"
#include "buffers.c"
#include "tags.c"
#include "events.c"
#include "records.c"
#include "render.c"

static PyStructSequence_Field scan_fields[SCAN_FIELDS + 1] = {
    {"position", "where the scan stopped, in the buffer"},
    {"damaged", "whether the record at position is damaged or runs past the file"},
    {"records", "the number of the next record (the first given, plus those read)"},
    {"steps", "int64 buffer"},
    {"wall_times", "float64 buffer"},
    {"values", "float64 buffer"},
    {"tags", "int32 buffer of tag indices; None when grouped"},
    {"flags", "int8 buffer of point flags; None when every point is a simple_value"},
    {"fallbacks", "(record, offset, length, points_before) of records left to Python"},
    {"bounds", "int64 buffer: where each rank's rows start, when grouped; else None"},
    {"needed", "bytes from position the next buffer must hold (0: none asked)"},
    {NULL, NULL},
};

static PyStructSequence_Desc scan_desc = {
    "tbexport._codec.Scan", "What one scan() call read.", scan_fields, SCAN_FIELDS,
};

static PyStructSequence_Field resync_fields[] = {
    {"position", "the candidate's position, or the first one not looked at"},
    {"state", "RESYNC_NONE, RESYNC_VERIFIED or RESYNC_UNCHECKED"},
    {NULL, NULL},
};

static PyStructSequence_Desc resync_desc = {
    "tbexport._codec.Resync", "Where a record may begin after damage.", resync_fields, 2,
};

static PyObject *py_masked_crc32c(PyObject *module, PyObject *args) {
    Py_buffer view;
    if (!PyArg_ParseTuple(args, "y*", &view)) return NULL;
    uint32_t c;
    Py_BEGIN_ALLOW_THREADS
    c = masked(view.buf, (size_t)view.len);
    Py_END_ALLOW_THREADS
    PyBuffer_Release(&view);
    return PyLong_FromUnsignedLong(c);
}

/* crc32c(buffer, value=0) -> int: the CRC32C of value's data followed by buffer's (not
   masked), for checksums of data read in pieces. */
static PyObject *py_crc32c(PyObject *module, PyObject *args) {
    Py_buffer view;
    unsigned long value = 0;
    if (!PyArg_ParseTuple(args, "y*|k", &view, &value)) return NULL;
    uint32_t c;
    Py_BEGIN_ALLOW_THREADS
    c = crc32c_best((uint32_t)value, view.buf, (size_t)view.len);
    Py_END_ALLOW_THREADS
    PyBuffer_Release(&view);
    return PyLong_FromUnsignedLong(c);
}

static PyMethodDef methods[] = {
    {"scan", scan, METH_VARARGS, "Decode the records of a buffer; see records.c."},
    {"resync", resync, METH_VARARGS, "Where the next whole, CRC-valid record may begin."},
    {"group", group, METH_VARARGS, "Stable counting sort of columns by tag rank."},
    {"increasing", increasing, METH_VARARGS, "Whether int64 values strictly increase."},
    {"masked_crc32c", py_masked_crc32c, METH_VARARGS, "Masked CRC32C, as TFRecord stores it."},
    {"crc32c", py_crc32c, METH_VARARGS, "CRC32C, continued from a value (not masked)."},
    {"csv_rows", csv_rows, METH_VARARGS, "CSV lines of a step and float columns."},
    {"sheet_rows", sheet_rows, METH_VARARGS, "Sheet XML rows of a step and float columns."},
    {NULL, NULL, 0, NULL},
};

static int exec_module(PyObject *module) {
    State *st = state_of(module);
    st->block_type = (PyTypeObject *)PyType_FromModuleAndSpec(module, &block_spec, NULL);
    if (!st->block_type) return -1;
    st->scan_type = PyStructSequence_NewType(&scan_desc);
    if (!st->scan_type) return -1;
    st->resync_type = PyStructSequence_NewType(&resync_desc);
    if (!st->resync_type) return -1;
    if (PyModule_AddObjectRef(module, "Scan", (PyObject *)st->scan_type) < 0 ||
        PyModule_AddObjectRef(module, "Resync", (PyObject *)st->resync_type) < 0 ||
        PyModule_AddIntConstant(module, "RESYNC_NONE", RESYNC_NONE) < 0 ||
        PyModule_AddIntConstant(module, "RESYNC_VERIFIED", RESYNC_VERIFIED) < 0 ||
        PyModule_AddIntConstant(module, "RESYNC_UNCHECKED", RESYNC_UNCHECKED) < 0 ||
        PyModule_AddIntConstant(module, "HAS_VALUE", HAS_VALUE) < 0 ||
        PyModule_AddIntConstant(module, "PLUGIN_SCALARS", PLUGIN_SCALARS) < 0 ||
        PyModule_AddIntConstant(module, "PLUGIN_OTHER", PLUGIN_OTHER) < 0 ||
        PyModule_AddIntConstant(module, "SIMPLE", SIMPLE) < 0 ||
        PyModule_AddIntConstant(module, "EXCEL_COLUMNS", EXCEL_COLUMNS) < 0)
        return -1;
    return 0;
}

static int traverse_module(PyObject *module, visitproc visit, void *arg) {
    State *st = state_of(module);
    Py_VISIT(st->block_type);
    Py_VISIT(st->scan_type);
    Py_VISIT(st->resync_type);
    return 0;
}

static int clear_module(PyObject *module) {
    State *st = state_of(module);
    Py_CLEAR(st->block_type);
    Py_CLEAR(st->scan_type);
    Py_CLEAR(st->resync_type);
    return 0;
}

static void free_module(void *module) { clear_module((PyObject *)module); }

static PyModuleDef_Slot slots[] = {
    {Py_mod_exec, exec_module},
    {0, NULL},
};

static struct PyModuleDef module_def = {
    PyModuleDef_HEAD_INIT,
    .m_name = "_codec",
    .m_doc = "tbexport's hot loops: event records decoded, number columns rendered.",
    .m_size = sizeof(State),
    .m_methods = methods,
    .m_slots = slots,
    .m_traverse = traverse_module,
    .m_clear = clear_module,
    .m_free = free_module,
};

PyMODINIT_FUNC PyInit__codec(void) {
    crc_init(); /* constant tables: the same for every interpreter */
    crc_choose();
#ifdef HAVE_FAST_REPR
    pow10_init();
#endif
    return PyModuleDef_Init(&module_def);
}
