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
    # What the C loop's scanner must hand on or read exactly like the decoders.
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
# reads the plain ones itself (three-digit status, digits or '-' for a size, a plain number's characters
# for a latency) and hands the rest to the msgspec route; all must read them exactly as the slow path does.
TS_IP = b'{"timestamp":"2026-11-24T10:00:00.000Z","client_ip":"192.0.2.1"'
NASTY += [TS_IP + b',"status":"' + status + b'"}' for status in
          (b"404", b"0404", b" 404", b"404 ", b"4o4", b"099", b"600", b"", b"\\u0034\\u0030\\u0034")]
NASTY += [HEAD + b',"bytes":"' + size + b'"}' for size in
          (b"512", b"-", b"00012", b"1e3", b"", b" 5", b"-1", b"18446744073709551616", b"\\u0035")]
NASTY += [HEAD + b',"latency_ms":"' + latency + b'"}' for latency in
          (b"0.012", b"12", b"nan", b"inf", b"-1", b"1_000", b" 5 ", b"abc", b"", b"1e400", b"1e308",
           b"-0", b"-0.25", b"00.5", b".5", b"5.", b"0.5.", b"-", b"--1", b"x", b".", b"0.1234567890123456789012345",
           b"1" * 70 + b".5")]
NASTY += [TS_IP + b',"status":"503","bytes":"77","latency_ms":"0.5","method":"GET"}']
# One latency written as an integer, as text and as a fraction: keys 12 and 12.0 are one dict key.
MIXED_LATENCIES = [HEAD + b',"latency_ms":12}', HEAD + b',"latency_ms":"12"}', HEAD + b',"latency_ms":12.0}',
                   HEAD + b',"latency_ms":"12.0"}']
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


@pytest.mark.parametrize("order", [1, -1])
def test_latencies_written_alike_as_numbers_and_text_count_the_same_on_every_route(
        order: int, monkeypatch: pytest.MonkeyPatch) -> None:
    _all_routes_agree([WARM, *MIXED_LATENCIES[::order]], monkeypatch)


