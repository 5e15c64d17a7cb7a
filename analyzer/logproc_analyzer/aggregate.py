"""The mergeable aggregate of a set of log lines, and the loop that feeds it.

An ``Aggregate`` holds exact counters keyed by what the report needs (minute x status, status x method
x source, IP, path, user agent) plus a bucketed latency histogram. Two aggregates merge by adding
their counters, so the merge of the partials of any split of the input equals the aggregate of the
whole input; top-N lists, rates and anomalies are derived only at the end (``summary.py``).

The ingest loop has two paths. Each line is first decoded by msgspec into a struct of just the mapped
fields (in C, skipping the rest of the object, without building a dictionary). The fast path handles
the shapes that make up nearly every line of a real log: a flat JSON object whose timestamp is
``YYYY-MM-DDTHH:MM:SS[.fff](Z|+hh:mm)`` (pieces looked up in small caches) or an epoch number, an IP
already seen, an integer status. Anything else (first sight of an IP or a timestamp piece, envelopes,
strings where numbers belong, CLF lines, broken lines) goes to the slow path, which parses the line
again with orjson, validates strictly with ``fields.py`` and fills the caches. Both paths end in the
same counting code, so they cannot disagree. Where the two JSON readers differ, a line must count the
same whichever path it takes (``tests/unit/analysis/test_decode_paths.py``): msgspec skips unused
fields without checking their UTF-8 (non-ASCII lines are checked first) or reading their numbers (the
slow path reads numbers beyond a double's range as infinity, ``loads_json_line``), and reads integers
beyond 64 bits exactly where orjson makes them floats (such values take the slow path).
"""

from __future__ import annotations

import base64
import functools
import itertools
import json
import re
from collections import defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass
from typing import IO, Any, Literal, NamedTuple

import msgspec
import orjson

from logproc_analyzer.fields import (
    EPOCH_MS_THRESHOLD,
    KEY_FIELDS,
    FieldError,
    FieldMapping,
    Window,
    clf_time_ms,
    field_value,
    iso_prefix_minute,
    iso_seconds_valid,
    iso_tail_offset,
    key_paths,
    parse_client_ip,
    parse_status,
    parse_timestamp_ms,
)
from logproc_analyzer.native import optional_extension
from logproc_analyzer.sketch import LatencyHistogram

# The per-line loop in C (see _native_ingest.c); same results as the Python loop below.
native_ingest = optional_extension("logproc_analyzer._native_ingest")

PARTIAL_FORMAT = "logproc-analysis-partial"
# 2: the window and the records outside it, the field mappings used, the latency unit. Version 1
# partials (no window, keys as given) are still read.
PARTIAL_VERSION = 2
READABLE_PARTIAL_VERSIONS = (1, 2)
INVALID_SAMPLE_SIZE = 20
INVALID_TEXT_LIMIT = 300
MISSING = "-"  # what an absent optional text field (method, path, user agent, source) counts as

_CLF_RE = re.compile(
    r'(?P<host>\S+) \S+ \S+ \[(?P<time>[^\]]+)\] "(?P<request>(?:[^"\\]|\\.)*)" (?P<status>\d{3}) '
    r'(?P<bytes>\d+|-)(?: "(?P<referrer>(?:[^"\\]|\\.)*)" "(?P<agent>(?:[^"\\]|\\.)*)")?(?: .*)?'
)
_CLF_TIME_RE = re.compile(r"(\d\d)/([A-Z][a-z]{2})/(\d{4}):(\d\d):(\d\d):(\d\d) ([+-])(\d\d)(\d\d)")
_TIMESTAMP_CACHE_LIMIT = 200_000
_LATENCY_PENDING_LIMIT = 65_536
_LINES_PER_CHUNK = 65_536  # lines of an iterable handed to the C loop at a time
_CLF_TIME_CACHE_LIMIT = 200_000
# orjson reads integers up to 2**64 - 1 (and down to -2**63) exactly and larger ones as floats;
# msgspec reads them all exactly. The fast path takes only integers both read alike.
_INT_MIN = -(1 << 63)
_INT_MAX = (1 << 64) - 1
_INFINITY = float("inf")


