/* The analyzer's per-line loop in C: Aggregate.ingest_lines' fast path, line for line.
 *
 * Why C: the loop costs ~2.6 us a line in CPython, of which msgspec's decode is ~0.5 us; the rest
 * is bytecode around dictionary updates. Here the same steps are direct calls into the same
 * Python objects (the aggregate's own dicts, its caches, its msgspec decoder and its Python
 * helpers), so the result is the aggregate the Python loop builds, not a second implementation.
 *
 * The rule that keeps it exact: whatever the Python fast path would do, this does in the same
 * order, with the same objects; wherever the Python fast path raises (and so falls back to the
 * slow path), this calls the same slow path. tests/unit/analysis/test_decode_paths.py runs every
 * line through this loop, the Python loop and the slow path alone and compares the results.
 *
 * Plain CPython C API, no private functions; built as an optional extension (setup.py): without a
 * compiler the package installs and runs the Python loop.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <limits.h>
#include <string.h>

/* Field names of the msgspec struct (record_decoder) and attributes of Aggregate. */
static PyObject *s_timestamp, *s_client_ip, *s_status, *s_method, *s_path, *s_user_agent, *s_source,
    *s_bytes, *s_latency_ms;
static PyObject *s_ips, *s_ip_client_errors, *s_ip_server_errors, *s_minute_status, *s_kinds, *s_paths,
    *s_user_agents, *s_latency_pending, *s_iso_prefix, *s_iso_tail, *s_bytes_total,
    *s_bytes_records, *s_minute_range;

typedef struct {
    PyObject *ips, *ip_4xx, *ip_5xx, *minute_status, *kinds, *paths, *agents, *latency;
    PyObject *iso_prefix, *iso_tail;
} Counters;

/* Where a line goes when the fast path cannot take it. */
enum { COUNTED = 1, SLOW = 0, FAILED = -1 };

static PyObject *one; /* the int 1 */
static PyObject *status_objects[600]; /* 100..599 */

/* The Python loop catches Exception around its fast path and takes the slow path; anything else
 * (KeyboardInterrupt, SystemExit) propagates. */
static int
to_slow(void)
{
    if (PyErr_ExceptionMatches(PyExc_Exception)) {
        PyErr_Clear();
        return SLOW;
    }
    return FAILED;
}

/* d[key] += n on a dict or defaultdict(int): a missing key ends as n either way. */
static int
add_to(PyObject *dict, PyObject *key, unsigned long long n)
{
    PyObject *old = PyDict_GetItemWithError(dict, key); /* borrowed */
    PyObject *new_value = NULL;
    if (old == NULL) {
        if (PyErr_Occurred())
            return -1;
        new_value = PyLong_FromUnsignedLongLong(n);
    }
    else {
        int overflow = 0;
        long long count = PyLong_CheckExact(old) ? PyLong_AsLongLongAndOverflow(old, &overflow) : -1;
        if (PyLong_CheckExact(old) && overflow == 0 && count >= 0 && n <= (unsigned long long)(LLONG_MAX - count))
            new_value = PyLong_FromLongLong(count + (long long)n); /* the usual case, in C */
        else {
            PyObject *delta = PyErr_Occurred() ? NULL : PyLong_FromUnsignedLongLong(n);
            new_value = delta == NULL ? NULL : PyNumber_Add(old, delta);
            Py_XDECREF(delta);
        }
    }
    if (new_value == NULL)
        return -1;
    int rc = PyDict_SetItem(dict, key, new_value);
    Py_DECREF(new_value);
    return rc;
}

static inline int
bump(PyObject *dict, PyObject *key)
{
    return add_to(dict, key, 1);
}

/* obj[key] += 1 through the mapping protocol, so IpCounter.__missing__ runs as in Python. */
static int
bump_item(PyObject *obj, PyObject *key)
{
    PyObject *old = PyObject_GetItem(obj, key);
    if (old == NULL)
        return -1;
    PyObject *new_value = PyNumber_Add(old, one);
    Py_DECREF(old);
    if (new_value == NULL)
        return -1;
    int rc = PyObject_SetItem(obj, key, new_value);
    Py_DECREF(new_value);
    return rc;
}

/* The byte counts: summed in C while they fit, folded into the Python integer when they would not. */
typedef struct {
    PyObject *total; /* the aggregate's bytes_total so far (owned) */
    unsigned long long pending;
    long long records;
} ByteSums;

static int
fold_pending(ByteSums *sums)
{
    PyObject *pending = PyLong_FromUnsignedLongLong(sums->pending);
    if (pending == NULL)
        return -1;
    PyObject *sum = PyNumber_Add(sums->total, pending);
    Py_DECREF(pending);
    if (sum == NULL)
        return -1;
    Py_SETREF(sums->total, sum);
    sums->pending = 0;
    return 0;
}

static int
add_size_value(ByteSums *sums, unsigned long long value)
{
    if (value > ULLONG_MAX - sums->pending && fold_pending(sums) < 0)
        return -1;
    sums->pending += value;
    sums->records += 1;
    return 0;
}

/* A size object from either Python path: an int, perhaps beyond 64 bits. */
static int
add_size_object(ByteSums *sums, PyObject *size)
{
    if (PyLong_CheckExact(size)) {
        int overflow = 0;
        long long small = PyLong_AsLongLongAndOverflow(size, &overflow);
        if (overflow == 0 && small >= 0)
            return add_size_value(sums, (unsigned long long)small);
    }
    PyErr_Clear();
    PyObject *sum = PyNumber_Add(sums->total, size);
    if (sum == NULL)
        return -1;
    Py_SETREF(sums->total, sum);
    sums->records += 1;
    return 0;
}

/* The counts after the IP's, the same for every path. minute_key is a new reference (stolen). */
static int
count_rest(Counters *c, PyObject *minute_key, PyObject *ip, PyObject *status, long status_value,
           PyObject *method, PyObject *path, PyObject *agent, PyObject *origin, PyObject *latency)
{
    int rc = bump(c->minute_status, minute_key);
    Py_DECREF(minute_key);
    if (rc < 0)
        return -1;
    PyObject *kind = PyTuple_Pack(3, status, method, origin);
    if (kind == NULL)
        return -1;
    rc = bump(c->kinds, kind);
    Py_DECREF(kind);
    if (rc < 0 || bump(c->paths, path) < 0 || bump(c->agents, agent) < 0)
        return -1;
    if (status_value >= 500) {
        if (bump(c->ip_5xx, ip) < 0)
            return -1;
    }
    else if (status_value >= 400) {
        if (bump(c->ip_4xx, ip) < 0)
            return -1;
    }
    if (latency != Py_None && bump(c->latency, latency) < 0)
        return -1;
    return 0;
}

/* 0 <= value <= 2**64 - 1 for an exact int; *out gets it. */
static int
as_u64(PyObject *value, unsigned long long *out)
{
    int overflow = 0;
    long long small = PyLong_AsLongLongAndOverflow(value, &overflow);
    if (overflow == 0) {
        if (small == -1 && PyErr_Occurred())
            return -1;
        if (small < 0)
            return 0;
        *out = (unsigned long long)small;
        return 1;
    }
    if (overflow < 0)
        return 0;
    *out = PyLong_AsUnsignedLongLong(value);
    if (*out == (unsigned long long)-1 && PyErr_Occurred()) {
        if (!PyErr_ExceptionMatches(PyExc_OverflowError))
            return -1;
        PyErr_Clear();
        return 0;
    }
    return 1;
}

/* -2**63 <= value <= 2**64 - 1 for an exact int (the latencies orjson reads as integers). */
static int
in_json_int_range(PyObject *value)
{
    int overflow = 0;
    long long small = PyLong_AsLongLongAndOverflow(value, &overflow);
    if (overflow == 0)
        return (small == -1 && PyErr_Occurred()) ? -1 : 1;
    if (overflow < 0)
        return 0;
    unsigned long long u;
    return as_u64(value, &u);
}

/* ------------------------------------------------------------------ timestamps */

/* The caches the Python helper (Aggregate._minute_of) fills, keyed by the pieces of an ISO
 * timestamp: '_iso_prefix' ('YYYY-MM-DDTHH:MM' -> minute) and '_iso_tail' (fraction and zone ->
 * offset minutes). The helper validates each piece before it learns it, so any combination of valid
 * pieces is a valid timestamp, whose minute is the prefix's less the zone's offset. The seconds
 * (':SS', 00-59: fields.iso_seconds_valid) are checked here, not looked up: they change from line to
 * line. Below, tables of prefixes and of zones are remembered by their characters, which skips
 * making the substrings the dictionaries are keyed by for most lines (a day's stream holds a few
 * thousand minutes, interleaved by its producers' clocks and zones). A zone's offset does not depend
 * on the fraction before it, so a zone slot is keyed by the zone alone ('Z' for '.910Z' and '.911Z')
 * once the dict has known one whole tail with that zone (fields._ISO_TAIL_RE: [.,] and 1-9 digits,
 * then the zone). */
#define PREFIX_SLOTS 1024
#define ZONE_SLOTS 64
#define ZONE_MAX 15

typedef struct {
    int valid;
    char text[16];
    long long minute;
} PrefixSlot;

typedef struct {
    int length; /* -1: empty slot */
    char text[ZONE_MAX];
    long long zone;
} ZoneSlot;

typedef struct {
    PrefixSlot prefixes[PREFIX_SLOTS];
    ZoneSlot zones[ZONE_SLOTS];
} IsoMemo;

static void
iso_memo_init(IsoMemo *memo)
{
    for (int i = 0; i < PREFIX_SLOTS; i++)
        memo->prefixes[i].valid = 0;
    for (int i = 0; i < ZONE_SLOTS; i++)
        memo->zones[i].length = -1;
}

static inline int
is_digit(char ch)
{
    return ch >= '0' && ch <= '9';
}

static inline const char *
skip_digits(const char *p, const char *end)
{
    while (p < end && is_digit(*p))
        p++;
    return p;
}

/* The zone of a tail (what follows the seconds) past its fraction, as _ISO_TAIL_RE reads it; NULL when
 * the fraction is not one it takes (no digit, or more than 9: only the dict or Python may decide). */
static const char *
zone_of_tail(const char *tail, Py_ssize_t length)
{
    if (length == 0 || (tail[0] != '.' && tail[0] != ','))
        return tail;
    Py_ssize_t digits = skip_digits(tail + 1, tail + length) - (tail + 1);
    return digits >= 1 && digits <= 9 ? tail + 1 + digits : NULL;
}

static unsigned long long
hash_chars(const char *p, Py_ssize_t n)
{
    /* Only a cache index: collisions cost a dictionary lookup, never a wrong answer. */
    unsigned long long h = 0x9E3779B97F4A7C15ULL ^ (unsigned long long)n;
    while (n >= 8) {
        unsigned long long word;
        memcpy(&word, p, 8);
        h = (h ^ word) * 0xff51afd7ed558ccdULL;
        h ^= h >> 32;
        p += 8;
        n -= 8;
    }
    unsigned long long word = 0;
    memcpy(&word, p, (size_t)n);
    h = (h ^ word) * 0xc4ceb9fe1a85ec53ULL;
    return h ^ (h >> 29);
}

/* Look a piece (1-byte-kind characters) up in a cache dict: 1 found (*value borrowed), 0 not, -1 error. */
static int
lookup_chars(PyObject *cache, const char *chars, Py_ssize_t n, PyObject **value)
{
    PyObject *piece = PyUnicode_FromKindAndData(PyUnicode_1BYTE_KIND, chars, n);
    if (piece == NULL)
        return -1;
    *value = PyDict_GetItemWithError(cache, piece);
    Py_DECREF(piece);
    if (*value == NULL)
        return PyErr_Occurred() ? -1 : 0;
    return 1;
}

static int
small_int(PyObject *value, long long *out)
{
    if (!PyLong_CheckExact(value))
        return 0;
    int overflow = 0;
    *out = PyLong_AsLongLongAndOverflow(value, &overflow);
    if (*out == -1 && PyErr_Occurred())
        return -1;
    return overflow == 0 && *out > -(1LL << 40) && *out < (1LL << 40);
}

/* The minute of an ISO timestamp given as 1-byte-kind characters, from the caches: 1 found, 0 not
 * (ask the helper), -1 error. */
