"""The slow path of both ingest loops: a line parsed again with orjson (or as CLF) and validated strictly.

``SlowPath`` is mixed into ``Aggregate``: it fills the fast path's caches (timestamp pieces, IP aliases)
and keeps the exact extremes of records outside the analysis window.
"""

from __future__ import annotations

import re
from collections import defaultdict
from typing import IO, Any

import orjson

from logproc_analyzer.decoding import (
    MISSING,
    InvalidLine,
    InvalidRecord,
    Normalized,
    invalid_line_json,
    loads_json_line,
)
from logproc_analyzer.fields import (
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

__all__ = ["INVALID_SAMPLE_SIZE", "INVALID_TEXT_LIMIT", "SlowPath"]

INVALID_SAMPLE_SIZE = 20
INVALID_TEXT_LIMIT = 300
_CLF_RE = re.compile(
    r'(?P<host>\S+) \S+ \S+ \[(?P<time>[^\]]+)\] "(?P<request>(?:[^"\\]|\\.)*)" (?P<status>\d{3}) '
    r'(?P<bytes>\d+|-)(?: "(?P<referrer>(?:[^"\\]|\\.)*)" "(?P<agent>(?:[^"\\]|\\.)*)")?(?: .*)?'
)
_CLF_TIME_RE = re.compile(r"(\d\d)/([A-Z][a-z]{2})/(\d{4}):(\d\d):(\d\d):(\d\d) ([+-])(\d\d)(\d\d)")
_TIMESTAMP_CACHE_LIMIT = 200_000
_CLF_TIME_CACHE_LIMIT = 200_000


class SlowPath:
    """The slow path and the invalid-line bookkeeping of ``Aggregate`` (which sets these attributes)."""

    mapping: FieldMapping
    window: Window | None
    _minute_range: tuple[int, int] | None
    outside_earliest_ms: int | None
    outside_latest_ms: int | None
    lines: int
    invalid_reasons: defaultdict[str, int]
    invalid_sample: list[InvalidLine]
    field_errors: defaultdict[str, int]
    invalid_sink: IO[bytes] | None
    _iso_prefix: dict[str, int]
    _iso_seconds: set[str]
    _iso_tail: dict[str, int]
    _clf_time: dict[str, int]
    _ip_alias: dict[str, str]


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
