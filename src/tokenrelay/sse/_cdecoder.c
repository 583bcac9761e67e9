/* The SSE stream parser of WHATWG HTML 9.2.5-9.2.6 in C: tokenrelay.sse.decoder.PyDecoder,
 * line for line in behaviour, about seven times faster per event.
 *
 * The Python class is the reference: its docstring states the behaviour (limits, errors,
 * close()), tests/test_sse_*.py run every test against both, and a differential test
 * feeds both the same random streams in random chunks. The module holds no Python-level
 * logic of its own: Event and EventTooLargeError come from Python through _setup().
 *
 * How it works: bytes are scanned for line ends (LF, CR or CRLF, one CR possibly at the
 * end of a chunk with its LF in the next). A complete line is parsed where it lies in the
 * input, or in `line` when it began in an earlier chunk. Data lines are copied, joined by
 * LF, into `data`, and decoded (UTF-8, errors replaced) once, when the event dispatches.
 * Decoding line by line or all at once gives the same text: LF is ASCII and never part
 * of a multi-byte sequence, so no invalid sequence spans it.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <string.h>

#ifndef Py_T_OBJECT_EX  /* before 3.12 it lived in structmember.h as T_OBJECT_EX */
#include <structmember.h>
#define Py_T_OBJECT_EX T_OBJECT_EX
#endif

/* What _setup() hands over, kept for the life of the interpreter. */
static PyTypeObject *event_type;       /* tokenrelay.sse.event.Event */
static Py_ssize_t off_data, off_event, off_id, off_retry;  /* its slot offsets */
static PyObject *too_large_error;      /* tokenrelay.errors.EventTooLargeError */
static PyObject *str_message, *str_line, *str_event;

/* Buffers larger than this are freed once their line or event is done, so a decoder
 * that met one large event does not keep its memory. */
#define KEEP_BYTES (64 * 1024)

typedef struct {
    char *buf;
    Py_ssize_t len, cap;
} Bytes;

typedef struct {
    PyObject_HEAD
    Py_ssize_t max_line, max_event;
    PyObject *last_event_id;   /* str */
    PyObject *retry;           /* int, or NULL for None */
    PyObject *error;           /* EventTooLargeError, or NULL */
    int error_owed;            /* raised by neither feed() nor close() yet */
    /* The current connection. */
    int started;               /* the BOM question is settled */
    char start[3];             /* the first bytes while they may still be a BOM */
    Py_ssize_t start_len;
    int skip_lf;               /* the last chunk ended in CR: an LF first is its partner */
    Bytes line;                /* the partial last line */
    Bytes data;                /* data lines of the event being built, joined by LF */
    int has_data;              /* a data line was seen (its value may be empty) */
    PyObject *type;            /* the event type, or NULL for "message" */
    PyObject *event_retry;     /* this event's retry, or NULL */
    PyObject *id_buffer;       /* str */
    Py_ssize_t open_size;      /* bytes of the complete lines of the open event */
} Decoder;

/* ---- small helpers ---------------------------------------------------------------- */

static int
bytes_append(Bytes *b, const char *p, Py_ssize_t n)
{
    if (n == 0)
        return 0;
    if (b->len + n > b->cap) {
        Py_ssize_t cap = b->cap ? b->cap : 256;
        while (cap < b->len + n)
            cap *= 2;
        char *buf = PyMem_Realloc(b->buf, (size_t)cap);
        if (buf == NULL) {
            PyErr_NoMemory();
            return -1;
        }
        b->buf = buf;
        b->cap = cap;
    }
    memcpy(b->buf + b->len, p, (size_t)n);
    b->len += n;
    return 0;
}

/* Between calls an empty buffer is given back: a decoder lives as long as its stream,
   and an idle stream should not hold one (within a call it is reused event after event). */
static void
bytes_release_empty(Bytes *b)
{
    if (b->len == 0 && b->buf != NULL) {
        PyMem_Free(b->buf);
        b->buf = NULL;
        b->cap = 0;
    }
}

static void
bytes_done(Bytes *b)
{
    b->len = 0;
    if (b->cap > KEEP_BYTES) {
        PyMem_Free(b->buf);
        b->buf = NULL;
        b->cap = 0;
    }
}