class InvalidRecord(Exception):
    """A line that cannot be analysed; ``reason`` is a short category, the message says what is wrong."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


class Normalized(NamedTuple):
    """One valid record, reduced to what the aggregates need (minute = UTC epoch minute)."""

    minute: int
    client_ip: str
    status: int
    method: str | None
    path: str | None
    user_agent: str | None
    source: str | None
    bytes: int | None
    latency_ms: float | int | None


@dataclass(frozen=True, slots=True)
class InvalidLine:
    source: str
    line: int
    reason: str
    message: str
    text: str

    def to_dict(self) -> dict[str, Any]:
        return {"source": self.source, "line": self.line, "reason": self.reason,
                "message": self.message, "text": self.text}


def invalid_line_json(source: str, line: int, reason: str, message: str, raw: bytes) -> bytes:
    """One quarantined line as a JSON line; the original bytes are kept exactly (base64) when they
    are not UTF-8, so nothing is lost to decoding."""
    entry: dict[str, Any] = {"source": source, "line": line, "reason": reason, "message": message}
    try:
        entry["text"] = raw.decode("utf-8")
    except UnicodeDecodeError:
        entry["text"] = raw.decode("utf-8", errors="backslashreplace")
        entry["raw_base64"] = base64.b64encode(raw).decode("ascii")
    return orjson.dumps(entry) + b"\n"


class _Slow(Exception):
    """Raised inside the fast path to hand a line to the slow path.

    Always a new instance: re-raising one shared instance would chain every raise's traceback onto
    it and keep growing.
    """


class IpCounter(dict[str, int]):
    """Requests per client IP; the first sight of a key validates it as a canonical IP address.

    ``counter[ip] += 1`` raises FieldError for anything that is not an IPv4/IPv6 address and _Slow for
    an address not in canonical form (the slow path maps it to its canonical text), so the fast path
    pays for validation only once per distinct address.
    """

    __slots__ = ()

    def __missing__(self, key: str) -> int:
        if parse_client_ip(key) != key:
            raise _Slow
        return 0


@functools.lru_cache(maxsize=16)
def record_decoder(mapping: FieldMapping) -> msgspec.json.Decoder[Any] | None:
    """Build a msgspec decoder of one JSON object into a struct of the mapped fields (each ``Any``, absent =
    None); the object's other keys are skipped. None when two fields map to the same key."""
    keys = mapping.json_keys()
    if len(set(keys)) != len(keys):
        return None
    struct_fields: list[tuple[str, Any, Any]] = []
    rename: dict[str, str] = {}
    namespace: dict[str, Any] = {}
    roots: dict[str, str] = {}  # first part of a dotted key -> the struct field holding that subtree
    for name, key in zip(KEY_FIELDS, keys, strict=True):
        if "." not in key and name in _TEXT_NUMBER_FIELDS:
            # nginx JSON and others quote numbers ("status": "404"): read them as the slow path does.
            raw = f"_raw_{name}"
            struct_fields.append((raw, Any, None))
            rename[raw] = key
            namespace[name] = property(_text_number_getter(raw, _TEXT_NUMBER_FIELDS[name]))
            continue
        if "." not in key:
            struct_fields.append((name, Any, None))
            rename[name] = key
            continue
        # A dotted key: the flat key if present, else the path through nested objects, exactly as
        # fields.field_value reads it (the subtree is decoded into dicts by msgspec, in C).
        flat = f"_flat_{name}"
        struct_fields.append((flat, Any, None))
        rename[flat] = key
        first, *rest = key.split(".")
        if first not in roots:
            roots[first] = f"_root_{len(roots)}"
            struct_fields.append((roots[first], Any, None))
            rename[roots[first]] = first
        getter = _dotted_getter(flat, roots[first], tuple(rest))
        if name in _TEXT_NUMBER_FIELDS:
            getter = _converted(getter, _TEXT_NUMBER_FIELDS[name])
        namespace[name] = property(getter)
    if len(set(rename.values())) != len(rename):
        return None  # a dotted key's first part is also a field's key: the slow path reads it
    record = msgspec.defstruct("MappedRecord", struct_fields, rename=rename, namespace=namespace, gc=False)
    return msgspec.json.Decoder(record)


def _status_number(value: Any) -> Any:
    """Read a 3-digit text status as its int, as parse_status reads it; anything else unchanged."""
    if value.__class__ is str and len(value) == 3 and value.isascii() and value.isdigit():
        return int(value)
    return value


def _size_number(value: Any) -> Any:
    """Read a text size as Aggregate._size reads it ('-' is absent, digits an int); anything else unchanged."""
    if value.__class__ is str:
        if value == MISSING:
            return None
        if value.isascii() and value.isdigit():
            return int(value)
    return value


def _latency_number(value: Any) -> Any:
    """Read a text latency as Aggregate._latency reads it: float(text); ValueError (the slow path) if not."""
    return float(value) if value.__class__ is str else value


# Fields whose value may be a number written as text, and how the slow path reads such text.
_TEXT_NUMBER_FIELDS = {"status": _status_number, "bytes": _size_number, "latency_ms": _latency_number}


def _text_number_getter(raw: str, convert: Any) -> Any:
    def get(record: Any) -> Any:
        return convert(getattr(record, raw))
    return get


def _converted(getter: Any, convert: Any) -> Any:
    def get(record: Any) -> Any:
        return convert(getter(record))
    return get


def _dotted_getter(flat: str, root: str, rest: tuple[str, ...]) -> Any:
    def get(record: Any) -> Any:
        value = getattr(record, flat)
        if value is not None:
            return value
        node = getattr(record, root)
        for part in rest:
            if node.__class__ is not dict:
                return None
            node = node.get(part)
            if node is None:
                return None
        return node
    return get