def _lines_decoded_by_route_two(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """Record every line the C loop hands to its msgspec route (route 2) from here on."""
    decoded: list[Any] = []
    real = aggregate_module.record_decoder

    class CountingDecoder:
        def __init__(self, decoder: Any) -> None:
            self.decoder = decoder

        def decode(self, line: Any) -> Any:
            decoded.append(line)
            return self.decoder.decode(line)

    monkeypatch.setattr(aggregate_module, "record_decoder", lambda mapping: CountingDecoder(real(mapping)))
    return decoded


def test_the_c_scanner_reads_numbers_written_as_text_itself(monkeypatch: pytest.MonkeyPatch) -> None:
    # nginx's JSON quotes every number: lines of plain quoted numbers must not go to route 2 (msgspec), a
    # third of the C loop's speed; an odd one (a status of four digits) still does.
    if aggregate_module.native_ingest is None:
        pytest.skip("the C loop is not built here")
    decoded = _lines_decoded_by_route_two(monkeypatch)
    aggregate = Aggregate()
    lines = [TS_IP + b',"status":"' + status + b'","bytes":"' + size + b'","latency_ms":"' + latency + b'"}'
             for status, size, latency in ((b"200", b"512", b"0.037"), (b"404", b"-", b"12"), (b"503", b"0", b"-0.5"))]
    aggregate.ingest_lines([*lines, TS_IP + b',"status":"2000"}'], source="in")
    assert len(decoded) == 1 and b'"2000"' in bytes(decoded[0])
    partial = aggregate.to_partial()
    assert partial["bytes"] == {"total": 512, "records": 2} and aggregate.valid == 3


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


@settings(max_examples=200, deadline=None)
@given(st.from_regex(r"-?(0|[1-9][0-9]{0,17})(\.[0-9]{1,25})?", fullmatch=True))
def test_a_latency_written_as_text_is_read_as_its_float_on_every_route(text: str) -> None:
    # float(text), as decoding._latency_number reads it: a float even without a point.
    line = HEAD + b',"latency_ms":"' + text.encode() + b'"}'
    for route in ROUTES:
        if route == "c" and aggregate_module.native_ingest is None:
            continue
        patch = pytest.MonkeyPatch()
        try:
            with forced_route(route, patch):
                aggregate = Aggregate()
                aggregate.ingest_lines([WARM, WARM, line], source="in")
                assert [(value, type(value)) for value in aggregate._latency_pending] == [(float(text), float)], route
        finally:
            patch.undo()


# ECS as Filebeat writes it: the fields in nested objects, read by the C scanner itself where the line is
# objects, arrays and plain values. Keys drawn from the mapping's parts and others, repeated at any level
# (the last one counts), arrays and nulls on the paths, objects and arrays where a field's value should be.
ECS_MAPPING = FieldMapping().with_overrides({
    "timestamp": "@timestamp", "client_ip": "source.ip", "status": "http.response.status_code",
    "method": "http.request.method", "path": "url.path", "user_agent": "user_agent.original",
    "source": "service.name", "bytes": "http.response.body.bytes", "latency_ms": "event.duration",
    "latency_unit": "ns"})
_ECS_BASE = ('"@timestamp":"2026-11-24T10:00:00.000Z","source":{"ip":"192.0.2.1","port":5000},'
             '"http":{"request":{"method":"GET"},"response":{"status_code":404,"body":{"bytes":512}}},'
             '"url":{"path":"/a"},"event":{"duration":12300000},"service":{"name":"web"}')
_ECS_KEYS = st.sampled_from(["source", "ip", "http", "response", "status_code", "body", "bytes", "url", "path",
                             "event", "duration", "source.ip", "url.path", "x", "ip.x", "@timestamp"])
_ECS_SCALARS = st.sampled_from(['"192.0.2.9"', '"2001:db8::1"', "200", "503", '"404"', '"-"', "null", "true",
                                "1.5", '"/b"', '"2026-11-24T11:00:00Z"', '"caf\\u00e9"', "7e2", '""'])


def _json_object(pairs: list[tuple[str, str]]) -> str:
    return "{" + ",".join(f'"{key}":{value}' for key, value in pairs) + "}"


_ECS_VALUES = st.recursive(
    _ECS_SCALARS,
    lambda inner: st.one_of(st.lists(inner, max_size=3).map(lambda items: "[" + ",".join(items) + "]"),
                            st.lists(st.tuples(_ECS_KEYS, inner), max_size=4).map(_json_object)),
    max_leaves=12)


@settings(max_examples=400, deadline=None)
@given(st.lists(st.tuples(_ECS_KEYS, _ECS_VALUES), max_size=4), st.booleans())
def test_nested_records_count_the_same_on_every_route(extra: list[tuple[str, str]], before: bool) -> None:
    more = ",".join(f'"{key}":{value}' for key, value in extra)
    body = (more + "," + _ECS_BASE if before else _ECS_BASE + "," + more) if more else _ECS_BASE
    line = ("{" + body + "}").encode()
    patch = pytest.MonkeyPatch()
    try:
        warm = ("{" + _ECS_BASE + "}").encode()
        slow = _partial([warm, line], route="slow", monkeypatch=patch, mapping=ECS_MAPPING)
        assert _partial([warm, line], route="python", monkeypatch=patch, mapping=ECS_MAPPING) == slow
        if aggregate_module.native_ingest is not None:
            assert _partial([warm, line], route="c", monkeypatch=patch, mapping=ECS_MAPPING) == slow, line
    finally:
        patch.undo()


def test_the_c_scanner_reads_nested_records_itself(monkeypatch: pytest.MonkeyPatch) -> None:
    # ECS lines of objects (and arrays off the fields' paths) must not go to route 2 (msgspec).
    if aggregate_module.native_ingest is None:
        pytest.skip("the C loop is not built here")
    decoded = _lines_decoded_by_route_two(monkeypatch)
    aggregate = Aggregate(ECS_MAPPING)
    lines = [("{" + _ECS_BASE + ',"tags":["beats"],"ecs":{"version":"8.11"}}').encode(),
             ('{"source.ip":"192.0.2.7",' + _ECS_BASE + "}").encode(),
             ("{" + _ECS_BASE + ',"source":{"ip":["192.0.2.8"]}}').encode()]  # a list where the IP should be
    aggregate.ingest_lines(lines, source="in")
    assert len(decoded) == 1 and b'["192.0.2.8"]' in bytes(decoded[0])
    partial = aggregate.to_partial()
    assert partial["ips"] == {"192.0.2.1": 1, "192.0.2.7": 1} and aggregate.valid == 2
