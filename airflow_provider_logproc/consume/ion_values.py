"""Ion values as JSON: the orjson ``default=`` for the Ion types JSON lacks, and integers of any size.

Timestamps → ISO 8601 strings in a chosen time zone, blobs/clobs → base64 strings, decimals → JSON
numbers with the same digits, symbols → strings; annotations are dropped or kept as
``{"$annotations": [...], "$value": v}``. amazon.ion is imported only when a converter is made.
"""

from __future__ import annotations

import base64
import datetime as dt
import zoneinfo
from collections.abc import Callable, Mapping
from decimal import Decimal
from typing import Any

import orjson


def resolve_timezone(name: str | dt.tzinfo) -> dt.tzinfo:
    if isinstance(name, dt.tzinfo):
        return name
    if name.upper() in ("UTC", "Z"):
        return dt.UTC
    try:
        return zoneinfo.ZoneInfo(name)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"unknown time zone {name!r} (use an IANA name such as 'Europe/Berlin')") from None


def make_json_default(timezone: dt.tzinfo, keep_annotations: bool) -> Callable[[Any], Any]:
    """orjson ``default=``: called for every value orjson does not write natively.

    orjson runs with OPT_PASSTHROUGH_SUBCLASS and OPT_PASSTHROUGH_DATETIME, so every IonPy wrapper
    (annotated values, typed nulls, bools that subclass int) and every timestamp comes here.
    """
    from amazon.ion.core import IonType
    from amazon.ion.simple_types import IonPyBool, IonPyNull
    from amazon.ion.symbols import SymbolToken

    def plain(value: Any) -> Any:
        if value.__class__ is Decimal:  # most calls (every JSON number with a fraction): first
            return orjson.Fragment(str(value))
        if isinstance(value, IonPyNull) or getattr(value, "ion_type", None) is IonType.NULL:
            return None
        if isinstance(value, Decimal):
            return orjson.Fragment(str(value))  # the same digits: no float rounding
        if isinstance(value, dt.datetime):
            return _iso(value, timezone)
        if isinstance(value, bytes | bytearray):
            return base64.b64encode(value).decode("ascii")
        if isinstance(value, IonPyBool):
            return bool(value)
        if isinstance(value, str):
            return str(value)
        if isinstance(value, int):
            return _wide_int(int(value))
        if isinstance(value, float):
            return float(value)
        if isinstance(value, dict):
            return dict(value)
        if isinstance(value, list):
            return list(value)
        if isinstance(value, Mapping):  # IonPyDict (multi-map): the last value of a repeated field
            return dict(value.items())
        if isinstance(value, SymbolToken):
            return value.text
        raise TypeError(f"cannot write {type(value).__name__} as JSON")

    if not keep_annotations:
        return plain

    def annotated(value: Any) -> Any:
        annotations = getattr(value, "ion_annotations", None)
        if annotations:
            return {"$annotations": [getattr(a, "text", a) for a in annotations], "$value": plain(value)}
        return plain(value)

    return annotated


_INT64_MIN, _UINT64_MAX = -(1 << 63), (1 << 64) - 1


def _wide_int(value: int) -> Any:
    """orjson writes integers of up to 64 bits; Ion's have any size, and so do JSON's: keep the digits."""
    return value if _INT64_MIN <= value <= _UINT64_MAX else orjson.Fragment(str(value))


def _with_wide_ints(value: Any) -> Any:
    if type(value) is dict:
        return {key: _with_wide_ints(item) for key, item in value.items()}
    if type(value) is list:
        return [_with_wide_ints(item) for item in value]
    if type(value) is int:
        return _wide_int(value)
    return value  # IonPy wrappers reach orjson's default=, which widens their integers itself


def dumps_json(value: Any, default: Callable[[Any], Any], option: int) -> bytes:
    """orjson.dumps, except that integers beyond 64 bits are written with all their digits."""
    try:
        return orjson.dumps(value, default=default, option=option)
    except orjson.JSONEncodeError:
        return orjson.dumps(_with_wide_ints(value), default=default, option=option)


def _iso(moment: dt.datetime, timezone: dt.tzinfo) -> str:
    if moment.tzinfo is None:  # Ion's unknown local offset (-00:00): the instant is UTC
        moment = moment.replace(tzinfo=dt.UTC)
    local = moment.astimezone(timezone)
    spec = "milliseconds" if local.microsecond % 1000 == 0 else "microseconds"
    return local.isoformat(timespec=spec)
