"""The fast path (msgspec decodes the mapped fields) and the slow path (orjson, strict validation) agree.

msgspec skips the fields it does not map without checking their UTF-8 or reading their numbers, and
reads integers beyond 64 bits exactly where orjson makes them floats; these tests pin that a line
counts the same whichever path it takes. Each line is analysed after a line with the same IP and
timestamp layout, so the fast path's caches are warm and it really is taken.
"""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from airflow_provider_logproc.analysis import aggregate as aggregate_module
from airflow_provider_logproc.analysis.aggregate import Aggregate
from airflow_provider_logproc.analysis.fields import FieldMapping

HEAD = b'{"timestamp":"2026-11-24T10:00:00.000Z","client_ip":"192.0.2.1","status":200'
WARM = HEAD + b"}"
U64 = 2**64 - 1
BIG = str(10**25 + 123_456_789).encode()  # orjson reads it as the nearest double, 1.0000000000000000906e25

NASTY = [
    HEAD + b',"referrer":"\xff"}',                       # invalid UTF-8 in a field nobody reads
    HEAD + b',"referrer":"caf\xc3\xa9"}',                # valid UTF-8
    HEAD + b',"method":"\xed\xa0\x80"}',                 # an encoded surrogate: not UTF-8
    HEAD + b',"referrer":1e999}',                        # beyond a double: orjson refuses, msgspec skips
    HEAD + b',"referrer":' + b"1" * 400 + b"}",
    HEAD + b',"referrer":-1E+309}',
    HEAD + b',"latency_ms":1e999}',
    HEAD + b',"latency_ms":-1e999}',
    HEAD + b',"latency_ms":1e-999}',
    HEAD + b',"bytes":' + str(U64).encode() + b"}",
    HEAD + b',"bytes":' + str(U64 + 1).encode() + b"}",
    HEAD + b',"bytes":' + b"9" * 30 + b"}",
    HEAD + b',"latency_ms":' + str(-(2**63)).encode() + b"}",
    HEAD + b',"latency_ms":' + str(-(2**63) - 1).encode() + b"}",
    HEAD + b',"latency_ms":' + str(U64 + 1).encode() + b"}",
    HEAD + b',"latency_ms":' + BIG + b"}",
    HEAD + b',"latency_ms":0.1e1,"bytes":-0}',
    HEAD + b',"latency_ms":2.2250738585072011e-308}',
    HEAD + b',"latency_ms":17976931348623157e292}',    # finite, but not in microseconds
    HEAD + b',"referrer":NaN}',
    HEAD + b',"referrer":Infinity}',
    HEAD + b',"referrer":"\\ud800"}',
    HEAD + b',"referrer":"\\ud83d\\ude00","user_agent":"\\u00e9\\/"}',
    HEAD + b',"referrer":"tab\there"}',
    HEAD + b',"referrer":' + b"[" * 2000 + b"]" * 2000 + b"}",
    HEAD + b',"referrer":' + b"[" * 1000 + b"]" * 1000 + b"}",
    HEAD + b',"referrer":01}',
    HEAD + b',"referrer":[1,]}',
    HEAD + b',"status":404}',                            # duplicate key: the last one counts
    HEAD + b',"st\\u0061tus":503}',                      # an escaped key is the same key
    HEAD + b"} ",
    HEAD + b"}\r",
    b" \t" + HEAD + b"}",
    b"\xef\xbb\xbf" + HEAD + b"}",                      # byte order mark
    HEAD + b'} {"timestamp":0}',                        # two values on one line
    HEAD + b"}}",
    HEAD,                                               # truncated
    HEAD + b',"status":true}',
    HEAD + b',"status":200.0}',
    HEAD + b',"method":1.5,"path":{"a":1},"source":["x"]}',
    HEAD + b',"timestamp":' + str(U64).encode() + b"}",
    HEAD + b',"timestamp":' + str(U64 + 1).encode() + b"}",
    HEAD + b',"timestamp":' + BIG + b"}",
    HEAD + b',"timestamp":-1}',
    HEAD + b',"timestamp":1.5e9}',
    HEAD + b',"client_ip":null}',
    b'{"topic":"t","offset":1,"timestamp":1,"value":' + WARM + b"}",
    b"[" + WARM + b"]",
    b"",
    b"   ",
]


