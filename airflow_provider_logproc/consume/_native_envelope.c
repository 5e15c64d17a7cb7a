/* The window read's per-record loop in C: the Python loop of loop._read_partition over one batch of
 * messages, with TextEnvelopeEncoder.add_messages for JSON values, record for record.
 *
 * Why C: per record the Python loop calls six methods of the message, parses the value with
 * orjson only to validate it (building objects it throws away) and formats an Ion envelope: about
 * 3.7 us a record, against 1.5 us for a bare confluent-kafka loop that writes the value as it is.
 *
 * What keeps it exact:
 * - The JSON check here only ever says yes for a text orjson accepts (RFC 8259, strict UTF-8, paired
 *   surrogate escapes). Anything it is not sure of (a number with an exponent or over 300 digits,
 *   nesting deeper than 512, a byte order mark...) goes to the Python deserializer, which decides and
 *   words the reason exactly as before.
 * - Keys, headers and the timestamp's minute are formatted by the same Python functions as before
 *   (cached by the encoder as before); only the envelope's fixed text and the seconds are written here.
 * tests/unit/consume/test_native_envelope.py compares this loop with the Python one byte for byte
 * and the JSON check with orjson.
 *
 * Plain CPython C API; an optional extension (setup.py): without a compiler the Python loop runs.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <string.h>

static PyObject *s_error, *s_offset, *s_timestamp, *s_key, *s_value, *s_headers;

/* ------------------------------------------------------------------ the JSON check */

#define MAX_DEPTH 512

typedef struct {
    const unsigned char *p, *end;
    int depth;
} Json;

static inline void
skip_ws(Json *j)
{
    while (j->p < j->end && (*j->p == ' ' || *j->p == '\t' || *j->p == '\n' || *j->p == '\r'))
        j->p++;
}

static inline int
hex_value(unsigned char ch)
{
    if (ch >= '0' && ch <= '9')
        return ch - '0';
    if (ch >= 'a' && ch <= 'f')
        return ch - 'a' + 10;
    if (ch >= 'A' && ch <= 'F')
        return ch - 'A' + 10;
    return -1;
}

/* Four hex digits after "\u": the code unit, or -1. */
static int
code_unit(Json *j)
{
    if (j->end - j->p < 4)
        return -1;
    int unit = 0;
    for (int i = 0; i < 4; i++) {
        int digit = hex_value(j->p[i]);
        if (digit < 0)
            return -1;
        unit = unit * 16 + digit;
    }
    j->p += 4;
    return unit;
}

/* One UTF-8 sequence starting at j->p (a byte >= 0x80): strict (no overlong forms, no surrogates,
 * nothing above U+10FFFF). */
static int
utf8_sequence(Json *j)
{
    const unsigned char *p = j->p;
    Py_ssize_t left = j->end - p;
    unsigned char b0 = p[0];
    if (b0 >= 0xC2 && b0 <= 0xDF) {
        if (left < 2 || (p[1] & 0xC0) != 0x80)
            return 0;
        j->p += 2;
        return 1;
    }
    if (b0 >= 0xE0 && b0 <= 0xEF) {
        if (left < 3 || (p[1] & 0xC0) != 0x80 || (p[2] & 0xC0) != 0x80)
            return 0;
        if ((b0 == 0xE0 && p[1] < 0xA0) || (b0 == 0xED && p[1] >= 0xA0))
            return 0; /* overlong, or a surrogate */
        j->p += 3;
        return 1;
    }
    if (b0 >= 0xF0 && b0 <= 0xF4) {
        if (left < 4 || (p[1] & 0xC0) != 0x80 || (p[2] & 0xC0) != 0x80 || (p[3] & 0xC0) != 0x80)
            return 0;
        if ((b0 == 0xF0 && p[1] < 0x90) || (b0 == 0xF4 && p[1] >= 0x90))
            return 0; /* overlong, or beyond U+10FFFF */
        j->p += 4;
        return 1;
    }
    return 0;
}