static int
cached_iso_minute(Counters *c, IsoMemo *memo, const char *chars, Py_ssize_t length, long long *minute)
{
    PyObject *found;
    long long prefix_minute, zone;
    int rc;

    if (length < 19)
        return 0;
    PrefixSlot *known = &memo->prefixes[hash_chars(chars, 16) & (PREFIX_SLOTS - 1)];
    if (known->valid && memcmp(chars, known->text, 16) == 0)
        prefix_minute = known->minute;
    else {
        rc = lookup_chars(c->iso_prefix, chars, 16, &found);
        if (rc <= 0 || (rc = small_int(found, &prefix_minute)) <= 0)
            return rc;
        memcpy(known->text, chars, 16);
        known->minute = prefix_minute;
        known->valid = 1;
    }
    if (!(chars[16] == ':' && is_digit(chars[17]) && is_digit(chars[18]) && chars[17] < '6'))
        return 0; /* not ':00'-':59': Python says what it is */
    const char *tail = chars + 19;
    Py_ssize_t tail_length = length - 19;
    const char *zone_text = zone_of_tail(tail, tail_length);
    Py_ssize_t zone_length = zone_text == NULL ? 0 : tail + tail_length - zone_text;
    ZoneSlot *slot = NULL;
    if (zone_text != NULL && zone_length <= ZONE_MAX) {
        slot = &memo->zones[hash_chars(zone_text, zone_length) & (ZONE_SLOTS - 1)];
        if (slot->length == zone_length && memcmp(slot->text, zone_text, (size_t)zone_length) == 0) {
            *minute = prefix_minute - slot->zone;
            return 1;
        }
    }
    rc = lookup_chars(c->iso_tail, tail, tail_length, &found);
    if (rc <= 0 || (rc = small_int(found, &zone)) <= 0)
        return rc;
    if (slot != NULL) {
        slot->length = (int)zone_length;
        memcpy(slot->text, zone_text, (size_t)zone_length);
        slot->zone = zone;
    }
    *minute = prefix_minute - zone;
    return 1;
}

/* key = minute * 1000 + status, as a new int. */
static PyObject *
minute_key_of(PyObject *minute, long status)
{
    int overflow = 0;
    long long value = PyLong_AsLongLongAndOverflow(minute, &overflow);
    if (overflow == 0 && !(value == -1 && PyErr_Occurred()) && value > -9000000000000000LL
        && value < 9000000000000000LL)
        return PyLong_FromLongLong(value * 1000 + status);
    if (PyErr_Occurred())
        return NULL;
    PyObject *thousand = PyLong_FromLong(1000), *status_obj = PyLong_FromLong(status);
    PyObject *scaled = (thousand && status_obj) ? PyNumber_Multiply(minute, thousand) : NULL;
    PyObject *key = scaled ? PyNumber_Add(scaled, status_obj) : NULL;
    Py_XDECREF(thousand);
    Py_XDECREF(status_obj);
    Py_XDECREF(scaled);
    return key;
}

/* ips[ip] += 1 on the fast path: an unseen IP goes through IpCounter.__missing__ (validation), whose
 * exception means the slow path, nothing counted. COUNTED, SLOW or FAILED. */
static int
count_ip(Counters *c, PyObject *ip)
{
    PyObject *seen = PyDict_GetItemWithError(c->ips, ip); /* borrowed */
    if (seen == NULL) {
        if (PyErr_Occurred())
            return to_slow();
        PyObject *zero = PyObject_GetItem(c->ips, ip);
        if (zero == NULL)
            return to_slow();
        Py_DECREF(zero);
        return PyDict_SetItem(c->ips, ip, one) < 0 ? FAILED : COUNTED;
    }
    return bump(c->ips, ip) < 0 ? FAILED : COUNTED;
}

/* Whether an IP text is an address in canonical form, decided in C for the two common shapes:
 * 1 = yes, 0 = undecided (ask IpCounter, i.e. fields.parse_client_ip). Never says yes where
 * parse_client_ip(text) != text, so it only skips the Python call, it never changes the answer.
 *
 * Why C: at hundreds of thousands of distinct clients a part, calling IpCounter.__missing__ once
 * per new address was the largest share of the ingest after the loop itself (~1.5 us an address).
 * The two shapes are exactly those parse_client_ip accepts without an address object: a dotted quad
 * of decimal octets 0-255 without leading zeros (its _CANONICAL_IPV4_RE, ASCII digits only), and an
 * IPv6 text without '.' or '%' written as Python and glibc's inet_ntop write the address it names
 * (canonical_ipv6). Anything else goes to Python as before. */
/* 1 and the address's 4 bytes in network order if the text is a canonical dotted quad, else 0. */
static int
canonical_ipv4(const char *p, Py_ssize_t n, unsigned char *address)
{
    if (n < 7 || n > 15)
        return 0;
    int octets = 0;
    Py_ssize_t i = 0;
    while (octets < 4) {
        Py_ssize_t start = i;
        int value = 0;
        while (i < n && p[i] >= '0' && p[i] <= '9' && i - start < 3)
            value = value * 10 + (p[i++] - '0');
        Py_ssize_t digits = i - start;
        if (digits == 0 || value > 255 || (digits > 1 && p[start] == '0'))
            return 0;
        address[octets++] = (unsigned char)value;
        if (octets < 4) {
            if (i >= n || p[i] != '.')
                return 0;
            i++;
        }
    }
    return i == n;
}

/* Where the canonical text of an IPv6 address (its 8 groups) writes '::': the first longest run of two or
 * more zero groups (*base -1: none). 0 where inet_ntop would write an embedded IPv4 dotted quad instead
 * (::a.b.c.d, ::ffff:a.b.c.d), else 1. One rule for ipv6_text and canonical_ipv6. */
static int
ipv6_zero_run(const unsigned int words[8], int *base, int *length)
{
    int best_base = -1, best_length = 0, run_base = -1, run_length = 0;
    for (int i = 0; i < 8; i++) {
        if (words[i] == 0) {
            if (run_base < 0)
                run_base = i, run_length = 0;
            if (++run_length > best_length)
                best_base = run_base, best_length = run_length;
        } else {
            run_base = -1;
        }
    }
    if (best_length < 2)
        best_base = -1, best_length = 0;
    *base = best_base;
    *length = best_length;
    return !(best_base == 0 && (best_length == 6 || (best_length == 5 && words[5] == 0xffff)));
}

/* inet_ntop's text of an IPv6 address (glibc's rules, which are RFC 5952's and Python's: lowercase hex
 * without leading zeros, the first longest run of two or more zero groups as '::'), its length; 0 where
 * inet_ntop would end it with an embedded IPv4 dotted quad (::a.b.c.d, ::ffff:a.b.c.d), whose canonical
 * text the caller leaves to Python. Written out here because glibc's formats each group with sprintf,
 * which cost more than the rest of a line's work when every IPv6 line is checked. */
static size_t
ipv6_text(const unsigned char *address, char *text)
{
    static const char digits[] = "0123456789abcdef";
    unsigned int words[8];
    int best_base, best_length;
    for (int i = 0; i < 8; i++)
        words[i] = (unsigned int)address[2 * i] << 8 | address[2 * i + 1];
    if (!ipv6_zero_run(words, &best_base, &best_length))
        return 0;
    char *out = text;
    for (int i = 0; i < 8; i++) {
        if (best_base >= 0 && i >= best_base && i < best_base + best_length) {
            if (i == best_base)
                *out++ = ':';
            continue;
        }
        if (i != 0)
            *out++ = ':';
        unsigned int word = words[i];
        int started = 0;
        for (int shift = 12; shift >= 0; shift -= 4) {
            unsigned int nibble = (word >> shift) & 15;
            if (nibble || started || shift == 0) {
                *out++ = digits[nibble];
                started = 1;
            }
        }
    }
    if (best_base >= 0 && best_base + best_length == 8)
        *out++ = ':';
    return (size_t)(out - text);
}

/* 1 and the address's 16 bytes if the text is an IPv6 address in canonical form, else 0 (undecided).
 *
 * One pass over the text instead of inet_pton and printing it back (the line's largest cost after the
 * scan when half the clients are IPv6): every group 1-4 lowercase hex digits without a leading zero, at
 * most one '::', and the '::' standing for exactly the first longest run of two or more zero groups, as
 * ipv6_text (glibc's inet_ntop, RFC 5952, Python) writes it; the forms ipv6_text leaves to Python (an
 * embedded IPv4) are undecided here too. Anything else ('.', '%', uppercase, '0db8') is undecided. */
static int
canonical_ipv6(const char *p, Py_ssize_t n, unsigned char *address)
{
    if (n < 2 || n > 39)
        return 0;
    unsigned int words[8];
    int count = 0, gap = -1; /* gap: where '::' stands, as an index into the written groups */
    Py_ssize_t i = 0;
    if (p[0] == ':') {
        if (p[1] != ':')
            return 0;
        gap = 0;
        i = 2;
    }
    while (i < n) {
        Py_ssize_t start = i;
        unsigned int value = 0;
        while (i < n && i - start < 4) {
            unsigned int digit;
            if (p[i] >= '0' && p[i] <= '9')
                digit = (unsigned int)(p[i] - '0');
            else if (p[i] >= 'a' && p[i] <= 'f')
                digit = (unsigned int)(p[i] - 'a' + 10);
            else
                break;
            value = value << 4 | digit;
            i++;
        }
        if (i == start || (i - start > 1 && p[start] == '0') || count == 8)
            return 0;
        words[count++] = value;
        if (i == n)
            break;
        if (p[i] != ':' || ++i == n)
            return 0; /* not a separator, or the text ends with one ':' */
        if (p[i] == ':') {
            if (gap >= 0)
                return 0;
            gap = count;
            i++;
        }
    }
    if (gap < 0 ? count != 8 : count > 7)
        return 0;
    int omitted = 8 - count, best_base, best_length;
    unsigned int expanded[8];
    for (int k = 0, w = 0; k < 8; k++) {
        expanded[k] = (gap >= 0 && k >= gap && k < gap + omitted) ? 0 : words[w++];
        address[2 * k] = (unsigned char)(expanded[k] >> 8);
        address[2 * k + 1] = (unsigned char)expanded[k];
    }
    if (!ipv6_zero_run(expanded, &best_base, &best_length))
        return 0;
    if (gap < 0)
        return best_base < 0;
    return best_base == gap && best_length == omitted;
}

#define CANONICAL_IPV4 2
#define CANONICAL_IPV6 3

/* CANONICAL_IPV4 or CANONICAL_IPV6 with the address's bytes (4 or 16), or 0 = undecided. */
static int
canonical_address(const char *p, Py_ssize_t n, unsigned char *address)
{
    if (canonical_ipv4(p, n, address))
        return CANONICAL_IPV4;
    return canonical_ipv6(p, n, address) ? CANONICAL_IPV6 : 0;
}

/* CANONICAL_IPV4, CANONICAL_IPV6, or 0 = undecided. */
static int
canonical_ip_chars(const char *p, Py_ssize_t n)
{
    unsigned char address[16];
    return canonical_address(p, n, address);
}

PyDoc_STRVAR(canonical_ip_doc,
"canonical_ip(text, /)\n\nTrue if the C check alone finds ``text`` (an ASCII str) a canonical IP address;\n"
"False means undecided (the loop then asks fields.parse_client_ip). For the tests.");

static PyObject *
canonical_ip(PyObject *module, PyObject *text)
{
    if (!PyUnicode_Check(text)) {
        PyErr_SetString(PyExc_TypeError, "canonical_ip() takes a str");
        return NULL;
    }
    if (!PyUnicode_IS_ASCII(text))
        Py_RETURN_FALSE;
    return PyBool_FromLong(canonical_ip_chars((const char *)PyUnicode_1BYTE_DATA(text), PyUnicode_GET_LENGTH(text)));
}

PyDoc_STRVAR(address_texts_doc,
"address_texts(addresses, size, /)\n\nThe texts of packed addresses, as a list: ``addresses`` holds IPv4 (``size`` 4)\n"
"or IPv6 (``size`` 16) addresses in network order one after another. An IPv4 text is the dotted quad; an\n"
"IPv6 text is inet_ntop's, but None where inet_ntop would embed an IPv4 form, which Python's canonical\n"
"text may write otherwise): the caller decides those (packed_ips.v6_text).");

/* Why C: in a merge past the exact bound every client's text is made to feed the sketches, ~0.3-0.6 us a
 * text through Python calls (f-string, socket.inet_ntop), serial in the parent while the workers idle. */
