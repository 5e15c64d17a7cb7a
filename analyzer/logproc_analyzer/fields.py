"""Field extraction: timestamps to UTC, client IPs, HTTP status classes, and the field-name mapping.

Everything here is exact and strict; the ingest loop (``aggregate.py``) keeps a few small caches in
front of these functions so that the common shapes cost a dictionary lookup, but whatever the caches
do not recognise comes back here, so both paths give the same answer.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import re
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
    """The canonical text of an IPv4 or IPv6 address (IPv6 compressed, lower case); FieldError if not."""
    if not isinstance(value, str):
        raise FieldError("client_ip", f"not an IP address: {_short(value)}")
    if _CANONICAL_IPV4_RE.fullmatch(value):
        return value  # the common case, without building an address object
    try:
        address = ipaddress.ip_address(value.strip())
    except ValueError:
        raise FieldError("client_ip", f"not an IPv4 or IPv6 address: {_short(value)}") from None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        # RFC 5952 section 5 form; Python before 3.13 would print ::ffff:c000:201.
        return f"::ffff:{address.ipv4_mapped}"
    return str(address)


def parse_status(value: Any) -> int:
    """An HTTP status code 100..599 (an int or a 3-digit string); FieldError if not."""
    if isinstance(value, str) and len(value) == 3 and value.isascii() and value.isdigit():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or not 100 <= value <= 599:
        raise FieldError("status", f"not an HTTP status code (100-599): {_short(value)}")
    return value


def status_class(status: int) -> str:
    """'2xx' etc.; the error classes are 4xx (client errors) and 5xx (server errors)."""
    return f"{status // 100}xx"


@dataclass(frozen=True, slots=True)
class FieldMapping:
    """Which key of a JSON record holds each logical field (top-level keys).

    The defaults match the project's sample logs; ``with_overrides({"timestamp": "@timestamp"})``
    adapts them to other producers.
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

    def with_overrides(self, overrides: dict[str, str]) -> FieldMapping:
        known = {f.name for f in fields(self)}
        unknown = sorted(set(overrides) - known)
        if unknown:
            raise ValueError(f"unknown field(s) in mapping: {', '.join(unknown)}; known: {', '.join(sorted(known))}")
        return replace(self, **overrides)

    @classmethod
    def parse(cls, specs: list[str]) -> FieldMapping:
        """From 'field=key' strings, as given on the command line."""
        overrides: dict[str, str] = {}
        for spec in specs:
            name, sep, key = spec.partition("=")
            if not sep or not name or not key:
                raise ValueError(f"field mapping {spec!r} is not of the form field=key")
            overrides[name.strip()] = key.strip()
        return cls().with_overrides(overrides)