static PyObject *
decode(const char *p, Py_ssize_t n)
{
    return PyUnicode_DecodeUTF8(p, n, "replace");
}

/* A new Event: the slots are filled directly, as for any valid-by-construction event
 * (the frozen dataclass's __init__ would cost more than all the parsing). Steals `data`.
 *
 * The event is untracked by the cyclic GC, as CPython untracks a tuple of atomic values:
 * it refers only to str, int and None, so it can never be part of a cycle, and tracking
 * hundreds of thousands of them per second made the collector a quarter of the cost of
 * decoding (every 700 allocations a collection walks all the young tracked objects). */
static PyObject *
make_event(PyObject *data, PyObject *type, PyObject *id, PyObject *retry)
{
    /* Own them first: the allocation may run the GC, whose finalizers may run Python
     * code that resets this very decoder and drops its references to them. */
    Py_INCREF(type);
    Py_INCREF(id);
    Py_INCREF(retry);
    PyObject *event = event_type->tp_alloc(event_type, 0);
    if (event == NULL) {
        Py_DECREF(data);
        Py_DECREF(type);
        Py_DECREF(id);
        Py_DECREF(retry);
        return NULL;
    }
    PyObject_GC_UnTrack(event);
    char *base = (char *)event;
    *(PyObject **)(base + off_data) = data;
    *(PyObject **)(base + off_event) = type;
    *(PyObject **)(base + off_id) = id;
    *(PyObject **)(base + off_retry) = retry;
    return event;
}

/* ---- the parser ------------------------------------------------------------------- */

/* Record a crossed limit: drop what was buffered and refuse further input. Returns 1,
 * the "stopped by a limit" result of process(); -1 if the error could not be built. */
static int
fail(Decoder *self, PyObject *what, Py_ssize_t limit, Py_ssize_t size)
{
    PyObject *error = PyObject_CallFunction(too_large_error, "Onn", what, limit, size);
    if (error == NULL)
        return -1;
    Py_XSETREF(self->error, error);
    bytes_done(&self->line);
    bytes_done(&self->data);
    self->has_data = 0;
    return 1;
}

static int
dispatch(Decoder *self, PyObject *events)
{
    Py_SETREF(self->last_event_id, Py_NewRef(self->id_buffer));
    if (self->has_data) {
        PyObject *data = decode(self->data.buf, self->data.len);
        bytes_done(&self->data);
        self->has_data = 0;
        if (data == NULL)
            return -1;
        PyObject *event = make_event(
            data,
            self->type ? self->type : str_message,
            self->id_buffer,
            self->event_retry ? self->event_retry : Py_None);
        if (event == NULL)
            return -1;
        int rc = PyList_Append(events, event);
        Py_DECREF(event);
        if (rc < 0)
            return -1;
    }
    Py_CLEAR(self->type);
    Py_CLEAR(self->event_retry);
    return 0;
}

/* An ASCII-digit string as an int. Exact, as Python's int() (which bounds the digits it
 * converts); a value too long for that is ignored like any other invalid retry field. */
static PyObject *
parse_retry(const char *p, Py_ssize_t n)
{
    if (n <= 18) {
        long long value = 0;
        for (Py_ssize_t i = 0; i < n; i++)
            value = value * 10 + (p[i] - '0');
        return PyLong_FromLongLong(value);
    }
    char *text = PyMem_Malloc((size_t)n + 1);
    if (text == NULL)
        return PyErr_NoMemory();
    memcpy(text, p, (size_t)n);
    text[n] = '\0';
    PyObject *value = PyLong_FromString(text, NULL, 10);
    PyMem_Free(text);
    if (value == NULL && PyErr_ExceptionMatches(PyExc_ValueError)) {
        PyErr_Clear();
        Py_RETURN_NONE;
    }
    return value;
}

