"""Records as the analyzer reads them: the msgspec decoder of the mapped fields, and what a line becomes.

``record_decoder`` builds, per field mapping, a msgspec struct of just the mapped fields (each ``Any``,
absent = None), so the fast loops decode a line in C without building a dictionary. Numbers written as
text and dotted (nested) keys are read through properties exactly as the slow path reads them.
"""

from __future__ import annotations

import base64
import functools
import json
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, NamedTuple

import msgspec
import orjson

from logproc_analyzer.fields import KEY_FIELDS, FieldMapping, parse_client_ip

__all__ = [
    "MISSING",
    "InvalidLine",
    "InvalidRecord",
    "IpCounter",
    "Normalized",
    "TakeSlowPath",
    "decode_nothing",
    "fold_missing",
    "invalid_line_json",
    "loads_json_line",
    "mapped_keys",
    "record_decoder",
]

MISSING = "-"  # what an absent optional text field (method, path, user agent, source) counts as


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


class TakeSlowPath(Exception):
    """Raised inside the fast path to hand a line to the slow path.

    Always a new instance: re-raising one shared instance would chain every raise's traceback onto
    it and keep growing.
    """


class IpCounter(dict[str, int]):
    """Requests per client IP; the first sight of a key validates it as a canonical IP address.

    ``counter[ip] += 1`` raises FieldError for anything that is not an IPv4/IPv6 address and TakeSlowPath for
    an address not in canonical form (the slow path maps it to its canonical text), so the fast path
    pays for validation only once per distinct address.
    """

    __slots__ = ()

    def __missing__(self, key: str) -> int:
        if parse_client_ip(key) != key:
            raise TakeSlowPath
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


def decode_nothing(line: bytes) -> Any:
    """Decode no line: every line takes the slow path (no field can be decoded by msgspec)."""
    raise TakeSlowPath


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


def fold_missing(counter: Mapping[Any, int]) -> dict[str, int]:
    """Return ``counter`` with the missing-value key (None) counted under ``MISSING``."""
    folded: dict[str, int] = {}
    for key, count in counter.items():
        name = MISSING if key is None else key
        folded[name] = folded.get(name, 0) + count
    return folded
