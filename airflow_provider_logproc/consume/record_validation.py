"""Checking each converted log record for required fields and JSON types (``validate_records``)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from decimal import Decimal
from typing import Any

JSON_TYPES: dict[str, tuple[type, ...]] = {
    "string": (str,),
    "integer": (int,),
    "number": (int, float, Decimal),
    "boolean": (bool,),
    "object": (dict,),
    "array": (list,),
    "null": (type(None),),
}
# validate_records=True: what every access-log record needs (the analyzer's required fields).
LOG_RECORD_FIELDS: dict[str, str | tuple[str, ...]] = {
    "timestamp": ("string", "integer"),
    "client_ip": "string",
    "method": "string",
    "path": "string",
    "status": "integer",
}


ValidationSpec = bool | Sequence[str] | Mapping[str, str | Sequence[str]]


class RecordValidator:
    """Required fields of a log record, optionally with JSON types.

    ``["timestamp", "status"]``: the fields must be present and not null.
    ``{"status": "integer", "timestamp": ["string", "integer"]}``: present with one of those types
    (``string, integer, number, boolean, object, array, null``).
    """

    def __init__(self, spec: Sequence[str] | Mapping[str, str | Sequence[str]]):
        self.fields: dict[str, tuple[str, ...] | None] = {}
        if isinstance(spec, Mapping):
            for name, types in spec.items():
                names = (types,) if isinstance(types, str) else tuple(types)
                unknown = [t for t in names if t not in JSON_TYPES]
                if unknown or not names:
                    raise ValueError(
                        f"validate_records: field {name!r} has unknown type(s) {unknown or names}; "
                        f"known: {', '.join(JSON_TYPES)}")
                self.fields[name] = names
        elif isinstance(spec, str) or not isinstance(spec, Sequence):
            raise ValueError("validate_records must be False, a list of required fields or a {field: type} mapping")
        else:
            self.fields = dict.fromkeys(spec)
        if not self.fields:
            raise ValueError("validate_records names no fields")
        # The per-record fast path: exact Python types of the bare value model (bool is not int
        # there, as JSON wants). A miss, or any wrapper type, takes the full check below.
        self._required = tuple(name for name, types in self.fields.items() if types is None)
        self._typed = tuple((name, frozenset(t for json_type in types for t in JSON_TYPES[json_type]))
                            for name, types in self.fields.items() if types is not None)

    def problems(self, record: Any) -> str | None:
        if type(record) is dict:
            get = record.get
            for name in self._required:
                if get(name) is None:
                    break
            else:
                for name, exact in self._typed:
                    if type(get(name, _MISSING)) not in exact:
                        break
                else:
                    return None
        return self._problems(record)

    def _problems(self, record: Any) -> str | None:
        if not isinstance(record, dict):
            return f"record is {_json_type(record)}, not an object"
        missing = []
        wrong = []
        for name, types in self.fields.items():
            value = record.get(name)
            if name not in record or (types is None and value is None):
                missing.append(name)
            elif types is not None and not any(_is_type(value, t) for t in types):
                wrong.append(f"{name} is {_json_type(value)}, expected {' or '.join(types)}")
        if not missing and not wrong:
            return None
        parts = ([f"missing {', '.join(missing)}"] if missing else []) + wrong
        return "; ".join(parts)


_MISSING = object()


def _is_type(value: Any, json_type: str) -> bool:
    if isinstance(value, bool) and json_type in ("integer", "number"):
        return False
    return isinstance(value, JSON_TYPES[json_type])


def _json_type(value: Any) -> str:
    for name in ("null", "boolean", "integer", "number", "string", "object", "array"):
        if _is_type(value, name):
            return name
    return type(value).__name__


def make_validator(spec: ValidationSpec | None) -> RecordValidator | None:
    if spec is None or spec is False:
        return None
    if spec is True:
        return RecordValidator(LOG_RECORD_FIELDS)
    return RecordValidator(spec)