@functools.lru_cache(maxsize=16)
def mapped_keys(mapping: FieldMapping) -> tuple[bytes, ...]:
    """Return the JSON keys of the fields the C loop reads, UTF-8, in the order it expects them."""
    return tuple(key.encode() for key in (
        mapping.timestamp, mapping.client_ip, mapping.status, mapping.method, mapping.path,
        mapping.user_agent, mapping.source, mapping.bytes, mapping.latency_ms))


def _decode_nothing(line: bytes) -> Any:
    raise _Slow


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON value")


def loads_json_line(line: bytes) -> Any:
    """Parse one JSON text like orjson, except that numbers beyond a double's range read as
    +-infinity (RFC 8259 allows them; orjson refuses the whole text). The fast path's msgspec skips
    unused fields without reading their numbers, so without this a line's validity would depend on
    which path it took."""
    try:
        return orjson.loads(line)
    except orjson.JSONDecodeError as exc:
        if "infinity" not in str(exc):
            raise
    return json.loads(line, parse_constant=_reject_constant)  # raises ValueError, as orjson does


def _fold_missing(counter: Mapping[Any, int]) -> dict[str, int]:
    folded: dict[str, int] = {}
    for key, count in counter.items():
        name = MISSING if key is None else key
        folded[name] = folded.get(name, 0) + count
    return folded


