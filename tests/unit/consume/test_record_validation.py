"""Required fields and JSON types of converted records (consume/record_validation.py)."""

from __future__ import annotations

from typing import Any

import pytest

from airflow_provider_logproc.consume.record_validation import LOG_RECORD_FIELDS, RecordValidator, make_validator


def test_validator_specs():
    required = RecordValidator(["a", "b"])
    assert required.problems({"a": 0, "b": False}) is None
    assert required.problems({"a": None}) == "missing a, b"
    typed = RecordValidator({"n": ["integer", "null"], "x": "number"})
    assert typed.problems({"n": None, "x": 1.5}) is None
    assert typed.problems({"n": True, "x": 1}) == "n is boolean, expected integer or null"
    assert make_validator(False) is None and make_validator(None) is None
    with pytest.raises(ValueError, match="unknown type"):
        RecordValidator({"n": "int"})
    with pytest.raises(ValueError, match="names no fields"):
        RecordValidator([])
    with pytest.raises(ValueError, match="validate_records must be"):
        RecordValidator("status")  # type: ignore[arg-type]


def test_the_validator_fast_path_agrees_with_the_full_check():
    from decimal import Decimal

    from amazon.ion.simple_types import IonPyInt

    values = [None, True, 0, 7, IonPyInt.from_value(None, 5), 1.5, Decimal("1.50"), "x", "", {}, [], {"a": 1}]
    specs: list[Any] = [True, ["status"], {"status": "integer"}, {"status": ["number", "null"]}, {"status": "boolean"},
                        {"status": "object", "path": "string"}]
    for spec in specs:
        validator = RecordValidator(LOG_RECORD_FIELDS if spec is True else spec)
        for value in values:
            for record in ({"status": value}, {"status": value, "path": "/"}, {"path": value}, {}, value):
                base = {"timestamp": 1, "client_ip": "1.2.3.4", "method": "GET", "path": "/", "status": 200}
                for candidate in (record, {**base, **record} if isinstance(record, dict) else record):
                    assert validator.problems(candidate) == validator._problems(candidate), (spec, candidate)