/* A string, j->p just after its opening quote. */
static int
json_string(Json *j)
{
    const unsigned long long ones = 0x0101010101010101ULL, highs = 0x8080808080808080ULL;
    for (;;) {
        /* Eight plain bytes at a time: none a quote, a backslash, a control character or non-ASCII. */
        while (j->end - j->p >= 8) {
            unsigned long long word;
            memcpy(&word, j->p, 8);
            unsigned long long quote = word ^ (ones * '"'), backslash = word ^ (ones * '\\');
            if ((((quote - ones) & ~quote) | ((backslash - ones) & ~backslash) | ((word - ones * 0x20) & ~word)
                 | word) & highs)
                break;
            j->p += 8;
        }
        if (j->p >= j->end)
            return 0;
        unsigned char ch = *j->p;
        if (ch == '"') {
            j->p++;
            return 1;
        }
        if (ch < 0x20)
            return 0;
        if (ch >= 0x80) {
            if (!utf8_sequence(j))
                return 0;
            continue;
        }
        if (ch != '\\') {
            j->p++;
            continue;
        }
        j->p++;
        if (j->p >= j->end)
            return 0;
        ch = *j->p++;
        if (ch == '"' || ch == '\\' || ch == '/' || ch == 'b' || ch == 'f' || ch == 'n' || ch == 'r' || ch == 't')
            continue;
        if (ch != 'u')
            return 0;
        int unit = code_unit(j);
        if (unit < 0 || (unit >= 0xDC00 && unit <= 0xDFFF))
            return 0; /* a low surrogate alone */
        if (unit >= 0xD800 && unit <= 0xDBFF) {
            if (j->end - j->p < 2 || j->p[0] != '\\' || j->p[1] != 'u')
                return 0;
            j->p += 2;
            int low = code_unit(j);
            if (low < 0xDC00 || low > 0xDFFF)
                return 0;
        }
    }
}

static inline int
is_digit(unsigned char ch)
{
    return ch >= '0' && ch <= '9';
}

/* A number without an exponent and with at most 300 digits: always a finite double for orjson. */
static int
json_number(Json *j)
{
    const unsigned char *start = j->p;
    if (*j->p == '-')
        j->p++;
    if (j->p >= j->end)
        return 0;
    if (*j->p == '0')
        j->p++;
    else if (is_digit(*j->p))
        while (j->p < j->end && is_digit(*j->p))
            j->p++;
    else
        return 0;
    if (j->p < j->end && *j->p == '.') {
        j->p++;
        if (j->p >= j->end || !is_digit(*j->p))
            return 0;
        while (j->p < j->end && is_digit(*j->p))
            j->p++;
    }
    if (j->p < j->end && (*j->p == 'e' || *j->p == 'E'))
        return 0; /* an exponent may overflow: orjson decides */
    return j->p - start <= 300;
}

static int json_value(Json *j);

static int
json_container(Json *j, unsigned char close)
{
    if (++j->depth > MAX_DEPTH)
        return 0;
    j->p++;
    skip_ws(j);
    if (j->p < j->end && *j->p == close) {
        j->p++;
        j->depth--;
        return 1;
    }
    for (;;) {
        if (close == '}') {
            if (j->p >= j->end || *j->p != '"')
                return 0;
            j->p++;
            /* A key that may read "$<digits>" (literally or escaped): amazon-ion's reader takes such
             * a field name for a symbol ID even in double quotes ("$0" -> no name, "$10" -> an error),
             * so the Python deserializer writes it as a quoted symbol ('$10') instead. */
            if (j->p < j->end && (*j->p == '$' || *j->p == '\\'))
                return 0;
            if (!json_string(j))
                return 0;
            skip_ws(j);
            if (j->p >= j->end || *j->p != ':')
                return 0;
            j->p++;
            skip_ws(j);
        }
        if (!json_value(j))
            return 0;
        skip_ws(j);
        if (j->p >= j->end)
            return 0;
        if (*j->p == ',') {
            j->p++;
            skip_ws(j);
            continue;
        }
        if (*j->p != close)
            return 0;
        j->p++;
        j->depth--;
        return 1;
    }
}