static PyObject *
address_texts(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    (void)module;
    if (nargs != 2) {
        PyErr_SetString(PyExc_TypeError, "address_texts() takes (addresses, size)");
        return NULL;
    }
    Py_ssize_t size = PyLong_AsSsize_t(args[1]);
    if (size == -1 && PyErr_Occurred())
        return NULL;
    if (size != 4 && size != 16) {
        PyErr_SetString(PyExc_ValueError, "size must be 4 or 16");
        return NULL;
    }
    Py_buffer view;
    if (PyObject_GetBuffer(args[0], &view, PyBUF_SIMPLE) < 0)
        return NULL;
    PyObject *texts = NULL;
    if (view.len % size) {
        PyErr_SetString(PyExc_ValueError, "addresses is not a whole number of addresses");
        goto done;
    }
    Py_ssize_t count = view.len / size;
    if ((texts = PyList_New(count)) == NULL)
        goto done;
    const unsigned char *address = view.buf;
    for (Py_ssize_t i = 0; i < count; i++, address += size) {
        char text[40]; /* the longest IPv6 text ipv6_text writes: 39 characters */
        PyObject *item;
        if (size == 4) {
            char *out = text;
            for (int k = 0; k < 4; k++) {
                unsigned int octet = address[k];
                if (octet >= 100)
                    *out++ = (char)('0' + octet / 100);
                if (octet >= 10)
                    *out++ = (char)('0' + octet / 10 % 10);
                *out++ = (char)('0' + octet % 10);
                *out++ = '.';
            }
            item = PyUnicode_FromStringAndSize(text, out - text - 1);
        } else {
            size_t length = ipv6_text(address, text);
            item = length ? PyUnicode_FromStringAndSize(text, (Py_ssize_t)length) : Py_NewRef(Py_None);
        }
        if (item == NULL) {
            Py_CLEAR(texts);
            goto done;
        }
        PyList_SET_ITEM(texts, i, item);
    }
done:
    PyBuffer_Release(&view);
    return texts;
}

/* ------------------------------------------------------------------ pending counts */

/* Route 1 counts into tables of its own, in C, and folds them into the aggregate's dictionaries
 * when Python asks (Counts.flush): a count is then an increment, not two dictionary probes. The
 * texts it reads (IPs, methods, paths, user agents, sources) are kept once each, as str objects
 * with a small id, so a repeated value costs a hash of its characters and no allocation. */

/* 64 bytes, one cache line: a lookup of a text of up to INLINE_MAX characters reads nothing else. */
#define INLINE_MAX 19
typedef struct {
    unsigned long long hash;
    PyObject *text; /* owned; NULL = empty slot */
    unsigned int length, id;
    unsigned int ip_requests, ip_4xx, ip_5xx, paths, agents;
    unsigned char ip_valid; /* a canonical IP address: 1 = IpCounter said so, else CANONICAL_IPV4/IPV6 (C) */
    char inline_text[INLINE_MAX];
} TextSlot;

typedef struct {
    TextSlot *slots;   /* aligned to a cache line */
    void *allocation;  /* what to free */
    size_t capacity, size; /* capacity: a power of two */
    PyObject **by_id;      /* id -> text (borrowed from the slots); id 0 = None */
    size_t by_id_capacity;
} TextTable;

typedef struct {
    unsigned char *data;
    size_t size, capacity;
} ByteBuffer;

/* Per-client counts keyed by the address itself (packed_ips): an entry is exactly a take_ips() record, the
 * address in network order (4 or 16 bytes) then requests, 4xx and 5xx as native uint32; requests 0 marks an
 * empty slot. Open addressing, at most half full.
 *
 * Why: at hundreds of thousands of distinct clients a part, keeping each new client as a str in the text
 * table (an allocation, a 64-byte slot, the table's growth, a flush that packs it) was most of what a new
 * client cost; an entry here is 16 or 28 bytes and no Python object. */
typedef struct {
    unsigned char *entries;
    size_t entry_size, address_size; /* 16 and 4 (IPv4), 28 and 16 (IPv6) */
    size_t capacity, size;           /* capacity: a power of two, or 0 before the first address */
    size_t limit;                    /* past this many addresses: into the records, then afresh (bounded memory) */
    unsigned long long lines;        /* counted since the records last took the entries: bounds the uint32 */
} AddressTable;

/* uint64 key -> count, open addressing. */
typedef struct {
    unsigned long long *keys, *counts;
    size_t capacity, size;
} CountTable;

typedef struct {
    PyObject_HEAD
    TextTable texts;
    CountTable minutes;   /* minute * 1000 + status (as uint64 bits of the int64) */
    CountTable kinds;     /* status | method id << 10 | source id << 37 */
    CountTable latencies; /* the bits of a double */
    unsigned long long none_paths, none_agents;
    unsigned long long since_flush; /* lines counted: the 32-bit counts cannot wrap before a flush */
    size_t text_limit; /* past this many texts: flush, then start the table afresh (bounded memory) */
    IsoMemo memo; /* the aggregate's timestamp caches, by characters (its own for as long as it lives) */
    int pending; /* anything to flush */
    /* packed_ips: the per-client counts of addresses the C check finds canonical are not added to the
     * dictionaries but counted in the address tables, which take_ips() (or a full table) appends to the
     * records (address in network order, then requests, 4xx and 5xx as native uint32). */
    int packed_ips;
    ByteBuffer v4_records, v6_records;
    AddressTable v4_addresses, v6_addresses; /* packed_ips: the canonical addresses' counts until take_ips() */
} CountsObject;

#define V4_RECORD 16 /* 4 address bytes + 3 x uint32 */
#define V6_RECORD 28 /* 16 address bytes + 3 x uint32 */

#define TEXT_MAX 512
#define KIND_ID_LIMIT (1u << 27)

static unsigned long long
mix64(unsigned long long x)
{
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdULL;
    x ^= x >> 33;
    x *= 0xc4ceb9fe1a85ec53ULL;
    return x ^ (x >> 33);
}