/* One complete, non-empty line (9.2.6). */
static int
field(Decoder *self, const char *p, Py_ssize_t n)
{
    if (p[0] == ':')
        return 0;  /* comment */
    const char *colon = memchr(p, ':', (size_t)n);
    Py_ssize_t name_len = colon ? colon - p : n;
    const char *value = colon ? colon + 1 : p + n;
    Py_ssize_t value_len = colon ? n - name_len - 1 : 0;
    if (value_len && value[0] == ' ') {
        value++;
        value_len--;
    }
    switch (name_len) {
    case 4:
        if (memcmp(p, "data", 4) == 0) {
            if (self->has_data && bytes_append(&self->data, "\n", 1) < 0)
                return -1;
            self->has_data = 1;
            return bytes_append(&self->data, value, value_len);
        }
        return 0;
    case 5:
        if (memcmp(p, "event", 5) == 0) {
            if (value_len == 0) {
                Py_CLEAR(self->type);
                return 0;
            }
            PyObject *type = decode(value, value_len);
            if (type == NULL)
                return -1;
            Py_XSETREF(self->type, type);
            return 0;
        }
        if (memcmp(p, "retry", 5) == 0) {
            if (value_len == 0)
                return 0;
            for (Py_ssize_t i = 0; i < value_len; i++)
                if (value[i] < '0' || value[i] > '9')
                    return 0;
            PyObject *retry = parse_retry(value, value_len);
            if (retry == NULL)
                return -1;
            if (retry == Py_None) {
                Py_DECREF(retry);
                return 0;
            }
            Py_XSETREF(self->retry, Py_NewRef(retry));
            Py_XSETREF(self->event_retry, retry);
        }
        return 0;
    case 2:
        if (memcmp(p, "id", 2) == 0 && memchr(value, '\0', (size_t)value_len) == NULL) {
            PyObject *id = decode(value, value_len);
            if (id == NULL)
                return -1;
            Py_SETREF(self->id_buffer, id);
        }
        return 0;
    default:
        return 0;  /* any other field is ignored */
    }
}

/* A complete line of `n` bytes (line end excluded): check the limits, then apply it. */
static int
complete_line(Decoder *self, const char *p, Py_ssize_t n, PyObject *events)
{
    if (n > self->max_line)
        return fail(self, str_line, self->max_line, n);
    if (n == 0) {
        self->open_size = 0;
        return dispatch(self, events);
    }
    self->open_size += n + 1;
    if (self->open_size > self->max_event)
        return fail(self, str_event, self->max_event, self->open_size);
    return field(self, p, n);
}

/* Feed `n` bytes of stream (BOM settled). 0: done; 1: stopped by a limit (self->error
 * set); -1: a Python exception is set. */
static int
process(Decoder *self, const char *p, Py_ssize_t n, PyObject *events)
{
    Py_ssize_t i = 0;
    if (self->skip_lf && n > 0) {
        self->skip_lf = 0;
        if (p[0] == '\n')
            i = 1;
    }
    /* Where the next LF and the next CR are (n: none), each found by one forward scan
     * that the following lines reuse: linear however the lines end (a search per line
     * for an LF that never comes would be quadratic on CR-only streams). */
    Py_ssize_t lf_at = -1;
    Py_ssize_t cr_at = memchr(p + i, '\r', (size_t)(n - i)) != NULL ? -1 : n;
    while (i < n) {
        const char *start = p + i;
        if (lf_at < i) {
            const char *found = memchr(start, '\n', (size_t)(n - i));
            lf_at = found ? found - p : n;
        }
        if (cr_at < i) {
            const char *found = memchr(start, '\r', (size_t)(n - i));
            cr_at = found ? found - p : n;
        }
        Py_ssize_t j = lf_at < cr_at ? lf_at : cr_at;  /* the line end */
        if (j == n) {
            /* The rest is a partial line: keep it, within both limits. */
            Py_ssize_t size = self->line.len + (n - i);
            if (size > self->max_line)
                return fail(self, str_line, self->max_line, size);
            if (size + self->open_size > self->max_event)
                return fail(self, str_event, self->max_event, size + self->open_size);
            return bytes_append(&self->line, start, n - i);
        }
        int rc;
        if (self->line.len) {
            Py_ssize_t size = self->line.len + (j - i);
            if (size > self->max_line)
                return fail(self, str_line, self->max_line, size);
            if (bytes_append(&self->line, start, j - i) < 0)
                return -1;
            rc = complete_line(self, self->line.buf, self->line.len, events);
            bytes_done(&self->line);
        }
        else {
            rc = complete_line(self, start, j - i, events);
        }
        if (rc != 0)
            return rc;
        if (p[j] == '\r') {
            if (j + 1 == n)
                self->skip_lf = 1;
            else if (p[j + 1] == '\n')
                j++;
        }
        i = j + 1;
    }
    return 0;
}

