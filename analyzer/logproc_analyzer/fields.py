"""Field extraction: timestamps to UTC, client IPs, HTTP status classes, and the field-name mapping.

Everything here is exact and strict; the ingest loop (``aggregate.py``) keeps a few small caches in
front of these functions so that the common shapes cost a dictionary lookup, but whatever the caches
do not recognise comes back here, so both paths give the same answer.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import re
import socket
from dataclasses import dataclass, fields, replace
from typing import Any

# Numbers at or above this are epoch milliseconds: 1e11 seconds would be the year 5138, while 1e11
# milliseconds is 1973, so real log timestamps are never ambiguous.
EPOCH_MS_THRESHOLD = 100_000_000_000
_EPOCH_ORDINAL = dt.date(1970, 1, 1).toordinal()
MONTHS = {name: number for number, name in enumerate(
    ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"), start=1)}

# ISO 8601 date-time (extended format; "T" or a space between date and time; a missing zone is UTC).
_ISO_RE = re.compile(
    r"(\d{4})-(\d\d)-(\d\d)[T ](\d\d):(\d\d)(?::(\d\d)(?:[.,](\d{1,9}))?)?"
    r"(Z|z|[+-]\d\d(?::?\d\d)?)?"
)
# The part of an ISO timestamp after the seconds: optional fraction, optional zone.
_ISO_TAIL_RE = re.compile(r"(?:[.,](\d{1,9}))?(Z|z|[+-]\d\d(?::?\d\d)?)?")
# Common Log Format time: 10/Oct/2000:13:55:36 -0700
_CLF_TIME_RE = re.compile(r"(\d\d)/([A-Z][a-z]{2})/(\d{4}):(\d\d):(\d\d):(\d\d) ([+-])(\d\d)(\d\d)")
_NUMBER_RE = re.compile(r"-?\d+(?:\.\d+)?")
# Dotted-quad IPv4 in canonical form: four decimal octets 0-255 without leading zeros.
_OCTET = r"(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)"
_CANONICAL_IPV4_RE = re.compile(rf"{_OCTET}(?:\.{_OCTET}){{3}}")


class FieldError(ValueError):
    """A field value that cannot be used; the message names the field and the value."""

    def __init__(self, field: str, problem: str) -> None:
        super().__init__(f"{field}: {problem}")
        self.field = field
        self.problem = problem


def _short(value: Any, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _zone_minutes(zone: str | None) -> int:
    """Offset east of UTC in minutes for 'Z', '+hh', '+hhmm' or '+hh:mm' (None means UTC)."""
    if not zone or zone in ("Z", "z"):
        return 0
    digits = zone[1:].replace(":", "")
    hours = int(digits[:2])
    minutes = int(digits[2:4]) if len(digits) > 2 else 0
    if hours > 23 or minutes > 59:
        raise ValueError(f"offset {zone!r} out of range")
    total = hours * 60 + minutes
    return -total if zone[0] == "-" else total


def _fraction_ms(fraction: str | None) -> int:
    return int((fraction or "0")[:3].ljust(3, "0"))


def _local_minute(year: int, month: int, day: int, hour: int, minute: int) -> int:
    """Minutes since the epoch of a wall-clock time taken as UTC (validates the calendar date)."""
    days = dt.date(year, month, day).toordinal() - _EPOCH_ORDINAL
    if hour > 23 or minute > 59:
        raise ValueError(f"time {hour:02d}:{minute:02d} out of range")
    return days * 1440 + hour * 60 + minute


def iso_prefix_minute(prefix: str) -> int:
    """Local epoch minute of 'YYYY-MM-DDTHH:MM' (exactly 16 characters); raises ValueError."""
    if len(prefix) != 16 or prefix[4] != "-" or prefix[7] != "-" or prefix[10] not in "T " \
            or prefix[13] != ":":
        raise ValueError(f"not an ISO date-time prefix: {prefix!r}")
    parts = (prefix[0:4], prefix[5:7], prefix[8:10], prefix[11:13], prefix[14:16])
    if not all(part.isascii() and part.isdigit() for part in parts):
        raise ValueError(f"not an ISO date-time prefix: {prefix!r}")
    return _local_minute(*(int(part) for part in parts))


def iso_seconds_valid(seconds: str) -> bool:
    """':SS' with SS in 00..59."""
    return (len(seconds) == 3 and seconds[0] == ":" and seconds[1:].isascii()
            and seconds[1:].isdigit() and int(seconds[1:]) < 60)


def iso_tail_offset(tail: str) -> int:
    """Zone offset in minutes of the part after the seconds ('.123Z', '+09:00', ''); ValueError if bad."""
    match = _ISO_TAIL_RE.fullmatch(tail)
    if match is None:
        raise ValueError(f"bad fraction or zone {tail!r}")
    return _zone_minutes(match.group(2))


def parse_timestamp_ms(value: Any) -> int:
    """Normalise a log timestamp to UTC epoch milliseconds.

    Accepts ISO 8601 date-times (with 'Z', an offset, or no zone = UTC), epoch seconds or
    milliseconds (numbers or digit strings), and Common Log Format times. Raises FieldError.
    """
    if isinstance(value, bool) or value is None:
        raise FieldError("timestamp", f"not a timestamp: {_short(value)}")
    if isinstance(value, int | float):
        if value != value or value in (float("inf"), float("-inf")):
            raise FieldError("timestamp", f"not a finite number: {_short(value)}")
        if value < 0:
            raise FieldError("timestamp", f"negative epoch time: {_short(value)}")
        if value >= EPOCH_MS_THRESHOLD:
            return int(value)
        # round(): 1.001 s is 1000.9999999999999 ms in binary floating point.
        return round(value * 1000) if isinstance(value, float) else value * 1000
    if not isinstance(value, str):
        raise FieldError("timestamp", f"not a timestamp: {_short(value)}")
    text = value.strip()
    try:
        if _NUMBER_RE.fullmatch(text):
            number = float(text) if "." in text else int(text)
            return parse_timestamp_ms(number)
        match = _ISO_RE.fullmatch(text)
        if match:
            year, month, day, hour, minute, second, fraction, zone = match.groups()
            local = _local_minute(int(year), int(month), int(day), int(hour), int(minute))
            seconds = int(second or 0)
            if seconds > 59:
                raise ValueError(f"second {seconds} out of range")
            return ((local - _zone_minutes(zone)) * 60 + seconds) * 1000 + _fraction_ms(fraction)
        match = _CLF_TIME_RE.fullmatch(text)
        if match:
            return clf_time_ms(match)
    except FieldError:
        raise
    except ValueError as exc:
        raise FieldError("timestamp", f"{exc} in {_short(value)}") from None
    raise FieldError("timestamp", f"unrecognised format: {_short(value)}")


def clf_time_ms(match: re.Match[str]) -> int:
    day, month_name, year, hour, minute, second, sign, off_h, off_m = match.groups()
    month = MONTHS.get(month_name)
    if month is None:
        raise ValueError(f"unknown month {month_name!r}")
    local = _local_minute(int(year), month, int(day), int(hour), int(minute))
    if int(second) > 59:
        raise ValueError(f"second {second} out of range")
    offset = _zone_minutes(f"{sign}{off_h}{off_m}")
    return ((local - offset) * 60 + int(second)) * 1000


def parse_client_ip(value: Any) -> str:
    """Return the canonical text of an IPv4 or IPv6 address (IPv6 compressed, lower case); FieldError if not."""
    if not isinstance(value, str):
        raise FieldError("client_ip", f"not an IP address: {_short(value)}")
    if _CANONICAL_IPV4_RE.fullmatch(value):
        return value  # the common case, without building an address object
    if ":" in value and "." not in value and "%" not in value:
        # IPv6 already in canonical form (as the C library prints it, which for addresses without an
        # embedded IPv4 part is Python's compressed form too): ~10x cheaper than ipaddress.
        try:
            if socket.inet_ntop(socket.AF_INET6, socket.inet_pton(socket.AF_INET6, value)) == value:
                return value
        except (OSError, ValueError):
            pass  # not an address at all, or not in this form: the full check below says which
    try:
        address = ipaddress.ip_address(value.strip())
    except ValueError:
        raise FieldError("client_ip", f"not an IPv4 or IPv6 address: {_short(value)}") from None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        # RFC 5952 section 5 form; Python before 3.13 would print ::ffff:c000:201.
        return f"::ffff:{address.ipv4_mapped}"
    return str(address)


def parse_status(value: Any) -> int:
    """Read an HTTP status code 100..599 (an int or a 3-digit string); FieldError if not."""
    if isinstance(value, str) and len(value) == 3 and value.isascii() and value.isdigit():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or not 100 <= value <= 599:
        raise FieldError("status", f"not an HTTP status code (100-599): {_short(value)}")
    return value


def status_class(status: int) -> str:
    """'2xx' etc.; the error classes are 4xx (client errors) and 5xx (server errors)."""
    return f"{status // 100}xx"


# The units a latency field may be in: shippers write seconds (nginx $request_time, Azure timeTaken,
# AWS ALB *_processing_time) or nanoseconds (ECS event.duration) as often as milliseconds.
LATENCY_UNITS = ("ms", "s", "us", "ns")
# The logical fields a mapping names a JSON key for.
KEY_FIELDS = ("timestamp", "client_ip", "status", "method", "path", "bytes", "latency_ms", "user_agent",
              "source")
REQUIRED_FIELDS = ("timestamp", "client_ip", "status")


@dataclass(frozen=True, slots=True)
class FieldMapping:
    """Which key of a JSON record holds each logical field, and the unit of the latency field.

    A key is a top-level key or a dotted path ("http.response.status_code"), looked up as that flat
    key first and then through nested objects, since shippers write ECS fields both ways. The
    defaults match the project's sample logs; ``with_overrides({"timestamp": "@timestamp"})`` adapts
    them to other producers, and ``detection.detect_mapping`` finds them in a sample of records.
    """

    timestamp: str = "timestamp"
    client_ip: str = "client_ip"
    status: str = "status"
    method: str = "method"
    path: str = "path"
    bytes: str = "bytes"
    latency_ms: str = "latency_ms"
    user_agent: str = "user_agent"
    source: str = "source"
    latency_unit: str = "ms"

    def __post_init__(self) -> None:
        if self.latency_unit not in LATENCY_UNITS:
            raise ValueError(f"latency_unit {self.latency_unit!r} is not one of {', '.join(LATENCY_UNITS)}")

    def with_overrides(self, overrides: dict[str, str]) -> FieldMapping:
        known = {f.name for f in fields(self)}
        unknown = sorted(set(overrides) - known)
        if unknown:
            raise ValueError(f"unknown field(s) in mapping: {', '.join(unknown)}; known: {', '.join(sorted(known))}")
        return replace(self, **overrides)

    def json_keys(self) -> tuple[str, ...]:
        """Return the JSON keys of KEY_FIELDS, in that order."""
        return tuple(getattr(self, name) for name in KEY_FIELDS)

    def latency_in_ms(self, value: float) -> float:
        """Convert a latency value in the field's unit to milliseconds. Smaller units divide (by an exact
        power of ten, so 12300000 ns is the same double as 12.3 ms), larger ones multiply."""
        unit = self.latency_unit
        if unit == "ms":
            return value
        if unit == "s":
            return value * 1000
        return value / (1000 if unit == "us" else 1_000_000)

    @staticmethod
    def parse_overrides(specs: list[str]) -> dict[str, str]:
        """'field=key' strings, as given on the command line, as a dictionary; ValueError if malformed."""
        known = {f.name for f in fields(FieldMapping)}
        overrides: dict[str, str] = {}
        for spec in specs:
            name, sep, key = spec.partition("=")
            name, key = name.strip(), key.strip()
            if not sep or not name or not key:
                raise ValueError(f"field mapping {spec!r} is not of the form field=key")
            if name not in known:
                raise ValueError(f"unknown field(s) in mapping: {name}; known: {', '.join(sorted(known))}")
            overrides[name] = key
        unit = overrides.get("latency_unit")
        if unit is not None and unit not in LATENCY_UNITS:
            raise ValueError(f"latency_unit {unit!r} is not one of {', '.join(LATENCY_UNITS)}")
        return overrides

    @classmethod
    def parse(cls, specs: list[str]) -> FieldMapping:
        """From 'field=key' strings, as given on the command line."""
        return cls().with_overrides(cls.parse_overrides(specs))


def field_value(record: dict[str, Any], key: str) -> Any:
    """Look up ``key`` in a decoded JSON object: the flat key if it is there and not null, else
    the dotted path through nested objects ("http.response.status_code" in {"http": {"response":
    {...}}}); None when neither is there."""
    value = record.get(key)
    if value is not None or "." not in key:
        return value
    node: Any = record
    for part in key.split("."):
        if not isinstance(node, dict):
            return None
        node = node.get(part)
        if node is None:
            return None
    return node


def key_paths(record: dict[str, Any], depth: int = 3) -> list[str]:
    """List the record's keys, those of nested objects as dotted paths (to ``depth`` levels): the keys an
    error message says it saw."""
    found: list[str] = []
    for key, value in record.items():
        if isinstance(value, dict) and value and depth > 1:
            found.extend(f"{key}.{inner}" for inner in key_paths(value, depth - 1))
        else:
            found.append(str(key))
    return found


def _iso_ms(text: str, flag: str) -> int:
    """Epoch ms of an ISO 8601 date ('2026-11-24' = its midnight UTC) or date-time (no zone = UTC)."""
    value = text.strip()
    if re.fullmatch(r"\d{4}-\d\d-\d\d", value):
        value += "T00:00Z"
    if _ISO_RE.fullmatch(value) is None:
        raise ValueError(f"{flag} {text!r} is not an ISO 8601 date or date-time")
    try:
        return parse_timestamp_ms(value)
    except FieldError as exc:
        raise ValueError(f"{flag} {text!r} is not a valid date-time ({exc.problem})") from None


@dataclass(frozen=True, slots=True)
class Window:
    """The half-open time window [since, until) an analysis is about (UTC epoch ms; None = open).

    Both ends fall on whole minutes: the per-minute table is the finest figure, so a record's minute
    alone says whether it is inside, and the fast paths decide it without parsing seconds.
    """

    since_ms: int | None
    until_ms: int | None

    @classmethod
    def parse(cls, since: str | None, until: str | None) -> Window | None:
        """From ISO 8601 texts (a missing zone is UTC); None when neither is given; ValueError naming
        the flag for anything else."""
        if since is None and until is None:
            return None
        since_ms = None if since is None else _iso_ms(since, "--since")
        until_ms = None if until is None else _iso_ms(until, "--until")
        for flag, value, text in (("--since", since_ms, since), ("--until", until_ms, until)):
            if value is not None and value % 60000:
                raise ValueError(f"{flag} {text!r} is not on a whole minute (the per-minute table is the "
                                 f"finest figure, so the window starts and ends on minutes)")
        if since_ms is not None and until_ms is not None and since_ms >= until_ms:
            raise ValueError(f"--since {since!r} is not before --until {until!r}")
        return cls(since_ms, until_ms)

    @property
    def since_minute(self) -> int | None:
        return None if self.since_ms is None else self.since_ms // 60000

    @property
    def until_minute(self) -> int | None:
        return None if self.until_ms is None else self.until_ms // 60000

    def contains_minute(self, minute: int) -> bool:
        return ((self.since_ms is None or minute >= self.since_ms // 60000)
                and (self.until_ms is None or minute < self.until_ms // 60000))

    def minute_range(self) -> tuple[int, int]:
        """[low, high) in epoch minutes, open ends as integers beyond any minute a record can have."""
        low = -(1 << 62) if self.since_ms is None else self.since_ms // 60000
        high = 1 << 62 if self.until_ms is None else self.until_ms // 60000
        return low, high

    def to_dict(self) -> dict[str, Any]:
        return {"since": None if self.since_ms is None else ms_iso(self.since_ms),
                "until": None if self.until_ms is None else ms_iso(self.until_ms),
                "since_ms": self.since_ms, "until_ms": self.until_ms}

    @classmethod
    def from_dict(cls, data: Any) -> Window | None:
        if data is None:
            return None
        since, until = data["since_ms"], data["until_ms"]
        if not all(v is None or (isinstance(v, int) and not isinstance(v, bool) and v % 60000 == 0)
                   for v in (since, until)):
            raise ValueError(f"window {data!r} does not hold whole-minute epoch milliseconds")
        return cls(since, until)


def ms_iso(ms: int) -> str:
    """UTC ISO 8601 text of epoch milliseconds, to the millisecond."""
    moment = dt.datetime(1970, 1, 1, tzinfo=dt.UTC) + dt.timedelta(milliseconds=ms)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def window_text(window: Window | None) -> str:
    """Describe ``window`` for a message: ``[since, until)``, open ends as infinities."""
    if window is None:
        return "no window"
    described = window.to_dict()
    return f"[{described['since'] or '-inf'}, {described['until'] or '+inf'})"