static int
json_value(Json *j)
{
    if (j->p >= j->end)
        return 0;
    unsigned char ch = *j->p;
    Py_ssize_t left = j->end - j->p;
    switch (ch) {
    case '{':
        return json_container(j, '}');
    case '[':
        return json_container(j, ']');
    case '"':
        j->p++;
        return json_string(j);
    case 't':
        if (left >= 4 && memcmp(j->p, "true", 4) == 0) {
            j->p += 4;
            return 1;
        }
        return 0;
    case 'f':
        if (left >= 5 && memcmp(j->p, "false", 5) == 0) {
            j->p += 5;
            return 1;
        }
        return 0;
    case 'n':
        if (left >= 4 && memcmp(j->p, "null", 4) == 0) {
            j->p += 4;
            return 1;
        }
        return 0;
    default:
        if (ch == '-' || is_digit(ch))
            return json_number(j);
        return 0;
    }
}

/* 1: orjson accepts the text, and it reads back as the same value as Ion text. 0: not sure (ask the
 * Python deserializer: orjson, and the field names amazon-ion would misread).
 *
 * Why not msgspec.json.Decoder(msgspec.Raw), already a dependency (issue 18, bench/bench_json_check.py):
 * called from Python it is no faster (0.91x this check's speed, median of 7 alternating rounds, on
 * 100k sample/ECS/nginx values), and it is not the same promise: of 200k damaged texts it accepted
 * 41,053 that orjson refuses (invalid UTF-8 inside strings, 1e999, lone surrogates), where this check
 * accepted none. A false yes would put a value into the envelope that the Ion -> JSON step cannot read. */
static int
surely_json(const char *text, Py_ssize_t length)
{
    Json j = {(const unsigned char *)text, (const unsigned char *)text + length, 0};
    skip_ws(&j);
    if (!json_value(&j))
        return 0;
    skip_ws(&j);
    return j.p == j.end;
}

PyDoc_STRVAR(surely_json_doc,
"surely_json(data: bytes) -> bool\n\nTrue only for a text orjson.loads accepts whose object keys cannot read as\n"
"Ion symbol IDs; False when not sure.");

static PyObject *
py_surely_json(PyObject *module, PyObject *data)
{
    if (!PyBytes_Check(data)) {
        PyErr_SetString(PyExc_TypeError, "data must be bytes");
        return NULL;
    }
    return PyBool_FromLong(surely_json(PyBytes_AS_STRING(data), PyBytes_GET_SIZE(data)));
}

/* ------------------------------------------------------------------ the output buffer */

typedef struct {
    char *data;
    size_t length, capacity;
} Buffer;

