/*
 * Number columns rendered as text without the GIL, for the CSV writer (csv_rows) and
 * the xlsx sheet XML (sheet_rows): steps as integers, values as Python's repr() of a
 * double, the shortest text that reads back as the same double (exact, with 128-bit
 * integers, for the numbers training curves are made of; Python's own formatter for
 * the others).
 */
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