class Aggregate:
    """Exact, mergeable counters over analysed log lines."""

    def __init__(self, mapping: FieldMapping | None = None, window: Window | None = None) -> None:
        self.mapping = mapping or FieldMapping()
        # The analysis window: records outside it stay valid (they are counted in every figure but
        # the time series) and their minutes are told apart when summarised. Both loops send a record
        # whose minute is outside to the slow path, which alone notes the exact extremes below.
        self.window = window
        self._minute_range: tuple[int, int] | None = None if window is None else window.minute_range()
        self.outside_earliest_ms: int | None = None  # the earliest valid record before the window
        self.outside_latest_ms: int | None = None  # the latest valid record at or after its end
        # How the fields were mapped, per distinct mapping among the merged partials.
        self.field_mappings: list[dict[str, Any]] = []
        self.lines = 0
        self.blank_lines = 0
        self.invalid_reasons: defaultdict[str, int] = defaultdict(int)
        self.invalid_sample: list[InvalidLine] = []
        self.field_errors: defaultdict[str, int] = defaultdict(int)
        # UTC epoch minute * 1000 + status -> requests: per-minute and per-hour traffic, errors and the
        # status mix (an int key hashes and compares faster than a tuple).
        self.minute_status: defaultdict[int, int] = defaultdict(int)
        # (status, method, source) -> requests: the status, method and source histograms.
        self.kinds: defaultdict[tuple[int, str | None, str | None], int] = defaultdict(int)
        self.ips = IpCounter()
        self.ip_client_errors: defaultdict[str, int] = defaultdict(int)
        self.ip_server_errors: defaultdict[str, int] = defaultdict(int)
        self.paths: defaultdict[str | None, int] = defaultdict(int)
        self.user_agents: defaultdict[str | None, int] = defaultdict(int)
        self.bytes_total = 0
        self.bytes_records = 0
        self.latency = LatencyHistogram()
        self.inputs: list[dict[str, Any]] = []
        # Where every invalid line goes, if anywhere (the sample above keeps only the first few).
        self.invalid_sink: IO[bytes] | None = None
        # Caches for the fast path; never part of the result.
        self._iso_prefix: dict[str, int] = {}
        self._iso_seconds: set[str] = set()
        self._iso_tail: dict[str, int] = {}
        self._clf_time: dict[str, int] = {}
        self._ip_alias: dict[str, str] = {}
        # The C loop's counts not yet added to the dictionaries above (see flush_pending).
        self._native_counts: Any = None
        self._latency_pending: defaultdict[Any, int] = defaultdict(int)

    # ------------------------------------------------------------------ derived totals
    @property
    def valid(self) -> int:
        return sum(self.minute_status.values())

    @property
    def invalid(self) -> int:
        return sum(self.invalid_reasons.values())

    # ------------------------------------------------------------------ ingest
    def ingest_lines(self, lines: Iterable[bytes], *, source: str, first_line: int = 1) -> None:
        """Analyse raw lines (without their newline); ``first_line`` numbers the first one.

        Never raises for bad content: unusable lines are counted by reason and sampled.
        """
        if native_ingest is None or record_decoder(self.mapping) is None:
            self._ingest_python(lines, source=source, first_line=first_line)
        elif isinstance(lines, list):
            self._ingest_native(lines, 0, 0, source, first_line)
        else:  # the C loop takes lists: a long iterable goes in slices, never held whole
            iterator = iter(lines)
            while chunk := list(itertools.islice(iterator, _LINES_PER_CHUNK)):
                self._ingest_native(chunk, 0, 0, source, first_line)
                first_line += len(chunk)
        self.flush_pending()

    def ingest_buffer(self, buffer: bytes, start: int, end: int, *, source: str, first_line: int) -> int:
        """Analyse the lines of ``buffer[start:end]`` (each ended by a newline, but perhaps the last);
        returns how many there were. The counts of the C loop stay pending: call ``flush_pending()``
        (or ``finish()``) before reading the aggregate. For long inputs read block by block."""
        count = self._ingest_native(buffer, start, end, source, first_line)
        if count is False:
            lines = buffer[start:end].split(b"\n")
            if lines[-1] == b"":
                lines.pop()
            self._ingest_python(lines, source=source, first_line=first_line)
            return len(lines)
        self._bound_pending_latencies()
        return count

    def flush_pending(self) -> None:
        """Add the C loop's pending counts into this aggregate's dictionaries."""
        if self._native_counts is not None:
            self._native_counts.flush(self)
        self._bound_pending_latencies()

    def _ingest_native(self, lines: list[bytes] | bytes, start: int, end: int, source: str,
                       first_line: int) -> int | Literal[False]:
        """Run the C loop over a list of lines or a buffer's span: the number of lines, or False where it
        cannot run (not built, or two fields mapped to one key)."""
        decoder = record_decoder(self.mapping)
        if native_ingest is None or decoder is None:
            return False
        if self._native_counts is None:
            self._native_counts = native_ingest.Counts()
        count, blank = native_ingest.ingest(
            self._native_counts, self, lines, start, end, first_line, mapped_keys(self.mapping),
            decoder.decode, self._minute_of, functools.partial(self._normalize_or_keep, source),
            EPOCH_MS_THRESHOLD)
        self.lines += count - blank
        self.blank_lines += blank
        return count

    def _ingest_python(self, lines: Iterable[bytes], *, source: str, first_line: int = 1) -> None:
        """Run the same loop in Python: where the C one is not built, and the reference it is tested against."""
        decoder = record_decoder(self.mapping)
        decode = decoder.decode if decoder is not None else _decode_nothing
        prefix_get = self._iso_prefix.get
        seconds_ok = self._iso_seconds
        tail_get = self._iso_tail.get
        ips = self.ips
        ip_4xx = self.ip_client_errors
        ip_5xx = self.ip_server_errors
        minute_status = self.minute_status
        kinds = self.kinds
        paths = self.paths
        user_agents = self.user_agents
        latency_pending = self._latency_pending
        text_or_none = (str, type(None))
        int_min, int_max = _INT_MIN, _INT_MAX
        ms_threshold = EPOCH_MS_THRESHOLD
        normalize_or_keep = self._normalize_or_keep
        minute_of = self._minute_of
        bytes_total = self.bytes_total
        bytes_records = self.bytes_records
        windowed = self._minute_range is not None
        low, high = self._minute_range or (0, 0)
        lineno = first_line - 1
        blank = 0
        for lineno, line in enumerate(lines, first_line):
            try:
                if not line.isascii():
                    # msgspec skips unused fields without checking their UTF-8; orjson refuses the line.
                    line.decode("utf-8")
                record = decode(line)
                ts = record.timestamp
                ip = record.client_ip
                status = record.status
                method = record.method
                path = record.path
                agent = record.user_agent
                origin = record.source
                size = record.bytes
                latency = record.latency_ms
                if ts.__class__ is str:
                    minute = prefix_get(ts[:16])
                    zone = tail_get(ts[19:])
                    if minute is None or zone is None or ts[16:19] not in seconds_ok:
                        minute = minute_of(ts)  # first sight of a piece: validate and learn it
                    else:
                        minute -= zone
                elif ts.__class__ is int and 0 <= ts <= int_max:
                    minute = ts // 60000 if ts >= ms_threshold else ts // 60
                else:
                    raise _Slow
                if windowed and not low <= minute < high:
                    raise _Slow  # outside the window: the slow path notes its exact time
                if (
                    status.__class__ is not int
                    or not 100 <= status <= 599
                    or method.__class__ not in text_or_none
                    or path.__class__ not in text_or_none
                    or agent.__class__ not in text_or_none
                    or origin.__class__ not in text_or_none
                    or not (latency is None or latency.__class__ is float
                            or (latency.__class__ is int and int_min <= latency <= int_max))
                    or not (size is None or (size.__class__ is int and 0 <= size <= int_max))
                ):
                    raise _Slow
                # Last, as it is the first count: an unseen IP is validated by IpCounter.__missing__,
                # which raises (nothing counted yet) for anything but a canonical address.
                ips[ip] += 1
            except Exception:
                if not line.strip():
                    blank += 1
                    continue
                normalized = normalize_or_keep(source, lineno, line)
                if normalized is None:
                    continue
                minute, ip, status, method, path, agent, origin, size, latency = normalized
                ips[ip] += 1
            minute_status[minute * 1000 + status] += 1
            kinds[status, method, origin] += 1
            paths[path] += 1
            user_agents[agent] += 1
            if status >= 400:
                if status >= 500:
                    ip_5xx[ip] += 1
                else:
                    ip_4xx[ip] += 1
            if size is not None:
                bytes_total += size
                bytes_records += 1
            if latency is not None:
                latency_pending[latency] += 1
        self.lines += lineno - first_line + 1 - blank
        self.blank_lines += blank
        self.bytes_total = bytes_total
        self.bytes_records = bytes_records
        self._bound_pending_latencies()

    def _bound_pending_latencies(self) -> None:
        """Fold pending latencies into the histogram once there are many distinct ones."""
        if len(self._latency_pending) > _LATENCY_PENDING_LIMIT:
            self._flush_latency()

    def _flush_latency(self) -> None:
        pending = self._latency_pending
        good: dict[float, int] = {}
        in_ms_of = None if self.mapping.latency_unit == "ms" else self.mapping.latency_in_ms
        for value, occurrences in pending.items():
            # In microseconds (the histogram's unit) it must still be finite: 1.8e308 ms is a double.
            if value.__class__ is bool or not 0 <= value * 1000 < _INFINITY:
                self.field_errors["latency_ms"] += occurrences
            elif in_ms_of is None:
                good[value] = occurrences
            else:  # seconds or nanoseconds as the shipper wrote them; the histogram counts ms
                in_ms = in_ms_of(value)
                if not 0 <= in_ms * 1000 < _INFINITY:
                    self.field_errors["latency_ms"] += occurrences
                else:
                    good[in_ms] = good.get(in_ms, 0) + occurrences
        self.latency.add_counts(good)
        pending.clear()

    def drop_caches(self) -> None:
        """Forget the fast-path caches (before pickling a finished aggregate to another process)."""
        self.flush_pending()
        self._native_counts = None
        self._iso_prefix.clear()
        self._iso_seconds.clear()
        self._iso_tail.clear()
        self._clf_time.clear()
        self._ip_alias.clear()

    def finish(self) -> Aggregate:
        """Fold pending values into the aggregate (call before reading or merging it)."""
        self.flush_pending()
        self._flush_latency()
        return self

    def __getstate__(self) -> dict[str, Any]:
        # The C loop's pending counts are added in, not pickled (they are a C object).
        self.flush_pending()
        return {**self.__dict__, "_native_counts": None}

    def count_too_long(self, source: str, lineno: int, start: bytes) -> None:
        """Count and sample a line too long to hold in memory: counted and sampled by its start."""
        self.lines += 1
        self._keep_invalid(source, lineno, start, InvalidRecord("line_too_long", "line too long to analyse"))

    def _keep_invalid(self, source: str, lineno: int, line: bytes, problem: InvalidRecord) -> None:
        self.invalid_reasons[problem.reason] += 1
        if self.invalid_sink is not None:
            self.invalid_sink.write(invalid_line_json(source, lineno, problem.reason, str(problem), line))
        if len(self.invalid_sample) < INVALID_SAMPLE_SIZE:
            text = line[:INVALID_TEXT_LIMIT].decode("utf-8", errors="backslashreplace")
            self.invalid_sample.append(InvalidLine(source, lineno, problem.reason, str(problem), text))

    # ------------------------------------------------------------------ slow path
    def _normalize_or_keep(self, source: str, lineno: int, line: bytes) -> Normalized | None:
        """Take the slow path of both loops: the line's fields, or None once an invalid line is kept aside."""
        try:
            return self._normalize_line(line)
        except InvalidRecord as problem:
            self._keep_invalid(source, lineno, line, problem)
            return None

    def _normalize_line(self, line: bytes) -> Normalized:
        stripped = line.strip()
        if stripped.startswith(b"\xef\xbb\xbf"):  # a UTF-8 byte order mark at the start of a file
            stripped = stripped[3:]
        if stripped[:1] in (b"{", b"[", b'"') or (stripped[:1].isdigit() and b" " not in stripped):
            try:
                record = loads_json_line(stripped)
            except ValueError as exc:
                try:
                    stripped.decode("utf-8")
                except UnicodeDecodeError:
                    raise InvalidRecord("not_utf8", "line is not valid UTF-8") from None
                raise InvalidRecord("malformed_json", f"malformed JSON: {exc}") from None
            return self._normalize_json(record)
        try:
            text = stripped.decode("utf-8")
        except UnicodeDecodeError:
            raise InvalidRecord("not_utf8", "line is not valid UTF-8") from None
        return self._normalize_clf(text)

    def _normalize_json(self, record: Any) -> Normalized:
        if not isinstance(record, dict):
            raise InvalidRecord("not_an_object", f"JSON value is a {type(record).__name__}, not an object")
        mapping = self.mapping
        fallback_ts = None
        if "value" in record and "topic" in record and "offset" in record and mapping.client_ip not in record:
            # A Kafka envelope {topic, partition, offset, timestamp, key, value, headers}: the log
            # record is the value; the Kafka timestamp stands in when the record has none.
            fallback_ts = record.get("timestamp")
            value = record["value"]
            if isinstance(value, str):
                text = value.strip()
                if not text.startswith("{"):
                    return self._normalize_clf(text)
                try:
                    value = orjson.loads(text)
                except orjson.JSONDecodeError as exc:
                    raise InvalidRecord("malformed_json", f"envelope value is malformed JSON: {exc}") from None
            if not isinstance(value, dict):
                raise InvalidRecord("not_an_object",
                                    f"envelope value is a {type(value).__name__}, not an object")
            record = value
        try:
            if mapping.timestamp in record or "." not in mapping.timestamp:
                ts = record.get(mapping.timestamp, fallback_ts)
            else:
                ts = field_value(record, mapping.timestamp)
                if ts is None:
                    ts = fallback_ts
            minute = self._cached_minute(ts)
            ms = None
            if minute is None:
                ms = self._ms_of(self._required(ts, "timestamp", mapping.timestamp, record))
                minute = ms // 60000
            client_ip = self._ip_of(self._required(
                field_value(record, mapping.client_ip), "client_ip", mapping.client_ip, record))
            status = parse_status(self._required(
                field_value(record, mapping.status), "status", mapping.status, record))
        except FieldError as problem:
            raise InvalidRecord(f"invalid_{problem.field}", str(problem)) from None
        if self._minute_range is not None and not self._minute_range[0] <= minute < self._minute_range[1]:
            self._note_time(parse_timestamp_ms(ts) if ms is None else ms)
        return Normalized(
            minute,
            client_ip,
            status,
            self._text(field_value(record, mapping.method), "method"),
            self._text(field_value(record, mapping.path), "path"),
            self._text(field_value(record, mapping.user_agent), "user_agent"),
            self._text(field_value(record, mapping.source), "source"),
            self._size(field_value(record, mapping.bytes)),
            self._latency(field_value(record, mapping.latency_ms)),
        )

    @staticmethod
    def _required(value: Any, name: str, key: str, record: dict[str, Any]) -> Any:
        if value is None:
            # The reason stays a short category; the message names the key looked for and the keys
            # the record has, so a wrong or undetected mapping is plain from the first sample line.
            seen = key_paths(record)
            listed = ", ".join(seen[:20]) + (", ..." if len(seen) > 20 else "")
            where = f"{name!r}" if key == name else f"{name!r} (key {key!r})"
            raise InvalidRecord(f"missing_{name}",
                                f"required field {where} is missing; the record's keys: {listed or 'none'}")
        return value

    def _note_time(self, ms: int) -> None:
        """Keep the extremes of valid records outside the window (their counts come from the minutes)."""
        window = self.window
        if window is None:
            return
        if window.since_ms is not None and ms < window.since_ms:
            if self.outside_earliest_ms is None or ms < self.outside_earliest_ms:
                self.outside_earliest_ms = ms
        elif window.until_ms is not None and ms >= window.until_ms and (
                self.outside_latest_ms is None or ms > self.outside_latest_ms):
            self.outside_latest_ms = ms

    def _cached_minute(self, ts: Any) -> int | None:
        """Return the minute of an ISO timestamp whose three pieces the caches know (each validated when it
        was learnt, so any combination is a valid timestamp), as the fast loops read it; else None."""
        if ts.__class__ is not str:
            return None
        minute = self._iso_prefix.get(ts[:16])
        zone = self._iso_tail.get(ts[19:])
        if minute is None or zone is None or ts[16:19] not in self._iso_seconds:
            return None
        return minute - zone

    def _minute_of(self, ts: Any) -> int:
        return self._ms_of(ts) // 60000

    def _ms_of(self, ts: Any) -> int:
        """Epoch ms of a timestamp; teaches the fast path's caches the pieces of an ISO one."""
        ms = parse_timestamp_ms(ts)
        if isinstance(ts, str) and len(ts) >= 19 and len(self._iso_tail) < _TIMESTAMP_CACHE_LIMIT:
            # Teach the fast path this layout: the three pieces are validated one by one, so any
            # combination of cached pieces is itself a valid timestamp.
            try:
                prefix = iso_prefix_minute(ts[:16])
                zone = iso_tail_offset(ts[19:])
            except ValueError:
                return ms
            if iso_seconds_valid(ts[16:19]):
                self._iso_prefix[ts[:16]] = prefix
                self._iso_tail[ts[19:]] = zone
                self._iso_seconds.add(ts[16:19])
        return ms

    def _ip_of(self, value: Any) -> str:
        if isinstance(value, str):
            known = self._ip_alias.get(value)
            if known is not None:
                return known
        canonical = parse_client_ip(value)
        if canonical != value and len(self._ip_alias) < _TIMESTAMP_CACHE_LIMIT:
            self._ip_alias[value] = canonical
        return canonical

    def _text(self, value: Any, name: str) -> str | None:
        if value is None or isinstance(value, str):
            return value
        if isinstance(value, int | float) and not isinstance(value, bool):
            return str(value)
        self.field_errors[name] += 1
        return None

    def _size(self, value: Any) -> int | None:
        if value is None or value == MISSING:
            return None
        if isinstance(value, str) and value.isascii() and value.isdigit():
            return int(value)
        if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
            return value
        if isinstance(value, float) and value >= 0 and value.is_integer():
            return int(value)
        self.field_errors["bytes"] += 1
        return None

    def _latency(self, value: Any) -> float | int | None:
        if value is None:
            return None
        if isinstance(value, str):
            try:
                value = float(value)
            except ValueError:
                self.field_errors["latency_ms"] += 1
                return None
        if isinstance(value, bool) or not isinstance(value, int | float):
            self.field_errors["latency_ms"] += 1
            return None
        return value  # range checked when pending latencies are folded in

    def _normalize_clf(self, text: str) -> Normalized:
        match = _CLF_RE.fullmatch(text)
        if match is None:
            raise InvalidRecord("unrecognised_line",
                                "neither a JSON object nor a Common/Combined Log Format line")
        time_text = match["time"]
        ms = self._clf_time.get(time_text)
        if ms is None:
            time_match = _CLF_TIME_RE.fullmatch(time_text)
            try:
                if time_match is None:
                    raise ValueError(f"not a CLF time: {time_text!r}")
                ms = clf_time_ms(time_match)
            except ValueError as exc:
                raise InvalidRecord("invalid_timestamp", f"timestamp: {exc}") from None
            if len(self._clf_time) < _CLF_TIME_CACHE_LIMIT:
                self._clf_time[time_text] = ms
        try:
            client_ip = self._ip_of(match["host"])
            status = parse_status(match["status"])
        except FieldError as problem:
            raise InvalidRecord(f"invalid_{problem.field}", str(problem)) from None
        request = match["request"].split(" ")
        if len(request) == 3:
            method, path = request[0], request[1]
        elif len(request) == 2:
            method, path = request
        else:
            method, path = MISSING, match["request"] or MISSING
        size = None if match["bytes"] == MISSING else int(match["bytes"])
        agent = match["agent"]
        self._note_time(ms)
        return Normalized(ms // 60000, client_ip, status, method, path,
                          MISSING if agent is None else agent, None, size, None)

    # ------------------------------------------------------------------ merge and partials
    def merge(self, other: Aggregate) -> Aggregate:
        """Add another (finished) aggregate into this one; returns self."""
        if self.window != other.window:
            raise ValueError(f"cannot merge analyses of different windows: "
                             f"{_window_text(self.window)} and {_window_text(other.window)}")
        self.flush_pending()  # both sides' C-loop counts first: merge adds the dictionaries
        other.flush_pending()
        self._merge_field_mappings(other.field_mappings)
        if other.outside_earliest_ms is not None and (
                self.outside_earliest_ms is None or other.outside_earliest_ms < self.outside_earliest_ms):
            self.outside_earliest_ms = other.outside_earliest_ms
        if other.outside_latest_ms is not None and (
                self.outside_latest_ms is None or other.outside_latest_ms > self.outside_latest_ms):
            self.outside_latest_ms = other.outside_latest_ms
        self.lines += other.lines
        self.blank_lines += other.blank_lines
        ips_get = self.ips.get  # get(), not [], so validated keys are not validated again
        for ip, count in other.ips.items():
            self.ips[ip] = ips_get(ip, 0) + count
        for target, addend in (
            (self.invalid_reasons, other.invalid_reasons),
            (self.field_errors, other.field_errors),
            (self.minute_status, other.minute_status),
            (self.kinds, other.kinds),
            (self.ip_client_errors, other.ip_client_errors),
            (self.ip_server_errors, other.ip_server_errors),
            (self.paths, other.paths),
            (self.user_agents, other.user_agents),
        ):
            for key, value in addend.items():
                target[key] += value  # type: ignore[index]
        self.invalid_sample = sorted(
            self.invalid_sample + other.invalid_sample, key=lambda entry: (entry.source, entry.line)
        )[:INVALID_SAMPLE_SIZE]
        self.bytes_total += other.bytes_total
        self.bytes_records += other.bytes_records
        self.latency.merge(other.latency)
        self.inputs.extend(other.inputs)
        return self

    def _merge_field_mappings(self, entries: list[dict[str, Any]]) -> None:
        """Keep one entry per distinct mapping, counting the partials that used it."""
        for entry in entries:
            same = next((mine for mine in self.field_mappings if mine["mapping"] == entry["mapping"]), None)
            if same is None:
                self.field_mappings.append(dict(entry))
            else:
                same["partials"] = same.get("partials", 1) + entry.get("partials", 1)

    def to_partial(self) -> dict[str, Any]:
        """Return the versioned, JSON-serialisable partial (see ``PARTIAL_FORMAT``)."""
        self.finish()
        minutes: dict[str, dict[str, int]] = {}
        for key, n in sorted(self.minute_status.items()):
            minute, status = divmod(key, 1000)
            minutes.setdefault(str(minute), {})[str(status)] = n
        kinds: dict[tuple[int, str, str], int] = defaultdict(int)
        for (status, method, origin), n in self.kinds.items():
            kinds[status, MISSING if method is None else method, MISSING if origin is None else origin] += n
        return {
            "format": PARTIAL_FORMAT,
            "version": PARTIAL_VERSION,
            "mapping": asdict(self.mapping),
            "field_mappings": self.field_mappings,
            "window": None if self.window is None else self.window.to_dict(),
            "outside_window": {"earliest_ms": self.outside_earliest_ms, "latest_ms": self.outside_latest_ms},
            "inputs": self.inputs,
            "lines": self.lines,
            "blank_lines": self.blank_lines,
            "invalid_reasons": dict(sorted(self.invalid_reasons.items())),
            "invalid_sample": [entry.to_dict() for entry in self.invalid_sample],
            "field_errors": dict(sorted(self.field_errors.items())),
            "minutes": minutes,
            "kinds": [[status, method, origin, n] for (status, method, origin), n in sorted(kinds.items())],
            "ips": dict(self.ips),
            "ip_client_errors": dict(self.ip_client_errors),
            "ip_server_errors": dict(self.ip_server_errors),
            "paths": _fold_missing(self.paths),
            "user_agents": _fold_missing(self.user_agents),
            "bytes": {"total": self.bytes_total, "records": self.bytes_records},
            "latency_ms": self.latency.to_dict(),
        }

    @classmethod
    def from_partial(cls, data: Mapping[str, Any], *, where: str = "partial") -> Aggregate:
        """Rebuild an aggregate from ``to_partial()`` output; ValueError naming ``where`` if it is not one."""
        if not isinstance(data, Mapping) or data.get("format") != PARTIAL_FORMAT:
            raise ValueError(f"{where}: not a {PARTIAL_FORMAT} document")
        if data.get("version") not in READABLE_PARTIAL_VERSIONS:
            raise ValueError(
                f"{where}: partial version {data.get('version')!r} is not supported "
                f"(this analyzer reads versions {', '.join(map(str, READABLE_PARTIAL_VERSIONS))})"
            )
        try:
            aggregate = cls(FieldMapping(**data["mapping"]), Window.from_dict(data.get("window")))
            aggregate.field_mappings = [dict(entry) for entry in data.get("field_mappings", [])]
            outside = data.get("outside_window") or {}
            for name in ("earliest_ms", "latest_ms"):
                value = outside.get(name)
                if value is not None and (not isinstance(value, int) or isinstance(value, bool)):
                    raise ValueError(f"outside_window.{name} {value!r} is not an integer")
            aggregate.outside_earliest_ms = outside.get("earliest_ms")
            aggregate.outside_latest_ms = outside.get("latest_ms")
            aggregate.inputs = list(data["inputs"])
            aggregate.lines = int(data["lines"])
            aggregate.blank_lines = int(data["blank_lines"])
            aggregate.invalid_reasons.update(data["invalid_reasons"])
            aggregate.invalid_sample = [
                InvalidLine(e["source"], int(e["line"]), e["reason"], e["message"], e["text"])
                for e in data["invalid_sample"]
            ]
            aggregate.field_errors.update(data["field_errors"])
            for minute, statuses in data["minutes"].items():
                for status, n in statuses.items():
                    aggregate.minute_status[int(minute) * 1000 + int(status)] = int(n)
            for status, method, origin, n in data["kinds"]:
                aggregate.kinds[int(status), method, origin] = int(n)
            for ip, n in data["ips"].items():
                if parse_client_ip(ip) != ip:
                    raise ValueError(f"client IP {ip!r} is not in canonical form")
                aggregate.ips[ip] = int(n)
            aggregate.ip_client_errors.update(data["ip_client_errors"])
            aggregate.ip_server_errors.update(data["ip_server_errors"])
            aggregate.paths.update(data["paths"])
            aggregate.user_agents.update(data["user_agents"])
            aggregate.bytes_total = int(data["bytes"]["total"])
            aggregate.bytes_records = int(data["bytes"]["records"])
            aggregate.latency = LatencyHistogram.from_dict(data["latency_ms"])
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise ValueError(f"{where}: malformed partial ({type(exc).__name__}: {exc})") from None
        return aggregate


def _window_text(window: Window | None) -> str:
    if window is None:
        return "no window"
    described = window.to_dict()
    return f"[{described['since'] or '-inf'}, {described['until'] or '+inf'})"
