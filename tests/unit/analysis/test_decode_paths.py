"""Every route a line can take counts it the same.

* the C loop (``_native_ingest.c``): route 1 reads a flat ASCII object itself, route 2 calls msgspec;
* the Python loop's fast path (msgspec decodes the mapped fields), the C loop's reference;
* the slow path alone (orjson, strict validation).

msgspec skips the fields it does not map without checking their UTF-8 or reading their numbers, and
reads integers beyond 64 bits exactly where orjson makes them floats; the C scanner has its own idea
of what is plain. These tests pin that a line counts the same whichever route it takes. Each line is
analysed after a line with the same IP and timestamp layout, so the caches are warm and the fast
routes really are taken.
"""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from logproc_analyzer import aggregate as aggregate_module
from logproc_analyzer.aggregate import Aggregate
from logproc_analyzer.fields import FieldMapping
from tests.fixtures.analyzer_routes import forced_route

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
    # What the C loop's flat scanner must hand on or read exactly like the decoders.
    b"{}",
    b" { } ",
    b'{ "timestamp" : "2026-11-24T10:00:00.000Z" , "client_ip" : "192.0.2.1" , "status" : 200 }\r',
    b'{"timestamp":"2026-11-24T10:00:00.000Z","client_ip":"192.0.2.1","status":200,}',
    b'{"timestamp":"2026-11-24T10:00:00.000Z","client_ip":"192.0.2.1","status":200 "x":1}',
    b'{"timestamp":"2026-11-24T10:00:00.000Z","client_ip":"192.0.2.1","status":200}x',
    b'{"timestamp":"2026-11-24T10:00:00.000Z","client_ip":"192.0.2.1","status" 200}',
    b'{"timestamp":"2026-11-24T10:00:00.000Z","client_ip":"192.0.2.1","status":}',
    b'{"timestamp":"2026-11-24T10:00:00.000Z","client_ip":"192.0.2.1","status":200',
    b'{"timestamp":"2026-11-24T10:00:00.000Z","client_ip":"192.0.2.1","status":200,"path":"/a}',
    b'{"timestamp":"2026-11-24T10:00:00.000Z","client_ip":"192.0.2.1\u0000","status":200}',
    HEAD + b',"path":"/a\x7fb","user_agent":"x\x01y"}',             # DEL is allowed, control bytes are not
    HEAD + b',"path":"\\/a\\"b","method":"G\\u0045T"}',                # escapes
    HEAD + b',"client_ip":"192.0.2.1"}',                              # the IP twice
    HEAD + b',"referrer":"a","referrer":"b"}',                        # an unmapped key twice
    HEAD + b',"bytes":-0,"latency_ms":-0.0}',
    HEAD + b',"bytes":0.0,"latency_ms":0}',
    HEAD + b',"bytes":123456789012345678,"latency_ms":999999999999999999}',
    HEAD + b',"bytes":1234567890123456789,"latency_ms":-1234567890123456789}',
    HEAD + b',"latency_ms":0.1000000000000000055511151231257827}',  # more digits than a double holds
    HEAD + b',"latency_ms":123456789012345.6,"user_agent":null}',
    HEAD + b',"latency_ms":1234567890123456.7}',                      # 17 significant digits
    HEAD + b',"latency_ms":0.0000000000000000000000123}',             # more than 22 decimals
    HEAD + b',"latency_ms":1.5E+2,"bytes":2e0}',
    HEAD + b',"latency_ms":true,"bytes":false}',
    HEAD + b',"latency_ms":"12.5","bytes":"12"}',
    HEAD + b',"method":true,"path":1,"user_agent":2.5,"source":null}',
    HEAD + b',"method":"' + b"M" * 600 + b'","path":"' + b"/p" * 300 + b'","user_agent":"' + b"u" * 513 + b'"}',
    HEAD + b',"source":"' + b"s" * 512 + b'","path":"' + b"/" * 512 + b'"}',
    HEAD + b',"status":2e2}',
    HEAD + b',"status":-200}',
    HEAD + b',"status":600}',
    HEAD + b',"status":99}',
    HEAD + b',"status":"200"}',
    b'{"timestamp":"2026-11-24T10:00:00+05:30","client_ip":"192.0.2.1","status":200}',
    b'{"timestamp":"2026-11-24T10:00:60.000Z","client_ip":"192.0.2.1","status":200}',
    b'{"timestamp":"2026-11-24T10:00","client_ip":"192.0.2.1","status":200}',
    b'{"timestamp":"2026-11-24","client_ip":"192.0.2.1","status":200}',
    b'{"timestamp":"2026-11-24T10:00:00.000000000000000Z","client_ip":"192.0.2.1","status":200}',
    b'{"timestamp":1764000000,"client_ip":"192.0.2.1","status":200}',
    b'{"timestamp":1764000000000,"client_ip":"192.0.2.1","status":200}',
    b'{"timestamp":-0,"client_ip":"192.0.2.1","status":200}',
    b'{"timestamp":123456789012345678,"client_ip":"192.0.2.1","status":200}',
    b'{"timestamp":1764000000.5,"client_ip":"192.0.2.1","status":200}',
    b'{"timestamp":"1764000000","client_ip":"192.0.2.1","status":200}',
    b'{"timestamp":null,"client_ip":"192.0.2.1","status":200}',
    b'{"timestamp":"2026-11-24T10:00:00.000Z","client_ip":"2001:db8::1","status":503}',
    b'{"timestamp":"2026-11-24T10:00:00.000Z","client_ip":"2001:DB8::1","status":404}',  # not canonical
    b'{"timestamp":"2026-11-24T10:00:00.000Z","client_ip":"192.0.2.01","status":200}',
    b'{"timestamp":"2026-11-24T10:00:00.000Z","client_ip":"' + b"1" * 600 + b'","status":200}',
    b'{"timestamp":"2026-11-24T10:00:00.000Z","client_ip":192,"status":200}',
    b'{"timestamp":"2026-11-24T10:00:00.000Z","client_ip":true,"status":200}',
    b'{"timestamp":"2026-11-24T10:00:00.000Z","client_ip":"","status":200}',
    b'{"timestamp":"2026-11-24T10:00:00.000Z","client_ip":"192.0.2.1","status":200,"nested":{"a":[1]}}',
    b'{"timestamp":"2026-11-24T10:00:00.000Z","client_ip":"192.0.2.1","status":200,"x":tru}',
    b'{"timestamp":"2026-11-24T10:00:00.000Z","client_ip":"192.0.2.1","status":200,"x":nul}',
    b'{"timestamp":"2026-11-24T10:00:00.000Z","client_ip":"192.0.2.1","status":200,"x":-}',
    b'{"timestamp":"2026-11-24T10:00:00.000Z","client_ip":"192.0.2.1","status":200,"x":1.}',
    b'{"timestamp":"2026-11-24T10:00:00.000Z","client_ip":"192.0.2.1","status":200,"x":.5}',
    b'{"timestamp":"2026-11-24T10:00:00.000Z","client_ip":"192.0.2.1","status":200,"x":1e}',
    b'{"timestamp":"2026-11-24T10:00:00.000Z","client_ip":"192.0.2.1","status":200,"x":+1}',
    b'{"timestamp":"2026-11-24T10:00:00.000Z","client_ip":"192.0.2.1","status":200,"x":0x1}',
    b'{"timestamp":"2026-11-24T10:00:00.000Z","client_ip":"192.0.2.1","status":200,"x":-01}',
    b'{"timestamp":"2026-11-24T10:00:00.000Z","client_ip":"192.0.2.1","status":200}\x0b',
    b'{"timestamp":"2026-11-24T10:00:00.000Z","client_ip":"192.0.2.1","status":200}\x00',
    b'{"timestamp":"2026-11-24T10:00:00.000Z","client_ip":"192.0.2.1","status":200,"st":1}',
    b'{"timestamp":"2026-11-24T10:00:00.000Z","client_ip":"192.0.2.1","status":200,"":1}',
    b'{"timestamp\":"x","client_ip":"192.0.2.1","status":200}',
    b'\t{"timestamp":"2026-11-24T10:00:00.000Z",\n"client_ip":"192.0.2.1","status":200}',
    HEAD + b',"bytes":-5}',
    HEAD + b',"latency_ms":true}',
    HEAD + b',"latency_ms":null,"bytes":null,"path":null,"method":null}',
    HEAD + b',"status":400}',
    HEAD + b',"status":499}',
    HEAD + b',"status":500}',
    HEAD + b',"status":599}',
    HEAD + b',"status":100}',
    HEAD + b',"status":399}',
    b'{"timestamp":"2026-11-24T10:00:99.000Z","client_ip":"192.0.2.1","status":200}',
    b'{"timestamp":"2026-11-24T10:00:00.000+00:00","client_ip":"192.0.2.1","status":200}',
    b'{"timestamp":"2026-11-24T10:00:00.000Y","client_ip":"192.0.2.1","status":200}',
    b'{"timestamp":"2026-11-24X10:00:00.000Z","client_ip":"192.0.2.1","status":200}',
    b'{"timestamp":"2026-11-24T10:01:00.000Z","client_ip":"192.0.2.1","status":200}',
]
# Numbers written as text (nginx JSON quotes $status, $body_bytes_sent, $request_time): the C scanner
# hands them to the msgspec route, whose decoder must read them exactly as the slow path does.
TS_IP = b'{"timestamp":"2026-11-24T10:00:00.000Z","client_ip":"192.0.2.1"'
NASTY += [TS_IP + b',"status":"' + status + b'"}' for status in
          (b"404", b"0404", b" 404", b"404 ", b"4o4", b"099", b"600", b"", b"\\u0034\\u0030\\u0034")]