static int
buffer_reserve(Buffer *b, size_t more)
{
    if (b->length + more <= b->capacity)
        return 0;
    size_t capacity = b->capacity ? b->capacity : 1 << 16;
    while (capacity < b->length + more)
        capacity *= 2;
    char *data = PyMem_Realloc(b->data, capacity);
    if (data == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    b->data = data;
    b->capacity = capacity;
    return 0;
}

static inline void
put(Buffer *b, const char *text, size_t length)
{
    memcpy(b->data + b->length, text, length);
    b->length += length;
}

static inline void
put_bytes(Buffer *b, PyObject *bytes)
{
    put(b, PyBytes_AS_STRING(bytes), (size_t)PyBytes_GET_SIZE(bytes));
}

/* The decimal digits of a non-negative offset. */
static size_t
format_unsigned(char *out, unsigned long long value)
{
    char digits[24];
    size_t n = 0;
    do {
        digits[n++] = (char)('0' + value % 10);
        value /= 10;
    } while (value);
    for (size_t i = 0; i < n; i++)
        out[i] = digits[n - 1 - i];
    return n;
}

/* ------------------------------------------------------------------ the loop */

static PyObject *
call_method(PyObject *object, PyObject *name)
{
    return PyObject_CallMethodNoArgs(object, name);
}

static int
as_long_long(PyObject *value, long long *out)
{
    *out = PyLong_AsLongLong(value);
    return *out == -1 && PyErr_Occurred() ? -1 : 0;
}

PyDoc_STRVAR(encode_window_batch_doc,
"encode_window_batch(messages, head, stop_offset, since_ms, until_ms, stop_ms, key_cache, key_text,\n"
"                    value_text, minute_prefix, headers_text, undecodable)\n"
"-> (chunk, done, last_offset, outside, written, first_written, last_written, no_timestamp, refused,\n"
"    error_index)\n\n"
"One batch of a partition's messages, as loop._read_partition's Python loop reads it, each message\n"
"in the window encoded as TextEnvelopeEncoder.add_messages would (a JSON value).\n"
"``head``: b'{topic:...,partition:N,offset:'; ``key_cache``: the encoder's dict of key texts;\n"
"``key_text``/``value_text``: its Python deserializers (raise ``undecodable``), called for a key\n"
"not cached and a value the C check is not sure of; ``minute_prefix(minute) -> bytes``;\n"
"``headers_text(headers) -> bytes`` for non-empty headers.\n"
"``no_timestamp``: messages without a timestamp; ``refused``: (message, reason) pairs;\n"
"``error_index``: the index of a message with an error (the caller raises), or -1.");

static PyObject *
encode_window_batch(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 12) {
        PyErr_SetString(PyExc_TypeError, "encode_window_batch() takes 12 arguments");
        return NULL;
    }
    PyObject *messages = args[0], *head = args[1], *key_cache = args[6], *key_text = args[7],
             *value_text = args[8], *minute_prefix = args[9], *headers_text = args[10],
             *undecodable = args[11];
    if (!PyList_Check(messages) || !PyBytes_Check(head) || !PyDict_Check(key_cache)) {
        PyErr_SetString(PyExc_TypeError, "messages must be a list, head bytes, key_cache a dict");
        return NULL;
    }
    long long stop_offset, since_ms, until_ms, stop_ms;
    if (as_long_long(args[2], &stop_offset) < 0 || as_long_long(args[3], &since_ms) < 0
        || as_long_long(args[4], &until_ms) < 0 || as_long_long(args[5], &stop_ms) < 0)
        return NULL;

    Buffer out = {NULL, 0, 0};
    PyObject *no_timestamp = PyList_New(0), *refused = PyList_New(0), *result = NULL;
    PyObject *prefix = NULL; /* the current minute's "YYYY-MM-DDTHH:MM:" */
    long long prefix_minute = 0;
    long long offset = -1, outside = 0, written = 0, first_written = -1, last_written = -1;
    Py_ssize_t error_index = -1;
    int done = 0;
    if (no_timestamp == NULL || refused == NULL)
        goto fail;

    for (Py_ssize_t i = 0; i < PyList_GET_SIZE(messages); i++) {
        PyObject *message = PyList_GET_ITEM(messages, i);
        PyObject *error = call_method(message, s_error);
        if (error == NULL)
            goto fail;
        int has_error = error != Py_None;
        Py_DECREF(error);
        if (has_error) {
            error_index = i;
            break;
        }
        PyObject *value = call_method(message, s_offset);
        if (value == NULL || as_long_long(value, &offset) < 0) {
            Py_XDECREF(value);
            goto fail;
        }
        Py_DECREF(value);
        if (offset >= stop_offset) {
            done = 1;
            break;
        }
        PyObject *stamp = call_method(message, s_timestamp);
        if (stamp == NULL)
            goto fail;
        long long timestamp_ms;
        int bad = !PyTuple_Check(stamp) || PyTuple_GET_SIZE(stamp) != 2
                  || as_long_long(PyTuple_GET_ITEM(stamp, 1), &timestamp_ms) < 0;
        Py_DECREF(stamp);
        if (bad) {
            if (!PyErr_Occurred())
                PyErr_SetString(PyExc_TypeError, "Message.timestamp() must return (type, milliseconds)");
            goto fail;
        }
        if (timestamp_ms >= stop_ms) {
            done = 1;
            break;
        }
        if (since_ms <= timestamp_ms && timestamp_ms < until_ms) {
            /* The key, then the value: both before anything is written, so a refused record leaves
             * no partial line. */
            PyObject *key_raw = call_method(message, s_key), *key = NULL, *value_raw = NULL, *value_ion = NULL;
            PyObject *reason = NULL;
            if (key_raw == NULL)
                goto fail;
            if (key_raw == Py_None)
                key = PyBytes_FromStringAndSize("null", 4);
            else if ((key = PyDict_GetItemWithError(key_cache, key_raw)) != NULL)
                Py_INCREF(key);
            else if (!PyErr_Occurred())
                key = PyObject_CallOneArg(key_text, key_raw);
            Py_DECREF(key_raw);
            if (key != NULL) {
                value_raw = call_method(message, s_value);
                if (value_raw == NULL) {
                    Py_DECREF(key);
                    goto fail;
                }
                if (value_raw == Py_None)
                    value_ion = PyBytes_FromStringAndSize("null", 4);
                else if (PyBytes_Check(value_raw)
                         && surely_json(PyBytes_AS_STRING(value_raw), PyBytes_GET_SIZE(value_raw)))
                    value_ion = Py_NewRef(value_raw);
                else
                    value_ion = PyObject_CallOneArg(value_text, value_raw);
                Py_DECREF(value_raw);
            }
            if (key == NULL || value_ion == NULL) {
                if (!PyErr_ExceptionMatches(undecodable)) {
                    Py_XDECREF(key);
                    goto fail;
                }
                PyObject *type, *traceback;
                PyErr_Fetch(&type, &reason, &traceback);
                PyErr_NormalizeException(&type, &reason, &traceback);
                Py_XDECREF(type);
                Py_XDECREF(traceback);
                Py_XDECREF(key);
                PyObject *pair = PyTuple_Pack(2, message, reason);
                Py_DECREF(reason);
                if (pair == NULL || PyList_Append(refused, pair) < 0) {
                    Py_XDECREF(pair);
                    goto fail;
                }
                Py_DECREF(pair);
            }
            else {
                if (!PyBytes_Check(key) || !PyBytes_Check(value_ion)) {
                    PyErr_SetString(PyExc_TypeError, "the key and value deserializers must return bytes");
                    Py_DECREF(key);
                    Py_DECREF(value_ion);
                    goto fail;
                }
                PyObject *headers = call_method(message, s_headers), *headers_ion = NULL;
                int ok = headers != NULL;
                if (ok) {
                    int truth = PyObject_IsTrue(headers);
                    if (truth < 0)
                        ok = 0;
                    else if (truth) /* rare: the same Python formatter as before */
                        ok = (headers_ion = PyObject_CallOneArg(headers_text, headers)) != NULL
                             && PyBytes_Check(headers_ion);
                    if (headers_ion != NULL && !PyBytes_Check(headers_ion))
                        PyErr_SetString(PyExc_TypeError, "headers_text must return bytes");
                }
                Py_XDECREF(headers);
                long long minute = timestamp_ms >= 0 ? timestamp_ms / 60000 : -((-timestamp_ms + 59999) / 60000);
                long long millis = timestamp_ms - minute * 60000;
                if (ok && (prefix == NULL || minute != prefix_minute)) {
                    PyObject *m = PyLong_FromLongLong(minute);
                    PyObject *text = m == NULL ? NULL : PyObject_CallOneArg(minute_prefix, m);
                    Py_XDECREF(m);
                    if (text != NULL && !PyBytes_Check(text)) {
                        Py_DECREF(text);
                        text = NULL;
                        PyErr_SetString(PyExc_TypeError, "minute_prefix must return bytes");
                    }
                    Py_XSETREF(prefix, text);
                    prefix_minute = minute;
                    ok = text != NULL;
                }
                if (!ok || buffer_reserve(&out, (size_t)(PyBytes_GET_SIZE(head) + PyBytes_GET_SIZE(prefix)
                                                         + PyBytes_GET_SIZE(key) + PyBytes_GET_SIZE(value_ion)
                                                         + (headers_ion ? PyBytes_GET_SIZE(headers_ion) : 2)
                                                         + 96)) < 0) {
                    Py_DECREF(key);
                    Py_DECREF(value_ion);
                    Py_XDECREF(headers_ion);
                    goto fail;
                }
                char number[32];
                put_bytes(&out, head);
                if (offset < 0) { /* never for a fetched record, but written as Python's %d would */
                    put(&out, "-", 1);
                    put(&out, number, format_unsigned(number, 0ULL - (unsigned long long)offset));
                }
                else
                    put(&out, number, format_unsigned(number, (unsigned long long)offset));
                put(&out, ",timestamp:", 11);
                put_bytes(&out, prefix);
                char seconds[7] = {(char)('0' + millis / 10000), (char)('0' + millis / 1000 % 10), '.',
                                   (char)('0' + millis / 100 % 10), (char)('0' + millis / 10 % 10),
                                   (char)('0' + millis % 10), 'Z'};
                put(&out, seconds, 7);
                put(&out, ",key:", 5);
                put_bytes(&out, key);
                put(&out, ",value:", 7);
                put_bytes(&out, value_ion);
                put(&out, ",headers:", 9);
                if (headers_ion != NULL)
                    put_bytes(&out, headers_ion);
                else
                    put(&out, "[]", 2);
                put(&out, "}\n", 2);
                Py_DECREF(key);
                Py_DECREF(value_ion);
                Py_XDECREF(headers_ion);
                if (first_written < 0)
                    first_written = offset;
                last_written = offset;
                written++;
            }
        }
        else if (timestamp_ms < 0) {
            if (PyList_Append(no_timestamp, message) < 0)
                goto fail;
        }
        else
            outside++;
        if (offset + 1 >= stop_offset) {
            done = 1;
            break;
        }
    }

    PyObject *chunk = PyBytes_FromStringAndSize(out.data ? out.data : "", (Py_ssize_t)out.length);
    if (chunk != NULL)
        result = Py_BuildValue("NNLLLLLNNn", chunk, PyBool_FromLong(done), offset, outside, written,
                               first_written, last_written, no_timestamp, refused, error_index);
    no_timestamp = refused = NULL; /* stolen by "N" (or freed on failure below) */
fail:
    PyMem_Free(out.data);
    Py_XDECREF(prefix);
    Py_XDECREF(no_timestamp);
    Py_XDECREF(refused);
    return result;
}

static PyMethodDef methods[] = {
    {"encode_window_batch", (PyCFunction)(void (*)(void))encode_window_batch, METH_FASTCALL,
     encode_window_batch_doc},
    {"surely_json", py_surely_json, METH_O, surely_json_doc},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module_def = {
    PyModuleDef_HEAD_INIT,
    "airflow_provider_logproc.consume._native_envelope",
    "The window read's per-record loop in C (see loop._read_partition).",
    -1,
    methods,
};

#define INTERN(var, text)                                 \
    if ((var = PyUnicode_InternFromString(text)) == NULL) \
        return NULL;

PyMODINIT_FUNC
PyInit__native_envelope(void)
{
    INTERN(s_error, "error");
    INTERN(s_offset, "offset");
    INTERN(s_timestamp, "timestamp");
    INTERN(s_key, "key");
    INTERN(s_value, "value");
    INTERN(s_headers, "headers");
    return PyModule_Create(&module_def);
}