static void
reset(Decoder *self)
{
    self->started = 0;
    self->start_len = 0;
    self->skip_lf = 0;
    bytes_done(&self->line);
    self->line.len = 0;
    bytes_done(&self->data);
    self->has_data = 0;
    Py_CLEAR(self->type);
    Py_CLEAR(self->event_retry);
    Py_XSETREF(self->id_buffer, Py_NewRef(self->last_event_id));
    self->open_size = 0;
}

static const char BOM[3] = {'\xef', '\xbb', '\xbf'};

static PyObject *
Decoder_feed(Decoder *self, PyObject *arg)
{
    if (self->id_buffer == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "Decoder.__init__ was not called");
        return NULL;
    }
    if (self->error != NULL) {
        self->error_owed = 0;
        PyErr_SetObject((PyObject *)Py_TYPE(self->error), self->error);
        return NULL;
    }
    Py_buffer view;
    if (PyObject_GetBuffer(arg, &view, PyBUF_SIMPLE) < 0)
        return NULL;
    const char *p = view.buf;
    Py_ssize_t n = view.len;
    char *head = NULL;  /* the held first bytes and this chunk, joined */
    PyObject *events = PyList_New(0);
    if (events == NULL)
        goto error;

    if (!self->started) {
        Py_ssize_t total = self->start_len + n;
        Py_ssize_t check = total < 3 ? total : 3;
        int bom_prefix = 1;
        for (Py_ssize_t k = 0; k < check; k++) {
            char c = k < self->start_len ? self->start[k] : p[k - self->start_len];
            if (c != BOM[k]) {
                bom_prefix = 0;
                break;
            }
        }
        if (total < 3 && bom_prefix) {
            /* Could still become a BOM: wait for more bytes. */
            memcpy(self->start + self->start_len, p, (size_t)n);
            self->start_len = total;
            PyBuffer_Release(&view);
            return events;
        }
        if (self->start_len) {
            head = PyMem_Malloc((size_t)total);
            if (head == NULL) {
                PyErr_NoMemory();
                goto error;
            }
            memcpy(head, self->start, (size_t)self->start_len);
            memcpy(head + self->start_len, p, (size_t)n);
            p = head;
            n = total;
            self->start_len = 0;
        }
        self->started = 1;
        if (bom_prefix) {  /* and at least 3 bytes: a BOM */
            p += 3;
            n -= 3;
        }
    }

    int rc = process(self, p, n, events);
    PyMem_Free(head);
    head = NULL;
    PyBuffer_Release(&view);
    bytes_release_empty(&self->line);
    bytes_release_empty(&self->data);
    if (rc < 0) {
        Py_DECREF(events);
        return NULL;
    }
    if (rc > 0) {
        /* Deliver the events completed before the limit first; raise on the next call. */
        if (PyList_GET_SIZE(events) > 0) {
            self->error_owed = 1;
            return events;
        }
        Py_DECREF(events);
        PyErr_SetObject((PyObject *)Py_TYPE(self->error), self->error);
        return NULL;
    }
    return events;

error:
    PyMem_Free(head);
    PyBuffer_Release(&view);
    Py_XDECREF(events);
    return NULL;
}

static PyObject *
Decoder_close(Decoder *self, PyObject *Py_UNUSED(ignored))
{
    if (self->last_event_id == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "Decoder.__init__ was not called");
        return NULL;
    }
    PyObject *error = self->error_owed ? self->error : NULL;
    Py_XINCREF(error);
    Py_CLEAR(self->error);
    self->error_owed = 0;
    reset(self);
    if (error != NULL) {
        PyErr_SetObject((PyObject *)Py_TYPE(error), error);
        Py_DECREF(error);
        return NULL;
    }
    return PyList_New(0);
}

/* ---- the type --------------------------------------------------------------------- */