NASTY += [HEAD + b',"bytes":"' + size + b'"}' for size in
          (b"512", b"-", b"00012", b"1e3", b"", b" 5", b"-1", b"18446744073709551616", b"\\u0035")]
NASTY += [HEAD + b',"latency_ms":"' + latency + b'"}' for latency in
          (b"0.012", b"12", b"nan", b"inf", b"-1", b"1_000", b" 5 ", b"abc", b"", b"1e400", b"1e308")]
NASTY += [TS_IP + b',"status":"503","bytes":"77","latency_ms":"0.5","method":"GET"}']
ROUTES = ("c", "python", "slow")


def _partial(lines: list[bytes], *, route: str, monkeypatch: pytest.MonkeyPatch,
             mapping: FieldMapping | None = None) -> dict[str, Any]:
    with forced_route(route, monkeypatch):
        aggregate = Aggregate(mapping)
        aggregate.ingest_lines(lines, source="in")
        return aggregate.to_partial()


def _all_routes_agree(lines: list[bytes], monkeypatch: pytest.MonkeyPatch) -> None:
    slow = _partial(lines, route="slow", monkeypatch=monkeypatch)
    assert _partial(lines, route="python", monkeypatch=monkeypatch) == slow
    if aggregate_module.native_ingest is not None:
        assert _partial(lines, route="c", monkeypatch=monkeypatch) == slow