def _partial(lines: list[bytes], *, fast: bool, monkeypatch: pytest.MonkeyPatch,
             mapping: FieldMapping | None = None) -> dict[str, Any]:
    with monkeypatch.context() as patch:
        if not fast:
            patch.setattr(aggregate_module, "record_decoder", lambda mapping: None)
        aggregate = Aggregate(mapping)
        aggregate.ingest_lines(lines, source="in")
        return aggregate.to_partial()


@pytest.mark.parametrize("line", NASTY, ids=range(len(NASTY)))
def test_a_line_counts_the_same_on_either_path(line: bytes, monkeypatch: pytest.MonkeyPatch) -> None:
    lines = [WARM, line, line]
    assert _partial(lines, fast=True, monkeypatch=monkeypatch) == \
        _partial(lines, fast=False, monkeypatch=monkeypatch)


def test_the_fast_path_is_taken_for_ordinary_lines(monkeypatch: pytest.MonkeyPatch) -> None:
    slow_lines: list[bytes] = []
    normalize = Aggregate._normalize_line

    def spy(self: Aggregate, line: bytes) -> Any:
        slow_lines.append(line)
        return normalize(self, line)

    monkeypatch.setattr(Aggregate, "_normalize_line", spy)
    aggregate = Aggregate()
    aggregate.ingest_lines([WARM, HEAD + b',"referrer":1e999,"bytes":5}', HEAD + b',"latency_ms":2.5}'],
                           source="in")
    # First sights of the IP and timestamp pieces are validated inline, not on the slow path.
    assert slow_lines == []
    assert aggregate.valid == 3


def test_two_fields_mapped_to_one_key_still_analyse(monkeypatch: pytest.MonkeyPatch) -> None:
    mapping = FieldMapping().with_overrides({"path": "url", "source": "url"})
    assert aggregate_module.record_decoder(mapping) is None
    lines = [WARM, HEAD + b',"url":"/x"}']
    partial = _partial(lines, fast=True, monkeypatch=monkeypatch, mapping=mapping)
    assert partial["paths"] == {"-": 1, "/x": 1}
    assert partial["kinds"] == [[200, "-", "-", 1], [200, "-", "/x", 1]]


json_scalars = st.one_of(st.none(), st.booleans(), st.integers(-(2**70), 2**70),
                         st.floats(allow_nan=False, allow_infinity=False), st.text(max_size=8))


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(st.sampled_from(["timestamp", "client_ip", "status", "method", "path", "bytes",
                                        "latency_ms", "user_agent", "source", "referrer"]),
                       st.one_of(json_scalars, st.lists(json_scalars, max_size=2)), max_size=10))
def test_random_field_values_count_the_same_on_either_path(fields: dict[str, Any]) -> None:
    import json

    line = HEAD + (b"," + json.dumps(fields)[1:].encode() if fields else b"}")
    patch = pytest.MonkeyPatch()
    try:
        assert _partial([WARM, line], fast=True, monkeypatch=patch) == \
            _partial([WARM, line], fast=False, monkeypatch=patch)
    finally:
        patch.undo()


def test_a_latency_too_large_for_microseconds_is_a_field_error_not_a_crash() -> None:
    aggregate = Aggregate()
    aggregate.ingest_lines([HEAD + b',"latency_ms":1.7976931348623157e308}', HEAD + b',"latency_ms":2.5}'],
                           source="in")
    partial = aggregate.to_partial()
    assert partial["field_errors"] == {"latency_ms": 1}
    assert aggregate.valid == 2 and aggregate.latency.count == 1