static int
Decoder_init(Decoder *self, PyObject *args, PyObject *kwargs)
{
    static char *keywords[] = {"last_event_id", "max_line_bytes", "max_event_bytes", NULL};
    PyObject *last_event_id = NULL;
    Py_ssize_t max_line = 16 * 1024 * 1024, max_event = 16 * 1024 * 1024;
    if (event_type == NULL) {
        PyErr_SetString(PyExc_RuntimeError,
                        "tokenrelay.sse._cdecoder is used through tokenrelay.sse.decoder only");
        return -1;
    }
    if (!PyArg_ParseTupleAndKeywords(
            args, kwargs, "|U$nn:Decoder", keywords, &last_event_id, &max_line, &max_event))
        return -1;
    if (max_line < 1 || max_event < 1) {
        PyErr_SetString(PyExc_ValueError, "max_line_bytes and max_event_bytes must be positive");
        return -1;
    }
    self->max_line = max_line;
    self->max_event = max_event;
    /* An exact str, as everything else events hold: a str subclass could hold a cycle,
     * and events are not tracked by the GC. */
    last_event_id = last_event_id == NULL ? PyUnicode_New(0, 0) : PyUnicode_FromObject(last_event_id);
    if (last_event_id == NULL)
        return -1;
    Py_XSETREF(self->last_event_id, last_event_id);
    Py_CLEAR(self->retry);
    Py_CLEAR(self->error);
    self->error_owed = 0;
    reset(self);
    return 0;
}

static int
Decoder_traverse(Decoder *self, visitproc visit, void *arg)
{
    Py_VISIT(Py_TYPE(self));  /* a heap type's instances hold their type */
    Py_VISIT(self->error);    /* through its traceback, it may lead back here */
    Py_VISIT(self->last_event_id);  /* the rest are exact str and int: visited anyway */
    Py_VISIT(self->retry);
    Py_VISIT(self->type);
    Py_VISIT(self->event_retry);
    Py_VISIT(self->id_buffer);
    return 0;
}

static int
Decoder_clear(Decoder *self)
{
    Py_CLEAR(self->error);
    return 0;
}

static void
Decoder_dealloc(Decoder *self)
{
    PyObject_GC_UnTrack(self);
    Py_CLEAR(self->last_event_id);
    Py_CLEAR(self->retry);
    Py_CLEAR(self->error);
    Py_CLEAR(self->type);
    Py_CLEAR(self->event_retry);
    Py_CLEAR(self->id_buffer);
    PyMem_Free(self->line.buf);
    PyMem_Free(self->data.buf);
    PyTypeObject *type = Py_TYPE(self);
    type->tp_free((PyObject *)self);
    Py_DECREF(type);
}

static PyObject *
Decoder_get_last_event_id(Decoder *self, void *Py_UNUSED(closure))
{
    if (self->last_event_id == NULL)
        return PyUnicode_New(0, 0);
    return Py_NewRef(self->last_event_id);
}

static PyObject *
Decoder_get_retry(Decoder *self, void *Py_UNUSED(closure))
{
    return Py_NewRef(self->retry ? self->retry : Py_None);
}

static PyMethodDef Decoder_methods[] = {
    {"feed", (PyCFunction)Decoder_feed, METH_O,
     "feed(data)\n--\n\nParse the next chunk of the stream; return the events it completed."},
    {"close", (PyCFunction)Decoder_close, METH_NOARGS,
     "close()\n--\n\nEnd of the stream: discard an unterminated event and get ready for the next."},
    {NULL, NULL, 0, NULL},
};