@pytest.mark.parametrize("line", NASTY, ids=range(len(NASTY)))
def test_a_line_counts_the_same_on_every_route(line: bytes, monkeypatch: pytest.MonkeyPatch) -> None:
    # Twice WARM: the first teaches the caches, the second fills the C loop's memory of them.
    _all_routes_agree([WARM, WARM, line, line], monkeypatch)


@pytest.mark.parametrize("route", ["c", "python"])
def test_the_fast_path_is_taken_for_ordinary_lines(route: str, monkeypatch: pytest.MonkeyPatch) -> None:
    if route == "python":
        monkeypatch.setattr(aggregate_module, "native_ingest", None)
    elif aggregate_module.native_ingest is None:
        pytest.skip("the C loop is not built here")
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
    partial = _partial(lines, route="c" if aggregate_module.native_ingest else "python", monkeypatch=monkeypatch,
                       mapping=mapping)
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
        _all_routes_agree([WARM, line], patch)
    finally:
        patch.undo()


def test_a_latency_too_large_for_microseconds_is_a_field_error_not_a_crash() -> None:
    aggregate = Aggregate()
    aggregate.ingest_lines([HEAD + b',"latency_ms":1.7976931348623157e308}', HEAD + b',"latency_ms":2.5}'],
                           source="in")
    partial = aggregate.to_partial()
    assert partial["field_errors"] == {"latency_ms": 1}
    assert aggregate.valid == 2 and aggregate.latency.count == 1


@settings(max_examples=300, deadline=None)
@given(st.from_regex(r"-?(0|[1-9][0-9]{0,17})\.[0-9]{1,25}", fullmatch=True))
@example("0.00000000000000000000000")  # 23 decimals, all zeros: the C loop read past its table of powers
@example("0.0000000000000000000001")  # 22 decimals: the fast path's last exact power
def test_a_decimal_latency_is_read_as_the_nearest_double_on_every_route(text: str) -> None:
    # The histogram buckets at 0.5%, so the partials would not show a last-bit difference: compare
    # the exact values, which wait in _latency_pending until the histogram takes them.
    line = HEAD + b',"latency_ms":' + text.encode() + b"}"
    seen = {}
    for route in ROUTES:
        patch = pytest.MonkeyPatch()
        try:
            if route == "c" and aggregate_module.native_ingest is None:
                continue
            if route in ("python", "slow"):
                patch.setattr(aggregate_module, "native_ingest", None)
            if route == "slow":
                patch.setattr(aggregate_module, "record_decoder", lambda mapping: None)
            aggregate = Aggregate()
            aggregate.ingest_lines([WARM, WARM, line], source="in")
            seen[route] = [(value, type(value)) for value in aggregate._latency_pending]
        finally:
            patch.undo()
    assert all(keys == [(float(text), float)] for keys in seen.values()), seen