static int
count_table_init(CountTable *table, size_t capacity)
{
    table->keys = PyMem_Calloc(capacity, sizeof(unsigned long long));
    table->counts = PyMem_Calloc(capacity, sizeof(unsigned long long));
    table->capacity = capacity;
    table->size = 0;
    if (table->keys == NULL || table->counts == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    return 0;
}

static void
count_table_free(CountTable *table)
{
    PyMem_Free(table->keys);
    PyMem_Free(table->counts);
    table->keys = table->counts = NULL;
}

/* count 0 marks an empty slot: every stored key has a count of at least 1. */
static int
count_table_add(CountTable *table, unsigned long long key, unsigned long long n)
{
    if ((table->size + 1) * 2 > table->capacity) {
        CountTable bigger;
        if (count_table_init(&bigger, table->capacity * 2) < 0) {
            count_table_free(&bigger);
            return -1;
        }
        for (size_t i = 0; i < table->capacity; i++)
            if (table->counts[i] != 0)
                count_table_add(&bigger, table->keys[i], table->counts[i]);
        count_table_free(table);
        *table = bigger;
    }
    size_t mask = table->capacity - 1, i = mix64(key) & mask;
    while (table->counts[i] != 0) {
        if (table->keys[i] == key) {
            table->counts[i] += n;
            return 0;
        }
        i = (i + 1) & mask;
    }
    table->keys[i] = key;
    table->counts[i] = n;
    table->size++;
    return 0;
}

static void
count_table_clear(CountTable *table)
{
    memset(table->counts, 0, table->capacity * sizeof(unsigned long long));
    table->size = 0;
}

static TextSlot *
aligned_slots(size_t capacity, void **allocation)
{
    *allocation = PyMem_Calloc(capacity * sizeof(TextSlot) + 64, 1);
    if (*allocation == NULL)
        return NULL;
    return (TextSlot *)(((Py_uintptr_t)*allocation + 63) & ~(Py_uintptr_t)63);
}

static int
text_table_init(TextTable *table, size_t capacity)
{
    table->slots = aligned_slots(capacity, &table->allocation);
    table->capacity = capacity;
    table->size = 0;
    table->by_id = PyMem_Calloc(64, sizeof(PyObject *));
    table->by_id_capacity = 64;
    if (table->slots == NULL || table->by_id == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    return 0;
}

static int
text_table_grow(TextTable *table)
{
    size_t capacity = table->capacity * 2, mask = capacity - 1;
    void *allocation;
    TextSlot *slots = aligned_slots(capacity, &allocation);
    if (slots == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    for (size_t i = 0; i < table->capacity; i++) {
        if (table->slots[i].text == NULL)
            continue;
        size_t j = table->slots[i].hash & mask;
        while (slots[j].text != NULL)
            j = (j + 1) & mask;
        slots[j] = table->slots[i];
    }
    PyMem_Free(table->allocation);
    table->slots = slots;
    table->allocation = allocation;
    table->capacity = capacity;
    return 0;
}

/* Room for n more texts without moving any slot (text_slot never grows the table, so the slots a
 * line holds stay put). */
static int
text_table_reserve(TextTable *table, size_t n)
{
    if (table->slots == NULL && text_table_init(table, 1024) < 0) /* after a failed fresh start */
        return -1;
    while ((table->size + n) * 2 > table->capacity)
        if (text_table_grow(table) < 0)
            return -1;
    return 0;
}

/* The slot of a text (ASCII characters), added if new (after text_table_reserve); NULL with an
 * error set on failure. */
static TextSlot *
text_slot(TextTable *table, const char *chars, Py_ssize_t length, unsigned long long hash)
{
    size_t mask = table->capacity - 1, i = hash & mask;
    for (;;) {
        TextSlot *slot = &table->slots[i];
        if (slot->text == NULL)
            break;
        if (slot->hash == hash && slot->length == (unsigned int)length
            && memcmp(length <= INLINE_MAX ? slot->inline_text : (const char *)PyUnicode_1BYTE_DATA(slot->text),
                      chars, (size_t)length) == 0)
            return slot;
        i = (i + 1) & mask;
    }
    size_t id = table->size + 1;
    if (id >= table->by_id_capacity) {
        PyObject **by_id = PyMem_Realloc(table->by_id, table->by_id_capacity * 2 * sizeof(PyObject *));
        if (by_id == NULL) {
            PyErr_NoMemory();
            return NULL;
        }
        table->by_id = by_id;
        table->by_id_capacity *= 2;
    }
    PyObject *text = PyUnicode_FromStringAndSize(chars, length); /* ASCII: a compact 1-byte str */
    if (text == NULL)
        return NULL;
    TextSlot *slot = &table->slots[i];
    memset(slot, 0, sizeof(TextSlot));
    slot->hash = hash;
    slot->text = text;
    slot->length = (unsigned int)length;
    if (length <= INLINE_MAX)
        memcpy(slot->inline_text, chars, (size_t)length);
    slot->id = (unsigned int)(id < UINT_MAX ? id : UINT_MAX);
    table->by_id[id] = text;
    table->size++;
    return slot;
}

static inline void
prefetch_text_slot(TextTable *table, unsigned long long hash)
{
#if defined(__GNUC__) || defined(__clang__)
    __builtin_prefetch(&table->slots[hash & (table->capacity - 1)]);
#endif
}

static void
text_table_free(TextTable *table)
{
    if (table->slots != NULL)
        for (size_t i = 0; i < table->capacity; i++)
            Py_XDECREF(table->slots[i].text);
    PyMem_Free(table->allocation);
    PyMem_Free(table->by_id);
    memset(table, 0, sizeof(TextTable));
}

static int
byte_buffer_append(ByteBuffer *buffer, const void *data, size_t size)
{
    if (buffer->size + size > buffer->capacity) {
        size_t capacity = buffer->capacity ? buffer->capacity * 2 : 1 << 16;
        while (capacity < buffer->size + size)
            capacity *= 2;
        unsigned char *bigger = PyMem_Realloc(buffer->data, capacity);
        if (bigger == NULL) {
            PyErr_NoMemory();
            return -1;
        }
        buffer->data = bigger;
        buffer->capacity = capacity;
    }
    memcpy(buffer->data + buffer->size, data, size);
    buffer->size += size;
    return 0;
}

static void
address_table_init(AddressTable *table, size_t address_size, size_t limit)
{
    memset(table, 0, sizeof *table);
    table->address_size = address_size;
    table->entry_size = address_size + 3 * sizeof(unsigned int);
    table->limit = limit;
}

static void
address_table_free(AddressTable *table)
{
    PyMem_Free(table->entries);
    table->entries = NULL;
    table->capacity = table->size = 0;
    table->lines = 0;
}

static inline unsigned long long
address_hash(const unsigned char *address, size_t size)
{
    unsigned long long high = 0, low;
    if (size == 4) {
        unsigned int word;
        memcpy(&word, address, 4);
        return mix64(word);
    }
    memcpy(&high, address, 8);
    memcpy(&low, address + 8, 8);
    return mix64(high ^ mix64(low));
}

static inline void
prefetch_address(const AddressTable *table, unsigned long long hash)
{
#if defined(__GNUC__) || defined(__clang__)
    if (table->capacity)
        __builtin_prefetch(table->entries + (hash & (table->capacity - 1)) * table->entry_size);
#endif
}

/* The table's entries appended to the records (take_ips' form), then the table empty. */
static int
address_table_drain(AddressTable *table, ByteBuffer *records)
{
    for (size_t i = 0; i < table->capacity && table->size; i++) {
        const unsigned char *entry = table->entries + i * table->entry_size;
        unsigned int requests;
        memcpy(&requests, entry + table->address_size, sizeof requests);
        if (requests && byte_buffer_append(records, entry, table->entry_size) < 0)
            return -1;
    }
    if (table->entries != NULL)
        memset(table->entries, 0, table->capacity * table->entry_size);
    table->size = 0;
    table->lines = 0;
    return 0;
}

static int
address_table_resize(AddressTable *table, size_t capacity)
{
    unsigned char *entries = PyMem_Calloc(capacity, table->entry_size);
    if (entries == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    size_t mask = capacity - 1;
    for (size_t i = 0; i < table->capacity; i++) {
        const unsigned char *entry = table->entries + i * table->entry_size;
        unsigned int requests;
        memcpy(&requests, entry + table->address_size, sizeof requests);
        if (!requests)
            continue;
        size_t j = address_hash(entry, table->address_size) & mask;
        for (;;) {
            unsigned char *slot = entries + j * table->entry_size;
            memcpy(&requests, slot + table->address_size, sizeof requests);
            if (!requests) {
                memcpy(slot, entry, table->entry_size);
                break;
            }
            j = (j + 1) & mask;
        }
    }
    PyMem_Free(table->entries);
    table->entries = entries;
    table->capacity = capacity;
    return 0;
}

/* Count one request of an address (its `size` = 4 or 16 bytes, its hash) with its status. Inlined with
 * `size` a constant (address_table_count), so the compares and copies are a load or two, not calls. */
static inline int
address_table_count_sized(AddressTable *table, ByteBuffer *records, const unsigned char *address,
                          unsigned long long hash, long status, const size_t size)
{
    if (table->size >= table->limit || table->lines >= UINT_MAX) {
        /* a new address could pass the limit, or a count could pass 32 bits: the records take them */
        if (address_table_drain(table, records) < 0)
            return -1;
    }
    if ((table->size + 1) * 2 > table->capacity
        && address_table_resize(table, table->capacity ? table->capacity * 2 : 1024) < 0)
        return -1;
    const size_t entry_size = size + 3 * sizeof(unsigned int);
    size_t mask = table->capacity - 1, i = hash & mask;
    unsigned int counts[3];
    unsigned char *entry;
    for (;;) {
        entry = table->entries + i * entry_size;
        memcpy(counts, entry + size, sizeof counts);
        if (!counts[0]) {
            memcpy(entry, address, size);
            table->size++;
            break;
        }
        if (memcmp(entry, address, size) == 0)
            break;
        i = (i + 1) & mask;
    }
    counts[0]++;
    if (status >= 500)
        counts[2]++;
    else if (status >= 400)
        counts[1]++;
    memcpy(entry + size, counts, sizeof counts);
    table->lines++;
    return 0;
}

static int
address_table_count(AddressTable *table, ByteBuffer *records, const unsigned char *address,
                    unsigned long long hash, long status)
{
    if (table->address_size == 4)
        return address_table_count_sized(table, records, address, hash, status, 4);
    return address_table_count_sized(table, records, address, hash, status, 16);
}

static void
Counts_dealloc(CountsObject *self)
{
    text_table_free(&self->texts);
    count_table_free(&self->minutes);
    count_table_free(&self->kinds);
    count_table_free(&self->latencies);
    PyMem_Free(self->v4_records.data);
    PyMem_Free(self->v6_records.data);
    address_table_free(&self->v4_addresses);
    address_table_free(&self->v6_addresses);
    Py_TYPE(self)->tp_free((PyObject *)self);
}

#define DEFAULT_TEXT_LIMIT (1 << 19)
/* 2**20 addresses a table: at most 32 MB (IPv4) or 56 MB (IPv6) of entries at the half-full bound */
#define DEFAULT_ADDRESS_LIMIT (1 << 20)

static PyObject *
Counts_new(PyTypeObject *type, PyObject *args, PyObject *kwargs)
{
    static char *keywords[] = {"text_limit", "packed_ips", "address_limit", NULL};
    Py_ssize_t text_limit = DEFAULT_TEXT_LIMIT, address_limit = DEFAULT_ADDRESS_LIMIT;
    int packed_ips = 0;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "|$npn:Counts", keywords, &text_limit, &packed_ips,
                                     &address_limit))
        return NULL;
    if (text_limit < 1) {
        PyErr_SetString(PyExc_ValueError, "text_limit must be at least 1");
        return NULL;
    }
    if (address_limit < 1) {
        PyErr_SetString(PyExc_ValueError, "address_limit must be at least 1");
        return NULL;
    }
    CountsObject *self = (CountsObject *)type->tp_alloc(type, 0);
    if (self == NULL)
        return NULL;
    self->text_limit = (size_t)text_limit;
    self->packed_ips = packed_ips;
    address_table_init(&self->v4_addresses, 4, (size_t)address_limit);
    address_table_init(&self->v6_addresses, 16, (size_t)address_limit);
    iso_memo_init(&self->memo);
    if (text_table_init(&self->texts, 1024) < 0 || count_table_init(&self->minutes, 4096) < 0
        || count_table_init(&self->kinds, 256) < 0 || count_table_init(&self->latencies, 4096) < 0) {
        Py_DECREF(self);
        return NULL;
    }
    return (PyObject *)self;
}

/* The Python key of a count table's key: the minute-status int, the (status, method, source)
 * tuple, the latency float. */
static PyObject *
minute_key_object(CountsObject *self, unsigned long long key)
{
    return PyLong_FromLongLong((long long)key);
}

static PyObject *
kind_key_object(CountsObject *self, unsigned long long key)
{
    size_t method_id = (key >> 10) & (KIND_ID_LIMIT - 1), origin_id = key >> 37;
    return PyTuple_Pack(3, status_objects[key & 1023], method_id ? self->texts.by_id[method_id] : Py_None,
                        origin_id ? self->texts.by_id[origin_id] : Py_None);
}

static PyObject *
latency_key_object(CountsObject *self, unsigned long long key)
{
    double value;
    memcpy(&value, &key, sizeof value);
    return PyFloat_FromDouble(value);
}

/* dict[key_object(key)] += count for every key of the table, then empty it. */
static int
flush_table(CountsObject *self, CountTable *table, PyObject *dict,
            PyObject *(*key_object)(CountsObject *, unsigned long long))
{
    for (size_t i = 0; i < table->capacity; i++) {
        if (table->counts[i] == 0)
            continue;
        PyObject *key = key_object(self, table->keys[i]);
        if (key == NULL || add_to(dict, key, table->counts[i]) < 0) {
            Py_XDECREF(key);
            return -1;
        }
        Py_DECREF(key);
    }
    count_table_clear(table);
    return 0;
}

static int
flush_counts(CountsObject *self, Counters *c)
{
    if (!self->pending)
        return 0;
    TextTable *texts = &self->texts;
    /* Into a dictionary empty before this flush (a part's first, which at many distinct clients holds
     * nearly all of them) each text goes once, as the table holds each once: set it without first
     * looking it up, half the dictionary probes. */
    PyObject *dicts[5] = {c->ips, c->ip_4xx, c->ip_5xx, c->paths, c->agents};
    int fresh[5];
    for (int k = 0; k < 5; k++)
        fresh[k] = PyDict_Size(dicts[k]) == 0;
    for (size_t i = 0; i < texts->capacity; i++) {
        TextSlot *slot = &texts->slots[i];
        if (slot->text == NULL)
            continue;
        const unsigned int counts[5] = {slot->ip_requests, slot->ip_4xx, slot->ip_5xx, slot->paths, slot->agents};
        for (int k = 0; k < 5; k++) {
            if (counts[k] == 0)
                continue;
            if (!fresh[k]) {
                if (add_to(dicts[k], slot->text, counts[k]) < 0)
                    return -1;
                continue;
            }
            PyObject *value = PyLong_FromUnsignedLong(counts[k]);
            int rc = value == NULL ? -1 : PyDict_SetItem(dicts[k], slot->text, value);
            Py_XDECREF(value);
            if (rc < 0)
                return -1;
        }
        slot->ip_requests = slot->ip_4xx = slot->ip_5xx = slot->paths = slot->agents = 0;
    }
    if ((self->none_paths && add_to(c->paths, Py_None, self->none_paths) < 0)
        || (self->none_agents && add_to(c->agents, Py_None, self->none_agents) < 0))
        return -1;
    self->none_paths = self->none_agents = 0;
    self->since_flush = 0;

    if (flush_table(self, &self->minutes, c->minute_status, minute_key_object) < 0
        || flush_table(self, &self->kinds, c->kinds, kind_key_object) < 0
        || flush_table(self, &self->latencies, c->latency, latency_key_object) < 0)
        return -1;
    self->pending = 0;
    return 0;
}

static int get_counters(PyObject *aggregate, Counters *c);
static void release_counters(Counters *c);

PyDoc_STRVAR(Counts_flush_doc,
"flush(aggregate)\n\nAdd the pending counts into the aggregate's dictionaries and zero them.");

static PyObject *
Counts_flush(CountsObject *self, PyObject *aggregate)
{
    Counters c;
    if (get_counters(aggregate, &c) < 0)
        return NULL;
    int rc = flush_counts(self, &c);
    release_counters(&c);
    if (rc < 0)
        return NULL;
    Py_RETURN_NONE;
}

PyDoc_STRVAR(Counts_take_ips_doc,
"take_ips()\n\nReturn and forget the packed client counts so far (a Counts made with packed_ips=True):\n"
"(IPv4 records, IPv6 records) as bytes, each record the address in network order (4 or 16 bytes) then\n"
"its requests, 4xx and 5xx as native uint32. An address may appear more than once (past address_limit\n"
"addresses, or 2**32 - 1 lines, the table's counts go to the records and it starts afresh).");

static PyObject *
take_buffer(ByteBuffer *buffer)
{
    PyObject *data = PyBytes_FromStringAndSize((const char *)buffer->data, (Py_ssize_t)buffer->size);
    PyMem_Free(buffer->data);
    memset(buffer, 0, sizeof *buffer);
    return data;
}

static PyObject *
Counts_take_ips(CountsObject *self, PyObject *Py_UNUSED(ignored))
{
    if (address_table_drain(&self->v4_addresses, &self->v4_records) < 0
        || address_table_drain(&self->v6_addresses, &self->v6_records) < 0)
        return NULL;
    address_table_free(&self->v4_addresses); /* a part's client tables are taken once, at its end */
    address_table_free(&self->v6_addresses);
    PyObject *v4 = take_buffer(&self->v4_records);
    PyObject *v6 = take_buffer(&self->v6_records);
    if (v4 == NULL || v6 == NULL) {
        Py_XDECREF(v4);
        Py_XDECREF(v6);
        return NULL;
    }
    return Py_BuildValue("(NN)", v4, v6);
}

static PyMethodDef Counts_methods[] = {
    {"flush", (PyCFunction)Counts_flush, METH_O, Counts_flush_doc},
    {"take_ips", (PyCFunction)Counts_take_ips, METH_NOARGS, Counts_take_ips_doc},
    {NULL, NULL, 0, NULL},
};

static PyTypeObject CountsType = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "logproc_analyzer._native_ingest.Counts",
    .tp_doc = PyDoc_STR("Counts of the C loop's first route not yet added to an aggregate (see flush)."),
    .tp_basicsize = sizeof(CountsObject),
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_new = Counts_new,
    .tp_dealloc = (destructor)Counts_dealloc,
    .tp_methods = Counts_methods,
};

/* ------------------------------------------------------------------ route 1: flat ASCII objects */

/* Most log lines are one JSON object of ASCII strings without escapes, numbers, true, false and null,
 * flat or (ECS) in nested objects, with the odd array beside. Such a line is valid JSON for orjson and
 * msgspec alike and means the same to both, so it is read here directly: no decoder call, no struct,
 * and text values that repeat (IPs, methods, paths, user agents) come from a small table of str
 * objects, whose cached hashes and identity make the dictionary updates cheap. Numbers written as
 * text (nginx) are read as decoding._TEXT_NUMBER_FIELDS reads them. Anything else (escapes,
 * non-ASCII, nesting past PATH_MAX_PARTS, an object or array where a field's value is, a mapped number
 * with an exponent or over 18 digits, a number as text in another form) is NOT_SCANNED and goes to
 * route 2. */
enum { NOT_SCANNED = 2 };
enum { F_TIMESTAMP, F_CLIENT_IP, F_STATUS, F_METHOD, F_PATH, F_USER_AGENT, F_SOURCE, F_BYTES, F_LATENCY,
       FIELD_COUNT };
typedef enum { T_ABSENT = 0, T_STRING, T_INT, T_FRACTION, T_EXPONENT, T_TRUE, T_FALSE, T_NULL } TokenKind;

typedef struct {
    TokenKind kind;
    const char *start;
    Py_ssize_t length;
} Token;

/* A dotted key ('source.ip', ECS's names) is read as decoding._dotted_getter reads it: the flat key
 * if present and not null, else the path through nested objects, part by part (str.split('.')). */
#define PATH_MAX_PARTS 8

typedef struct {
    const char *text;
    Py_ssize_t length;
} Piece;

typedef struct {
    const char *text[FIELD_COUNT];
    Py_ssize_t length[FIELD_COUNT];
    int parts[FIELD_COUNT]; /* the key's parts; 1: not dotted */
    Piece part[FIELD_COUNT][PATH_MAX_PARTS];
    int dotted;    /* some key has parts to follow through nested objects */
    int too_deep;  /* some key has more parts than PATH_MAX_PARTS: a line with objects goes to route 2 */
} MappedKeys;

static inline const char *
skip_ws(const char *p, const char *end)
{
    while (p < end && (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r'))
        p++;
    return p;
}

/* The end of a string's characters (at the closing quote), or NULL if they are not plain ASCII. */
static inline const char *
plain_string_end(const char *p, const char *end)
{
    /* Eight bytes at a time while none is a quote, a backslash, a control character or non-ASCII
     * (the classic "has a byte less than n" bit tricks, exact for n <= 128). */
    const unsigned long long ones = 0x0101010101010101ULL, highs = 0x8080808080808080ULL;
    while (end - p >= 8) {
        unsigned long long word;
        memcpy(&word, p, 8);
        unsigned long long quote = word ^ (ones * '"'), backslash = word ^ (ones * '\\');
        unsigned long long special = ((quote - ones) & ~quote) | ((backslash - ones) & ~backslash)
                                     | ((word - ones * 0x20) & ~word) | word;
        if (special & highs)
            break;
        p += 8;
    }
    while (p < end) {
        unsigned char ch = (unsigned char)*p;
        if (ch == '"')
            return p;
        if (ch < 0x20 || ch >= 0x80 || ch == '\\')
            return NULL;
        p++;
    }
    return NULL;
}

/* A plain value's token at p (a string without escapes, a number, true, false, null): the end of it,
 * or NULL if it is not one (an object or array is the caller's). */
static const char *
scan_scalar(const char *p, const char *end, Token *token)
{
    token->start = p;
    char ch = *p;
    if (ch == '"') {
        const char *value_end = plain_string_end(p + 1, end);
        if (value_end == NULL)
            return NULL;
        token->kind = T_STRING;
        token->start = p + 1;
        token->length = value_end - (p + 1);
        return value_end + 1;
    }
    if (ch == 't' && end - p >= 4 && memcmp(p, "true", 4) == 0) {
        token->kind = T_TRUE;
        return p + 4;
    }
    if (ch == 'f' && end - p >= 5 && memcmp(p, "false", 5) == 0) {
        token->kind = T_FALSE;
        return p + 5;
    }
    if (ch == 'n' && end - p >= 4 && memcmp(p, "null", 4) == 0) {
        token->kind = T_NULL;
        return p + 4;
    }
    if (!(ch == '-' || is_digit(ch)))
        return NULL;
    /* RFC 8259: -?(0|[1-9][0-9]*)(.[0-9]+)?([eE][+-]?[0-9]+)? */
    token->kind = T_INT;
    if (*p == '-')
        p++;
    if (p == end)
        return NULL;
    if (*p == '0')
        p++;
    else if (is_digit(*p))
        p = skip_digits(p, end);
    else
        return NULL;
    if (p < end && *p == '.') {
        p++;
        if (p == end || !is_digit(*p))
            return NULL;
        p = skip_digits(p, end);
        token->kind = T_FRACTION;
    }
    if (p < end && (*p == 'e' || *p == 'E')) {
        p++;
        if (p < end && (*p == '+' || *p == '-'))
            p++;
        if (p == end || !is_digit(*p))
            return NULL;
        p = skip_digits(p, end);
        token->kind = T_EXPONENT;
    }
    token->length = p - token->start;
    return p;
}

static inline int
same_text(const char *a, Py_ssize_t a_length, const char *b, Py_ssize_t b_length)
{
    return a_length == b_length && (a_length == 0 || (a[0] == b[0] && a[a_length - 1] == b[b_length - 1]
                                                      && memcmp(a, b, (size_t)a_length) == 0));
}

/* Whether field i's key is dotted and starts with the path's `depth` pieces. */
static int
path_leads_to(const MappedKeys *keys, int i, const Piece *path, int depth)
{
    if (keys->parts[i] < 2 || keys->parts[i] < depth)
        return 0;
    for (int d = 0; d < depth; d++)
        if (!same_text(keys->part[i][d].text, keys->part[i][d].length, path[d].text, path[d].length))
            return 0;
    return 1;
}

typedef struct {
    Token flat[FIELD_COUNT];   /* the top-level keys, dotted or not */
    Token nested[FIELD_COUNT]; /* the dotted keys' values through nested objects */
    Piece path[PATH_MAX_PARTS];
} Scan;

static const char *scan_object(const char *p, const char *end, const MappedKeys *keys, Scan *scan, int depth,
                               int matching);

/* After a member of an array or object at *p, whose closing character is `close`: 1 with *p at the next
 * member (past a comma and spaces), 0 with *p past `close`, or -1: not JSON. */
static inline int
after_member(const char **p, const char *end, char close)
{
    const char *q = skip_ws(*p, end);
    if (q == end)
        return -1;
    if (*q == ',') {
        *p = skip_ws(q + 1, end);
        return 1;
    }
    if (*q != close)
        return -1;
    *p = q + 1;
    return 0;
}

/* An array at p whose elements are plain values, objects or arrays, none of them read (no key path goes
 * through an array: _dotted_getter finds no dict there): the end of it, or NULL (route 2). */
static const char *
skip_array(const char *p, const char *end, const MappedKeys *keys, Scan *scan, int depth)
{
    if (depth >= PATH_MAX_PARTS)
        return NULL;
    p = skip_ws(p + 1, end); /* past '[' */
    if (p < end && *p == ']')
        return p + 1;
    for (;;) {
        if (p == end)
            return NULL;
        if (*p == '{')
            p = scan_object(p, end, keys, scan, depth + 1, 0);
        else if (*p == '[')
            p = skip_array(p, end, keys, scan, depth + 1);
        else {
            Token ignored;
            p = scan_scalar(p, end, &ignored);
        }
        if (p == NULL)
            return NULL;
        int next = after_member(&p, end, ']');
        if (next <= 0)
            return next == 0 ? p : NULL;
    }
}

/* An object of plain values, objects and arrays at p, `depth` pieces below the line's top (scan->path;
 * `matching` 0 inside an array, where no key is read): the end of it, or NULL (an escape, non-ASCII,
 * too deep, a mapped key holding an object or array: route 2). */
static const char *
scan_object(const char *p, const char *end, const MappedKeys *keys, Scan *scan, int depth, int matching)
{
    p = skip_ws(p + 1, end); /* past '{' */
    if (p < end && *p == '}')
        return p + 1;
    for (;;) {
        if (p == end || *p != '"')
            return NULL;
        const char *key = p + 1;
        const char *key_end = plain_string_end(key, end);
        if (key_end == NULL)
            return NULL;
        Py_ssize_t key_length = key_end - key;
        p = skip_ws(key_end + 1, end);
        if (p == end || *p != ':')
            return NULL;
        p = skip_ws(p + 1, end);
        if (p == end)
            return NULL;
        int flat_field = -1;
        if (depth == 0 && matching)
            for (int i = 0; i < FIELD_COUNT; i++)
                if (same_text(keys->text[i], keys->length[i], key, key_length)) {
                    flat_field = i;
                    break;
                }
        int on_path = 0;   /* some dotted key runs through this key */
        int leaf_field = -1; /* or ends at it */
        if (keys->dotted && matching && depth < PATH_MAX_PARTS) {
            scan->path[depth].text = key;
            scan->path[depth].length = key_length;
            for (int i = 0; i < FIELD_COUNT; i++)
                if (path_leads_to(keys, i, scan->path, depth + 1)) {
                    /* a key twice: the last one's value counts, as for both decoders, so what an
                     * earlier one held below this key is forgotten first */
                    scan->nested[i].kind = T_ABSENT;
                    on_path = 1;
                    if (keys->parts[i] == depth + 1) /* at least 2: a dotted key's last part */
                        leaf_field = i;
                }
        }
        if (*p == '{' || *p == '[') {
            if (flat_field >= 0 || leaf_field >= 0 || depth + 1 >= PATH_MAX_PARTS || keys->too_deep)
                return NULL;
            p = *p == '{' ? scan_object(p, end, keys, scan, depth + 1, on_path)
                          : skip_array(p, end, keys, scan, depth + 1);
            if (p == NULL)
                return NULL;
        }
        else {
            Token token;
            p = scan_scalar(p, end, &token);
            if (p == NULL)
                return NULL; /* not JSON */
            if (flat_field >= 0)
                scan->flat[flat_field] = token;
            if (leaf_field >= 0)
                scan->nested[leaf_field] = token; /* the keys are distinct (else no decoder, no C loop) */
        }
        int next = after_member(&p, end, '}');
        if (next <= 0)
            return next == 0 ? p : NULL;
    }
}

/* 1 and the mapped fields' tokens if the line is one object the scanner reads (plain values, objects,
 * arrays), else 0. */
static int
scan_line(const char *p, const char *end, const MappedKeys *keys, Token *fields)
{
    Scan scan;
    memset(&scan, 0, sizeof scan);
    p = skip_ws(p, end);
    if (p == end || *p != '{')
        return 0;
    p = scan_object(p, end, keys, &scan, 0, 1);
    if (p == NULL || skip_ws(p, end) != end)
        return 0;
    for (int i = 0; i < FIELD_COUNT; i++) {
        const Token *flat = &scan.flat[i];
        int dotted = keys->parts[i] >= 2;
        fields[i] = dotted && (flat->kind == T_ABSENT || flat->kind == T_NULL) ? scan.nested[i] : *flat;
    }
    return 1;
}

/* A mapped integer token (at most 18 digits, so it fits). */
static long long
token_int(const Token *token)
{
    const char *p = token->start, *end = p + token->length;
    int negative = *p == '-';
    long long value = 0;
    for (p += negative; p < end; p++)
        value = value * 10 + (*p - '0');
    return negative ? -value : value;
}

static int
token_fits(const Token *token)
{
    if (token->kind == T_INT)
        return token->length - (token->start[0] == '-') <= 18;
    if (token->kind == T_FRACTION)
        return token->length < 64;
    return token->kind != T_EXPONENT; /* exponents (overflow, underflow) are left to the decoders */
}

static int
all_digits(const char *p, Py_ssize_t length)
{
    return length > 0 && skip_digits(p, p + length) == p + length;
}

/* Numbers written as text (nginx escape=json: "status":"404", "body_bytes_sent":"0",
 * "request_time":"0.037") as the tokens decoding._TEXT_NUMBER_FIELDS makes of them: a status of three
 * digits and a size of digits are integers, a size of '-' is absent (null), a latency that is a plain
 * number's characters is a fraction (float(text), a float even without a point: the fraction token's
 * double is the same correctly rounded value). 0 for any other text: route 2 reads it. */
static int
text_numbers_as_tokens(Token *f)
{
    Token *status = &f[F_STATUS], *size = &f[F_BYTES], *latency = &f[F_LATENCY];
    if (status->kind == T_STRING) {
        if (status->length != 3 || !all_digits(status->start, 3))
            return 0;
        status->kind = T_INT;
    }
    if (size->kind == T_STRING) {
        if (size->length == 1 && size->start[0] == '-')
            size->kind = T_NULL;
        else if (all_digits(size->start, size->length))
            size->kind = T_INT;
        else
            return 0;
    }
    if (latency->kind == T_STRING) {
        /* the scanner's own number grammar on the text, an exponent left to route 2 as for a number */
        Token number;
        const char *text_end = latency->start + latency->length;
        if (latency->length == 0 || scan_scalar(latency->start, text_end, &number) != text_end
            || (number.kind != T_INT && number.kind != T_FRACTION))
            return 0;
        latency->kind = T_FRACTION;
    }
    return 1;
}

/* A fraction token as a double. Clinger's fast path: with at most 15 significant digits and 22
 * decimals, the digits and the power of ten are exact doubles and one division rounds correctly,
 * as msgspec and orjson do; anything longer goes to CPython's correctly rounded strtod. */
static int
fraction_value(const Token *token, double *out)
{
    static const double powers[] = {1e0,  1e1,  1e2,  1e3,  1e4,  1e5,  1e6,  1e7,  1e8,  1e9,  1e10, 1e11,
                                    1e12, 1e13, 1e14, 1e15, 1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22};
    const char *p = token->start, *end = p + token->length;
    int negative = *p == '-', after_point = 0, digits = 0, decimals = 0;
    unsigned long long mantissa = 0;
    for (p += negative; p < end; p++) {
        if (*p == '.') {
            after_point = 1;
            continue;
        }
        decimals += after_point;
        /* Checked before leading zeros are skipped: 0.000...0 with 23 decimals must not index
         * powers[] past its end (it did, and read garbage: found by the property test). */
        if (decimals > 22)
            break;
        if (mantissa == 0 && *p == '0')
            continue;
        if (++digits > 15)
            break;
        mantissa = mantissa * 10 + (unsigned long long)(*p - '0');
    }
    if (p == end) {
        double value = (double)mantissa / powers[decimals];
        *out = negative ? -value : value;
        return 0;
    }
    char buffer[64];
    memcpy(buffer, token->start, (size_t)token->length);
    buffer[token->length] = '\0';
    *out = PyOS_string_to_double(buffer, NULL, NULL);
    return *out == -1.0 && PyErr_Occurred() ? -1 : 0;
}

/* The slot of a text token, or NULL (no error) when it is too long to keep: the caller then makes
 * a str of it and updates the dictionary itself. */
static TextSlot *
token_slot(CountsObject *counts, const Token *token, unsigned long long hash, int *failed)
{
    if (token->length > TEXT_MAX)
        return NULL;
    TextSlot *slot = text_slot(&counts->texts, token->start, token->length, hash);
    if (slot == NULL)
        *failed = 1;
    return slot;
}

/* A text too long to keep, counted straight into its dictionary. */
static int
bump_long_text(PyObject *dict, const Token *token)
{
    PyObject *text = PyUnicode_FromStringAndSize(token->start, token->length);
    if (text == NULL)
        return -1;
    int rc = bump(dict, text);
    Py_DECREF(text);
    return rc;
}

/* An optional text field as a str (new reference) or None. */
static PyObject *
optional_text(const Token *token)
{
    if (token->kind == T_STRING)
        return PyUnicode_FromStringAndSize(token->start, token->length);
    return Py_NewRef(Py_None);
}

/* One flat line: COUNTED, SLOW, NOT_SCANNED or FAILED. */
/* The analysis window in epoch minutes, [low, high); a record outside goes to the slow path, which
 * notes its exact time (Aggregate._note_time). Without a window nothing is checked. */
typedef struct {
    int active;
    long long low, high;
} MinuteRange;

static inline int
outside_range(const MinuteRange *range, long long minute)
{
    return range->active && (minute < range->low || minute >= range->high);
}

static int
flat_line(Counters *c, CountsObject *counts, IsoMemo *memo, const MappedKeys *keys, const char *data,
          Py_ssize_t length, PyObject *minute_of, unsigned long long ms_threshold, ByteSums *sums,
          const MinuteRange *range)
{
    Token f[FIELD_COUNT];
    if (!scan_line(data, data + length, keys, f) || !text_numbers_as_tokens(f))
        return NOT_SCANNED;
    for (int i = 0; i < FIELD_COUNT; i++)
        if (!token_fits(&f[i]))
            return NOT_SCANNED;
    if (counts->texts.size >= counts->text_limit) {
        /* Many distinct texts (paths with ids in them, say): add the counts in and start afresh, so
         * this table never holds more than text_limit texts beside the dictionaries' own keys. */
        if (flush_counts(counts, c) < 0)
            return FAILED;
        text_table_free(&counts->texts);
    }
    if (text_table_reserve(&counts->texts, 5) < 0)
        return FAILED;
    /* Hash the texts now and ask for the IP's and the path's slots, which are rarely in the cache:
     * the memory reads overlap the timestamp work below. */
    unsigned long long hashes[FIELD_COUNT] = {0};
    /* packed_ips: a canonical address is counted by its bytes (AddressTable), never as a text */
    AddressTable *address_table = NULL;
    unsigned char address[16];
    if (counts->packed_ips && f[F_CLIENT_IP].kind == T_STRING) {
        int shape = canonical_address(f[F_CLIENT_IP].start, f[F_CLIENT_IP].length, address);
        if (shape) {
            address_table = shape == CANONICAL_IPV4 ? &counts->v4_addresses : &counts->v6_addresses;
            hashes[F_CLIENT_IP] = address_hash(address, address_table->address_size);
            prefetch_address(address_table, hashes[F_CLIENT_IP]);
        }
    }
    for (int i = address_table ? F_CLIENT_IP + 1 : F_CLIENT_IP; i <= F_SOURCE; i++)
        if (f[i].kind == T_STRING && f[i].length <= TEXT_MAX)
            hashes[i] = hash_chars(f[i].start, f[i].length);
    if (!address_table)
        prefetch_text_slot(&counts->texts, hashes[F_CLIENT_IP]);
    prefetch_text_slot(&counts->texts, hashes[F_PATH]);

    /* The checks of the Python loop, in its order, on the tokens: what msgspec would make of them
     * is plain (string -> str, integer -> int, fraction -> float, true/false -> bool, null -> None). */
    long long minute_value = 0;
    PyObject *minute = NULL;
    const Token *ts = &f[F_TIMESTAMP];
    if (ts->kind == T_STRING) {
        int rc = cached_iso_minute(c, memo, ts->start, ts->length, &minute_value);
        if (rc < 0)
            return to_slow();
        if (rc == 0) {
            PyObject *text = PyUnicode_FromStringAndSize(ts->start, ts->length);
            if (text == NULL)
                return FAILED;
            minute = PyObject_CallOneArg(minute_of, text); /* validates and learns the pieces */
            Py_DECREF(text);
            if (minute == NULL)
                return to_slow();
        }
    }
    else if (ts->kind == T_INT) {
        long long stamp = token_int(ts);
        if (stamp < 0)
            return SLOW;
        minute_value = (unsigned long long)stamp >= ms_threshold ? stamp / 60000 : stamp / 60;
    }
    else
        return SLOW;

    int result = SLOW;
    long long status_token = f[F_STATUS].kind == T_INT ? token_int(&f[F_STATUS]) : 0;
    long status = status_token >= 100 && status_token <= 599 ? (long)status_token : 0;
    const TokenKind latency_kind = f[F_LATENCY].kind, size_kind = f[F_BYTES].kind;
    long long size_value = size_kind == T_INT ? token_int(&f[F_BYTES]) : 0;
    if (status == 0
        || !(latency_kind == T_ABSENT || latency_kind == T_NULL || latency_kind == T_FRACTION
             || latency_kind == T_INT)
        || !(size_kind == T_ABSENT || size_kind == T_NULL || (size_kind == T_INT && size_value >= 0))
        || f[F_CLIENT_IP].kind != T_STRING)
        goto done;
    for (int i = F_METHOD; i <= F_SOURCE; i++) {
        TokenKind kind = f[i].kind;
        if (!(kind == T_ABSENT || kind == T_NULL || kind == T_STRING))
            goto done;
    }
    if (minute != NULL) {
        int overflow = 0;
        minute_value = PyLong_AsLongLongAndOverflow(minute, &overflow);
        if (overflow != 0 || (minute_value == -1 && PyErr_Occurred())
            || minute_value <= -9000000000000000LL || minute_value >= 9000000000000000LL) {
            /* an int the tables cannot hold (not a real minute): route 2 counts it in Python ints */
            PyErr_Clear();
            result = NOT_SCANNED;
            goto done;
        }
    }
    if (outside_range(range, minute_value))
        goto done; /* result is SLOW */

    /* The IP last of the checks, as it is the first count. An unseen one is validated by
     * IpCounter.__missing__ (through the mapping protocol), whose exception means the slow path. */
    result = FAILED;
    int failed = 0;
    if (address_table) {
        ByteBuffer *records = address_table == &counts->v4_addresses ? &counts->v4_records : &counts->v6_records;
        if (address_table_count(address_table, records, address, hashes[F_CLIENT_IP], status) < 0)
            goto done;
        counts->pending = 1;
        goto client_counted;
    }
    TextSlot *ip_slot = token_slot(counts, &f[F_CLIENT_IP], hashes[F_CLIENT_IP], &failed);
    if (ip_slot == NULL) {
        /* too long to keep (so not an IP address, but __missing__ decides), or an error */
        if (failed)
            goto done;
        PyObject *ip = PyUnicode_FromStringAndSize(f[F_CLIENT_IP].start, f[F_CLIENT_IP].length);
        if (ip == NULL)
            goto done;
        result = count_ip(c, ip);
        Py_DECREF(ip);
        if (result != COUNTED)
            goto done;
        PyErr_SetString(PyExc_AssertionError, "IpCounter accepted a text longer than any IP address");
        result = FAILED;
        goto done;
    }
    if (!ip_slot->ip_valid)  /* what IpCounter.__missing__ would have said, without the call */
        ip_slot->ip_valid = (unsigned char)canonical_ip_chars(f[F_CLIENT_IP].start, f[F_CLIENT_IP].length);
    if (!ip_slot->ip_valid) {
        PyObject *seen = PyObject_GetItem(c->ips, ip_slot->text);
        if (seen == NULL) {
            result = to_slow();
            goto done;
        }
        Py_DECREF(seen);
        ip_slot->ip_valid = 1;
    }
    counts->pending = 1;
    ip_slot->ip_requests++;
    if (status >= 500)
        ip_slot->ip_5xx++;
    else if (status >= 400)
        ip_slot->ip_4xx++;

client_counted:
    if (count_table_add(&counts->minutes, (unsigned long long)(minute_value * 1000 + status), 1) < 0)
        goto done;

    unsigned long long ids[2] = {0, 0}; /* method, source; 0 = None */
    int kind_in_table = 1;
    const int kind_fields[2] = {F_METHOD, F_SOURCE};
    for (int k = 0; k < 2; k++) {
        if (f[kind_fields[k]].kind != T_STRING)
            continue;
        TextSlot *slot = token_slot(counts, &f[kind_fields[k]], hashes[kind_fields[k]], &failed);
        if (failed)
            goto done;
        if (slot == NULL || slot->id >= KIND_ID_LIMIT)
            kind_in_table = 0;
        else
            ids[k] = slot->id;
    }
    if (kind_in_table) {
        if (count_table_add(&counts->kinds, (unsigned long long)status | ids[0] << 10 | ids[1] << 37, 1) < 0)
            goto done;
    }
    else {
        PyObject *method = optional_text(&f[F_METHOD]), *origin = optional_text(&f[F_SOURCE]);
        PyObject *kind = method && origin ? PyTuple_Pack(3, status_objects[status], method, origin) : NULL;
        int rc = kind == NULL ? -1 : bump(c->kinds, kind);
        Py_XDECREF(method);
        Py_XDECREF(origin);
        Py_XDECREF(kind);
        if (rc < 0)
            goto done;
    }

    const int text_fields[2] = {F_PATH, F_USER_AGENT};
    for (int k = 0; k < 2; k++) {
        const Token *token = &f[text_fields[k]];
        unsigned long long *none_count = k == 0 ? &counts->none_paths : &counts->none_agents;
        if (token->kind != T_STRING) {
            (*none_count)++;
            continue;
        }
        TextSlot *slot = token_slot(counts, token, hashes[text_fields[k]], &failed);
        if (failed)
            goto done;
        if (slot == NULL) {
            if (bump_long_text(k == 0 ? c->paths : c->agents, token) < 0)
                goto done;
        }
        else if (k == 0)
            slot->paths++;
        else
            slot->agents++;
    }

    if (latency_kind == T_FRACTION) {
        double value;
        unsigned long long bits;
        if (fraction_value(&f[F_LATENCY], &value) < 0)
            goto done;
        memcpy(&bits, &value, sizeof bits);
        if (count_table_add(&counts->latencies, bits, 1) < 0)
            goto done;
    }
    else if (latency_kind == T_INT) {
        PyObject *latency = PyLong_FromLongLong(token_int(&f[F_LATENCY]));
        int rc = latency == NULL ? -1 : bump(c->latency, latency);
        Py_XDECREF(latency);
        if (rc < 0)
            goto done;
    }
    if (size_kind == T_INT && add_size_value(sums, (unsigned long long)size_value) < 0)
        goto done;
    result = COUNTED;
done:
    Py_XDECREF(minute);
    return result;
}

/* ------------------------------------------------------------------ route 2: msgspec */

static int
is_ascii(const char *data, Py_ssize_t length)
{
    Py_ssize_t i = 0;
    for (; i + 8 <= length; i += 8) {
        unsigned long long word;
        memcpy(&word, data + i, 8);
        if (word & 0x8080808080808080ULL)
            return 0;
    }
    for (; i < length; i++)
        if ((unsigned char)data[i] & 0x80)
            return 0;
    return 1;
}

static int
is_text_or_none(PyObject *value)
{
    return value == Py_None || PyUnicode_CheckExact(value);
}

/* Any other line, exactly as the Python loop: the msgspec decoder of the mapped fields, then the
 * checks on what it made. COUNTED, SLOW or FAILED. */
static int
decoded_line(Counters *c, IsoMemo *memo, PyObject *line, PyObject *decode, PyObject *minute_of,
             unsigned long long ms_threshold, ByteSums *sums, const MinuteRange *range)
{
    const char *data = PyBytes_AS_STRING(line);
    Py_ssize_t length = PyBytes_GET_SIZE(line);
    if (!is_ascii(data, length)) {
        /* msgspec skips unused fields without checking their UTF-8; orjson refuses the line. */
        PyObject *text = PyUnicode_DecodeUTF8(data, length, "strict");
        if (text == NULL)
            return to_slow();
        Py_DECREF(text);
    }
    PyObject *record = PyObject_CallOneArg(decode, line);
    if (record == NULL)
        return to_slow();

    int result = FAILED;
    PyObject *ts = NULL, *ip = NULL, *status = NULL, *method = NULL, *path = NULL, *agent = NULL,
             *origin = NULL, *size = NULL, *latency = NULL, *minute = NULL, *minute_key = NULL;
    if ((ts = PyObject_GetAttr(record, s_timestamp)) == NULL
        || (ip = PyObject_GetAttr(record, s_client_ip)) == NULL
        || (status = PyObject_GetAttr(record, s_status)) == NULL
        || (method = PyObject_GetAttr(record, s_method)) == NULL
        || (path = PyObject_GetAttr(record, s_path)) == NULL
        || (agent = PyObject_GetAttr(record, s_user_agent)) == NULL
        || (origin = PyObject_GetAttr(record, s_source)) == NULL
        || (size = PyObject_GetAttr(record, s_bytes)) == NULL
        || (latency = PyObject_GetAttr(record, s_latency_ms)) == NULL) {
        result = to_slow();
        goto done;
    }

    long long minute_value = 0;
    int have_minute_value = 0;
    if (PyUnicode_CheckExact(ts)) {
        int rc = PyUnicode_KIND(ts) == PyUnicode_1BYTE_KIND
                     ? cached_iso_minute(c, memo, (const char *)PyUnicode_1BYTE_DATA(ts),
                                         PyUnicode_GET_LENGTH(ts), &minute_value)
                     : 0;
        if (rc < 0) {
            result = to_slow();
            goto done;
        }
        if (rc == 1)
            have_minute_value = 1;
        else if ((minute = PyObject_CallOneArg(minute_of, ts)) == NULL) {
            /* first sight of a piece: the helper validates and learns it */
            result = to_slow();
            goto done;
        }
    }
    else if (PyLong_CheckExact(ts)) {
        unsigned long long stamp;
        int rc = as_u64(ts, &stamp);
        if (rc <= 0) {
            result = rc < 0 ? to_slow() : SLOW;
            goto done;
        }
        minute_value = (long long)(stamp >= ms_threshold ? stamp / 60000 : stamp / 60);
        have_minute_value = 1;
    }
    else {
        result = SLOW;
        goto done;
    }

    long status_value = 0;
    if (PyLong_CheckExact(status)) {
        int overflow = 0;
        long long value = PyLong_AsLongLongAndOverflow(status, &overflow);
        if (overflow == 0 && value >= 100 && value <= 599)
            status_value = (long)value;
    }
    if (PyErr_Occurred()) {
        result = to_slow();
        goto done;
    }
    unsigned long long size_value = 0;
    int latency_ok = latency == Py_None || PyFloat_CheckExact(latency);
    if (!latency_ok && PyLong_CheckExact(latency)) {
        int rc = in_json_int_range(latency);
        if (rc < 0) {
            result = to_slow();
            goto done;
        }
        latency_ok = rc;
    }
    int size_ok = size == Py_None;
    if (!size_ok && PyLong_CheckExact(size)) {
        int rc = as_u64(size, &size_value);
        if (rc < 0) {
            result = to_slow();
            goto done;
        }
        size_ok = rc;
    }
    if (status_value == 0 || !is_text_or_none(method) || !is_text_or_none(path) || !is_text_or_none(agent)
        || !is_text_or_none(origin) || !latency_ok || !size_ok) {
        result = SLOW;
        goto done;
    }
    if (range->active) {
        long long value = minute_value;
        if (!have_minute_value) {
            int overflow = 0;
            value = PyLong_AsLongLongAndOverflow(minute, &overflow);
            if (value == -1 && PyErr_Occurred()) {
                result = to_slow();
                goto done;
            }
            if (overflow != 0)
                value = overflow > 0 ? LLONG_MAX : LLONG_MIN;
        }
        if (outside_range(range, value)) {
            result = SLOW;
            goto done;
        }
    }

    /* Last, as it is the first count. */
    result = count_ip(c, ip);
    if (result != COUNTED)
        goto done;
    result = FAILED;
    if (have_minute_value) {
        PyObject *m = PyLong_FromLongLong(minute_value);
        if (m == NULL)
            goto done;
        minute_key = minute_key_of(m, status_value);
        Py_DECREF(m);
    }
    else
        minute_key = minute_key_of(minute, status_value);
    if (minute_key == NULL)
        goto done;
    if (count_rest(c, minute_key, ip, status, status_value, method, path, agent, origin, latency) < 0)
        goto done;
    if (size != Py_None && add_size_value(sums, size_value) < 0)
        goto done;
    result = COUNTED;

done:
    Py_DECREF(record);
    Py_XDECREF(ts);
    Py_XDECREF(ip);
    Py_XDECREF(status);
    Py_XDECREF(method);
    Py_XDECREF(path);
    Py_XDECREF(agent);
    Py_XDECREF(origin);
    Py_XDECREF(size);
    Py_XDECREF(latency);
    Py_XDECREF(minute);
    return result;
}

/* ------------------------------------------------------------------ route 3: the slow path */

/* bytes.strip() would leave nothing. */
static int
is_blank(const char *data, Py_ssize_t length)
{
    for (Py_ssize_t i = 0; i < length; i++) {
        char ch = data[i];
        if (!(ch == ' ' || ch == '\t' || ch == '\n' || ch == '\r' || ch == '\x0b' || ch == '\x0c'))
            return 0;
    }
    return 1;
}

/* A line the slow path normalized: the 9-tuple (minute, ip, status, method, path, agent, source,
 * size, latency), counted as the Python loop counts it. */
static int
count_normalized(Counters *c, PyObject *normalized, ByteSums *sums)
{
    if (!PyTuple_Check(normalized) || PyTuple_GET_SIZE(normalized) != 9) {
        PyErr_SetString(PyExc_TypeError, "the slow path must return a 9-field Normalized or None");
        return -1;
    }
    PyObject *minute = PyTuple_GET_ITEM(normalized, 0), *ip = PyTuple_GET_ITEM(normalized, 1),
             *status = PyTuple_GET_ITEM(normalized, 2), *size = PyTuple_GET_ITEM(normalized, 7);
    if (bump_item(c->ips, ip) < 0)
        return -1;
    long status_value = PyLong_AsLong(status);
    if (status_value == -1 && PyErr_Occurred())
        return -1;
    PyObject *minute_key = minute_key_of(minute, status_value);
    if (minute_key == NULL)
        return -1;
    if (count_rest(c, minute_key, ip, status, status_value, PyTuple_GET_ITEM(normalized, 3),
                   PyTuple_GET_ITEM(normalized, 4), PyTuple_GET_ITEM(normalized, 5),
                   PyTuple_GET_ITEM(normalized, 6), PyTuple_GET_ITEM(normalized, 8)) < 0)
        return -1;
    return size == Py_None ? 0 : add_size_object(sums, size);
}

/* ------------------------------------------------------------------ the loop */

static PyObject *
get_dict_attr(PyObject *owner, PyObject *name, int want_set)
{
    PyObject *value = PyObject_GetAttr(owner, name);
    if (value == NULL)
        return NULL;
    if (want_set ? !PySet_Check(value) : !PyDict_Check(value)) {
        PyErr_Format(PyExc_TypeError, "Aggregate.%U must be a %s", name, want_set ? "set" : "dict");
        Py_DECREF(value);
        return NULL;
    }
    return value;
}

static int
get_counters(PyObject *aggregate, Counters *c)
{
    memset(c, 0, sizeof(Counters));
    if ((c->ips = get_dict_attr(aggregate, s_ips, 0)) == NULL
        || (c->ip_4xx = get_dict_attr(aggregate, s_ip_client_errors, 0)) == NULL
        || (c->ip_5xx = get_dict_attr(aggregate, s_ip_server_errors, 0)) == NULL
        || (c->minute_status = get_dict_attr(aggregate, s_minute_status, 0)) == NULL
        || (c->kinds = get_dict_attr(aggregate, s_kinds, 0)) == NULL
        || (c->paths = get_dict_attr(aggregate, s_paths, 0)) == NULL
        || (c->agents = get_dict_attr(aggregate, s_user_agents, 0)) == NULL
        || (c->latency = get_dict_attr(aggregate, s_latency_pending, 0)) == NULL
        || (c->iso_prefix = get_dict_attr(aggregate, s_iso_prefix, 0)) == NULL
        || (c->iso_tail = get_dict_attr(aggregate, s_iso_tail, 0)) == NULL) {
        release_counters(c);
        return -1;
    }
    return 0;
}

static void
release_counters(Counters *c)
{
    Py_CLEAR(c->ips);
    Py_CLEAR(c->ip_4xx);
    Py_CLEAR(c->ip_5xx);
    Py_CLEAR(c->minute_status);
    Py_CLEAR(c->kinds);
    Py_CLEAR(c->paths);
    Py_CLEAR(c->agents);
    Py_CLEAR(c->latency);
    Py_CLEAR(c->iso_prefix);
    Py_CLEAR(c->iso_tail);
}

static int
mapped_keys_of(PyObject *keys, MappedKeys *out)
{
    if (!PyTuple_Check(keys) || PyTuple_GET_SIZE(keys) != FIELD_COUNT) {
        PyErr_SetString(PyExc_TypeError, "keys must be a tuple of the 9 mapped JSON keys as bytes");
        return -1;
    }
    for (int i = 0; i < FIELD_COUNT; i++) {
        PyObject *key = PyTuple_GET_ITEM(keys, i);
        if (!PyBytes_Check(key)) {
            PyErr_SetString(PyExc_TypeError, "keys must be bytes");
            return -1;
        }
        out->text[i] = PyBytes_AS_STRING(key);
        out->length[i] = PyBytes_GET_SIZE(key);
    }
    out->dotted = out->too_deep = 0;
    for (int i = 0; i < FIELD_COUNT; i++) {
        const char *piece = out->text[i], *end = piece + out->length[i];
        int parts = 0;
        for (;;) {
            const char *dot = memchr(piece, '.', (size_t)(end - piece));
            const char *piece_end = dot == NULL ? end : dot;
            if (parts < PATH_MAX_PARTS) {
                out->part[i][parts].text = piece;
                out->part[i][parts].length = piece_end - piece;
            }
            parts++;
            if (dot == NULL)
                break;
            piece = dot + 1;
        }
        out->parts[i] = parts > PATH_MAX_PARTS ? 1 : parts;
        out->dotted |= parts > 1;
        out->too_deep |= parts > PATH_MAX_PARTS;
    }
    return 0;
}

typedef struct {
    Counters c;
    CountsObject *counts;
    IsoMemo *memo;
    MappedKeys keys;
    PyObject *decode, *minute_of, *slow;
    unsigned long long ms_threshold;
    ByteSums sums;
    Py_ssize_t blank;
    MinuteRange range;
} Loop;

/* One line through the three routes; `line` is its bytes object if the caller has one, else NULL
 * (made here only if route 2 or 3 needs it). 0, or -1 with an error set. */
static int
one_line(Loop *loop, const char *data, Py_ssize_t length, PyObject *line, Py_ssize_t lineno)
{
    int rc = flat_line(&loop->c, loop->counts, loop->memo, &loop->keys, data, length, loop->minute_of,
                       loop->ms_threshold, &loop->sums, &loop->range);
    if (rc == COUNTED) {
        if (++loop->counts->since_flush >= (1ULL << 31))
            return flush_counts(loop->counts, &loop->c);
        return 0;
    }
    if (rc == FAILED)
        return -1;
    PyObject *owned = NULL;
    if (line == NULL) {
        line = owned = PyBytes_FromStringAndSize(data, length);
        if (line == NULL)
            return -1;
        data = PyBytes_AS_STRING(line); /* the caller's buffer may move if Python code runs */
    }
    else
        Py_INCREF(line); /* Python code below (helpers, the slow path) could change the list */
    if (rc == NOT_SCANNED)
        rc = decoded_line(&loop->c, loop->memo, line, loop->decode, loop->minute_of, loop->ms_threshold,
                          &loop->sums, &loop->range);
    if (rc == SLOW) {
        if (is_blank(data, length))
            loop->blank++;
        else {
            PyObject *normalized = PyObject_CallFunction(loop->slow, "nO", lineno, line);
            if (normalized == NULL)
                rc = FAILED;
            else {
                if (normalized != Py_None && count_normalized(&loop->c, normalized, &loop->sums) < 0)
                    rc = FAILED;
                Py_DECREF(normalized);
            }
        }
    }
    Py_XDECREF(owned);
    if (owned == NULL)
        Py_DECREF(line);
    return rc == FAILED ? -1 : 0;
}

/* The aggregate's _minute_range: None (no window) or a (low, high) tuple of epoch minutes. */
static int
minute_range_of(PyObject *aggregate, MinuteRange *out)
{
    out->active = 0;
    PyObject *value = PyObject_GetAttr(aggregate, s_minute_range);
    if (value == NULL)
        return -1;
    int rc = 0;
    if (value != Py_None) {
        if (!PyTuple_Check(value) || PyTuple_GET_SIZE(value) != 2) {
            PyErr_SetString(PyExc_TypeError, "_minute_range must be None or a (low, high) tuple");
            rc = -1;
        }
        else {
            out->low = PyLong_AsLongLong(PyTuple_GET_ITEM(value, 0));
            out->high = PyLong_AsLongLong(PyTuple_GET_ITEM(value, 1));
            if (PyErr_Occurred())
                rc = -1;
            else
                out->active = 1;
        }
    }
    Py_DECREF(value);
    return rc;
}

PyDoc_STRVAR(ingest_doc,
"ingest(counts, aggregate, lines, start, end, first_line, keys, decode, minute_of, slow, ms_threshold)\n"
"-> (lines, blank lines)\n\n"
"Aggregate's per-line loop. ``lines``: a list of bytes lines, or a bytes buffer whose lines in\n"
"[start, end) are those ended by a newline (and a last one without). ``counts``: the Counts that\n"
"the first route adds to (flush them into the aggregate before reading it). ``keys``: the JSON\n"
"keys of timestamp, client_ip, status, method, path, user_agent, source, bytes, latency_ms\n"
"(UTF-8); ``decode``: the msgspec decoder of those fields; ``minute_of``: the timestamp helper that\n"
"validates and learns the caches; ``slow``: called as slow(lineno, line) for a non-blank line\n"
"neither fast route takes, returns the Normalized tuple, or None for an invalid line it kept aside.\n"
"A line whose minute is outside ``aggregate._minute_range`` (when not None) goes to ``slow``.");

static PyObject *
ingest(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 11) {
        PyErr_SetString(PyExc_TypeError, "ingest() takes 11 arguments");
        return NULL;
    }
    if (!PyObject_TypeCheck(args[0], &CountsType)) {
        PyErr_SetString(PyExc_TypeError, "counts must be a Counts");
        return NULL;
    }
    PyObject *aggregate = args[1], *lines = args[2];
    int is_list = PyList_Check(lines);
    if (!is_list && !PyBytes_Check(lines)) {
        PyErr_SetString(PyExc_TypeError, "lines must be a list of bytes or a bytes buffer");
        return NULL;
    }
    Py_ssize_t start = PyLong_AsSsize_t(args[3]), end = PyLong_AsSsize_t(args[4]);
    Py_ssize_t first_line = PyLong_AsSsize_t(args[5]);
    if (PyErr_Occurred())
        return NULL;
    if (!is_list && (start < 0 || end > PyBytes_GET_SIZE(lines) || start > end)) {
        PyErr_SetString(PyExc_ValueError, "start and end must delimit a span of the buffer");
        return NULL;
    }
    Loop loop;
    memset(&loop, 0, sizeof loop);
    loop.counts = (CountsObject *)args[0];
    loop.decode = args[7];
    loop.minute_of = args[8];
    loop.slow = args[9];
    if (mapped_keys_of(args[6], &loop.keys) < 0)
        return NULL;
    loop.ms_threshold = PyLong_AsUnsignedLongLong(args[10]);
    if (loop.ms_threshold == (unsigned long long)-1 && PyErr_Occurred())
        return NULL;
    loop.memo = &loop.counts->memo;
    if (minute_range_of(args[1], &loop.range) < 0)
        return NULL;

    PyObject *bytes_records = NULL, *result = NULL;
    Py_ssize_t count = 0;
    int failed = 0;
    if (get_counters(aggregate, &loop.c) < 0 || (loop.sums.total = PyObject_GetAttr(aggregate, s_bytes_total)) == NULL
        || (bytes_records = PyObject_GetAttr(aggregate, s_bytes_records)) == NULL)
        goto done;

    Py_INCREF(lines); /* the buffer stays alive (and, being bytes, unchanged) */
    if (is_list) {
        for (Py_ssize_t i = 0; i < PyList_GET_SIZE(lines); i++) {
            PyObject *line = PyList_GET_ITEM(lines, i);
            if (!PyBytes_Check(line)) {
                PyErr_Format(PyExc_TypeError, "line %zd is %.100s, not bytes", first_line + i,
                             Py_TYPE(line)->tp_name);
                failed = 1;
                break;
            }
            count++;
            if (one_line(&loop, PyBytes_AS_STRING(line), PyBytes_GET_SIZE(line), line, first_line + i) < 0) {
                failed = 1;
                break;
            }
        }
    }
    else {
        const char *buffer = PyBytes_AS_STRING(lines);
        Py_ssize_t position = start;
        while (position < end) {
            const char *newline = memchr(buffer + position, '\n', (size_t)(end - position));
            Py_ssize_t stop = newline == NULL ? end : newline - buffer;
            if (one_line(&loop, buffer + position, stop - position, NULL, first_line + count) < 0) {
                failed = 1;
                break;
            }
            count++;
            position = stop + 1;
        }
    }
    Py_DECREF(lines);

    /* What was counted stays counted, as in the Python loop; the byte sums are written back even on
     * an error so that they agree with the other counters. */
    PyObject *saved_type, *saved_value, *saved_traceback;
    PyErr_Fetch(&saved_type, &saved_value, &saved_traceback);
    PyObject *records_delta = NULL, *records = NULL;
    int written = fold_pending(&loop.sums) == 0
                  && (records_delta = PyLong_FromLongLong(loop.sums.records)) != NULL
                  && (records = PyNumber_Add(bytes_records, records_delta)) != NULL
                  && PyObject_SetAttr(aggregate, s_bytes_total, loop.sums.total) == 0
                  && PyObject_SetAttr(aggregate, s_bytes_records, records) == 0;
    Py_XDECREF(records_delta);
    Py_XDECREF(records);
    if (saved_type != NULL)
        PyErr_Restore(saved_type, saved_value, saved_traceback);
    if (written && !failed)
        result = Py_BuildValue("nn", count, loop.blank);

done:
    release_counters(&loop.c);
    Py_XDECREF(loop.sums.total);
    Py_XDECREF(bytes_records);
    return result;
}

static PyMethodDef methods[] = {
    {"ingest", (PyCFunction)(void (*)(void))ingest, METH_FASTCALL, ingest_doc},
    {"canonical_ip", (PyCFunction)canonical_ip, METH_O, canonical_ip_doc},
    {"address_texts", (PyCFunction)(void (*)(void))address_texts, METH_FASTCALL, address_texts_doc},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module_def = {
    PyModuleDef_HEAD_INIT,
    "logproc_analyzer._native_ingest",
    "The analyzer's per-line loop in C (see Aggregate.ingest_lines).",
    -1,
    methods,
};

#define INTERN(var, text)                                 \
    if ((var = PyUnicode_InternFromString(text)) == NULL) \
        return NULL;

PyMODINIT_FUNC
PyInit__native_ingest(void)
{
    INTERN(s_timestamp, "timestamp");
    INTERN(s_client_ip, "client_ip");
    INTERN(s_status, "status");
    INTERN(s_method, "method");
    INTERN(s_path, "path");
    INTERN(s_user_agent, "user_agent");
    INTERN(s_source, "source");
    INTERN(s_bytes, "bytes");
    INTERN(s_latency_ms, "latency_ms");
    INTERN(s_ips, "ips");
    INTERN(s_ip_client_errors, "ip_client_errors");
    INTERN(s_ip_server_errors, "ip_server_errors");
    INTERN(s_minute_status, "minute_status");
    INTERN(s_kinds, "kinds");
    INTERN(s_paths, "paths");
    INTERN(s_user_agents, "user_agents");
    INTERN(s_latency_pending, "_latency_pending");
    INTERN(s_iso_prefix, "_iso_prefix");
    INTERN(s_iso_tail, "_iso_tail");
    INTERN(s_bytes_total, "bytes_total");
    INTERN(s_bytes_records, "bytes_records");
    INTERN(s_minute_range, "_minute_range");
    if ((one = PyLong_FromLong(1)) == NULL)
        return NULL;
    for (long status = 100; status < 600; status++)
        if ((status_objects[status] = PyLong_FromLong(status)) == NULL)
            return NULL;
    if (PyType_Ready(&CountsType) < 0)
        return NULL;
    PyObject *module = PyModule_Create(&module_def);
    if (module == NULL)
        return NULL;
    if (PyModule_AddObjectRef(module, "Counts", (PyObject *)&CountsType) < 0) {
        Py_DECREF(module);
        return NULL;
    }
    return module;
}