static PyGetSetDef Decoder_getset[] = {
    {"last_event_id", (getter)Decoder_get_last_event_id, NULL,
     "The last event ID: what a reconnecting client sends as Last-Event-ID.", NULL},
    {"retry", (getter)Decoder_get_retry, NULL,
     "The reconnection time in ms from the last valid retry: field, or None.", NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyType_Slot Decoder_slots[] = {
    {Py_tp_doc,
     "Decoder(last_event_id='', *, max_line_bytes=16777216, max_event_bytes=16777216)\n--\n\n"
     "Turns the bytes of one event stream into Event objects, chunk by chunk.\n\n"
     "The C implementation of tokenrelay.sse.decoder.PyDecoder, whose docstring states\n"
     "the behaviour; the two behave identically."},
    {Py_tp_init, Decoder_init},
    {Py_tp_new, PyType_GenericNew},
    {Py_tp_dealloc, Decoder_dealloc},
    {Py_tp_traverse, Decoder_traverse},
    {Py_tp_clear, Decoder_clear},
    {Py_tp_methods, Decoder_methods},
    {Py_tp_getset, Decoder_getset},
    {0, NULL},
};

static PyType_Spec Decoder_spec = {
    .name = "tokenrelay.sse._cdecoder.Decoder",
    .basicsize = sizeof(Decoder),
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC,
    .slots = Decoder_slots,
};

/* ---- the module ------------------------------------------------------------------- */

static int
slot_offset(PyTypeObject *type, const char *name, Py_ssize_t *offset)
{
    PyObject *descr = PyDict_GetItemString(type->tp_dict, name);  /* borrowed */
    if (descr == NULL || Py_TYPE(descr) != &PyMemberDescr_Type) {
        PyErr_Format(PyExc_TypeError, "Event.%s is not a slot", name);
        return -1;
    }
    PyMemberDef *member = ((PyMemberDescrObject *)descr)->d_member;
    if (member->type != Py_T_OBJECT_EX || member->offset < (Py_ssize_t)sizeof(PyObject)) {
        PyErr_Format(PyExc_TypeError, "Event.%s is not an object slot", name);
        return -1;
    }
    *offset = member->offset;
    return 0;
}

static PyObject *
setup(PyObject *Py_UNUSED(module), PyObject *args)
{
    PyObject *event, *error;
    if (!PyArg_ParseTuple(args, "O!O!:_setup", &PyType_Type, &event, &PyType_Type, &error))
        return NULL;
    PyTypeObject *type = (PyTypeObject *)event;
    if (event_type != NULL) {
        /* Once per process: the classes are process-wide (a second interpreter importing
         * tokenrelay has its own; it gets the Python decoder). */
        if (event == (PyObject *)event_type && error == too_large_error)
            Py_RETURN_NONE;
        PyErr_SetString(PyExc_RuntimeError, "the C decoder is set up for other classes");
        return NULL;
    }
    Py_ssize_t data, kind, id, retry;  /* committed only once all are checked */
    if (!PyType_IS_GC(type) || type->tp_itemsize != 0 || type->tp_dictoffset != 0 ||
        !PyType_IsSubtype((PyTypeObject *)error, (PyTypeObject *)PyExc_Exception) ||
        slot_offset(type, "data", &data) < 0 || slot_offset(type, "event", &kind) < 0 ||
        slot_offset(type, "id", &id) < 0 || slot_offset(type, "retry", &retry) < 0) {
        if (!PyErr_Occurred())
            PyErr_SetString(PyExc_TypeError, "Event must be a slotted class; the error an Exception");
        return NULL;
    }
    off_data = data;
    off_event = kind;
    off_id = id;
    off_retry = retry;
    too_large_error = Py_NewRef(error);
    event_type = (PyTypeObject *)Py_NewRef(event);
    Py_RETURN_NONE;
}

static PyMethodDef module_methods[] = {
    {"_setup", setup, METH_VARARGS,
     "_setup(Event, EventTooLargeError)\n--\n\nThe classes the decoder makes and raises."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module_def = {
    PyModuleDef_HEAD_INIT,
    .m_name = "tokenrelay.sse._cdecoder",
    .m_doc = "The SSE decoder in C (see tokenrelay.sse.decoder).",
    .m_size = -1,
    .m_methods = module_methods,
};

PyMODINIT_FUNC
PyInit__cdecoder(void)
{
    str_message = PyUnicode_InternFromString("message");
    str_line = PyUnicode_InternFromString("line");
    str_event = PyUnicode_InternFromString("event");
    if (str_message == NULL || str_line == NULL || str_event == NULL)
        return NULL;
    PyObject *module = PyModule_Create(&module_def);
    if (module == NULL)
        return NULL;
    PyObject *type = PyType_FromSpec(&Decoder_spec);
    int rc = type == NULL ? -1 : PyModule_AddObjectRef(module, "Decoder", type);
    Py_XDECREF(type);
    if (rc < 0) {
        Py_DECREF(module);
        return NULL;
    }
    return module;
}
