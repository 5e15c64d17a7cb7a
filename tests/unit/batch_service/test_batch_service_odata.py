"""The $filter and $select subset of the Batch list operations."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from logproc_local.batch_service.odata import (
    ODataError,
    apply_select,
    parse_filter,
    parse_select,
    resolve,
)

TASKS: list[dict[str, Any]] = [
    {"id": "part-001", "state": "completed", "executionInfo": {"result": "success", "exitCode": 0},
     "creationTime": "2026-03-01T00:00:00.000000Z"},
    {"id": "part-002", "state": "completed", "executionInfo": {"result": "failure", "exitCode": 3},
     "creationTime": "2026-03-02T00:00:00.000000Z"},
    {"id": "merge", "state": "running", "executionInfo": {"retryCount": 0},
     "creationTime": "2026-03-03T00:00:00.000000Z"},
    {"id": "o'brien", "state": "active", "creationTime": "2026-03-04T00:00:00.000000Z"},
]


def ids(expression: str) -> list[str]:
    predicate = parse_filter(expression)
    return [task["id"] for task in TASKS if predicate(task)]


@pytest.mark.parametrize(("expression", "expected"), [
    ("state eq 'completed'", ["part-001", "part-002"]),
    ("state eq 'COMPLETED'", ["part-001", "part-002"]),
    ("state ne 'completed'", ["merge", "o'brien"]),
    ("executionInfo/result eq 'failure'", ["part-002"]),
    ("executionInfo/exitCode gt 0", ["part-002"]),
    ("executionInfo/exitCode ge 0 and state eq 'completed'", ["part-001", "part-002"]),
    ("state eq 'running' or state eq 'active'", ["merge", "o'brien"]),
    ("not (state eq 'completed')", ["merge", "o'brien"]),
    ("startswith(id, 'part-')", ["part-001", "part-002"]),
    ("startswith(id,'part-') and not executionInfo/result eq 'success'", ["part-002"]),
    ("id eq 'o''brien'", ["o'brien"]),
    ("creationTime ge datetime'2026-03-03T00:00:00Z'", ["merge", "o'brien"]),
    ("executionInfo/result eq null", ["merge", "o'brien"]),
    ("", ["part-001", "part-002", "merge", "o'brien"]),
    ("(state eq 'completed' and (executionInfo/exitCode eq 0 or executionInfo/exitCode eq 3))",
     ["part-001", "part-002"]),
])
def test_filters(expression, expected):
    assert ids(expression) == expected


@pytest.mark.parametrize(("expression", "message"), [
    ("state eq", "end of expression"),
    ("state equals 'x'", "expected one of eq"),
    ("state eq 'x' extra", "unexpected 'extra'"),
    ("contains(id, 'x')", "unsupported function"),
    ("(state eq 'x'", "end of expression"),
    ("state eq 'unterminated", "unexpected character"),
    ("creationTime gt datetime'yesterday'", "bad datetime"),
])
def test_bad_filters_say_what_and_where(expression, message):
    with pytest.raises(ODataError, match=message):
        parse_filter(expression)


def test_select_keeps_named_properties_and_annotations():
    document = {"odata.metadata": "m", "id": "t", "state": "active", "executionInfo": {"retryCount": 0}}
    assert apply_select(document, parse_select("id, executionInfo/retryCount")) == {
        "odata.metadata": "m", "id": "t", "executionInfo": {"retryCount": 0}}
    assert apply_select(document, parse_select(None)) == document
    with pytest.raises(ODataError, match="not a property name"):
        parse_select("id,1bad")


def test_resolve_missing_parts_is_none():
    assert resolve({"a": {"b": 1}}, "a/b") == 1
    assert resolve({"a": {"b": 1}}, "a/c") is None
    assert resolve({"a": 5}, "a/b") is None


@given(st.text(alphabet=st.characters(blacklist_categories=["Cs"]), max_size=40))
def test_string_literals_round_trip(value):
    literal = "'" + value.replace("'", "''") + "'"
    predicate = parse_filter(f"id eq {literal}")
    assert predicate({"id": value})
