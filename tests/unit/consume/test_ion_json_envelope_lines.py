"""The shortcut for the consume step's text envelopes writes what the Ion reader route writes.

``convert_ion_to_json`` copies an envelope line's value when its JSON text is canonical, reads a
line of that shape with another value through the Ion reader alone, and hands any other line (and
everything after it) to the streaming Ion reader. Every input here is converted both ways —
``envelope_lines=True`` and ``False`` — and must give the same output, the same set-aside records
and the same result or error.
"""

from __future__ import annotations

import io
import json
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from airflow_provider_logproc.consume import ion_json, ion_values
from airflow_provider_logproc.consume.encoders import make_encoder
from airflow_provider_logproc.consume.ion_json import CorruptIonError, convert_ion_to_json

HEAD = b'{topic:"logs",partition:0,offset:7,timestamp:2024-06-01T10:20:30.405Z,key:"web-1",value:'
TAIL = b",headers:[]}"


def both_ways(data: bytes, **options: Any) -> tuple[Any, Any]:
    outcomes: list[tuple[Any, ...]] = []
    for envelope_lines in (True, False):
        out, invalid = io.BytesIO(), io.BytesIO()
        try:
            result = convert_ion_to_json(io.BytesIO(data), out.write, invalid.write, source_name="in.ion",
                                         envelope_lines=envelope_lines, **options)
        except CorruptIonError as error:
            # The record index must agree; the byte count is the reader's read-ahead, not a position.
            outcomes.append(("corrupt", str(error).split(" (")[0], out.getvalue()))
        else:
            outcomes.append((out.getvalue(), invalid.getvalue(), result))
    return outcomes[0], outcomes[1]


def envelope_file(values: list[bytes | None]) -> bytes:
    """Envelopes of JSON values written by the consume step's text encoder (None: a null value)."""
    encoder = make_encoder("text", "string", "json")
    for offset, value in enumerate(values):
        encoder.add("logs", offset % 3, offset, 1_717_236_000_000 + offset * 1234, b"key-%d" % offset, value, None)
    return encoder.preamble() + encoder.drain()


json_leaves = st.one_of(
    st.none(), st.booleans(), st.integers(-(2**70), 2**70),
    st.floats(allow_nan=False, allow_infinity=False), st.text(max_size=6),
    st.decimals(allow_nan=False, allow_infinity=False, places=3).map(lambda d: orjson.Fragment(str(d))),
)
json_values = st.recursive(json_leaves, lambda inner: st.one_of(
    st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=4), inner, max_size=3)), max_leaves=8)


def _no_default(value: Any) -> Any:
    raise TypeError(type(value).__name__)


def as_json_text(value: Any, style: str) -> bytes:
    """The same value written canonically (orjson) or as other producers write it."""
    canonical = ion_values.dumps_json(value, _no_default, 0)  # integers of any size, like Ion's
    if style == "orjson":
        return canonical
    plain = json.loads(canonical)
    if style == "spaced":
        return json.dumps(plain).encode()
    return json.dumps(plain, ensure_ascii=False, separators=(",", ":")).encode()


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(json_values, st.sampled_from(["orjson", "orjson", "spaced", "unicode"])), max_size=8),
       st.sampled_from(["jsonl", "json_array"]), st.booleans())
def test_random_values_convert_the_same_both_ways(items: list[tuple[Any, str]], output_format: str,
                                                 validate: bool) -> None:
    data = envelope_file([as_json_text(value, style) for value, style in items])
    fast, reader = both_ways(data, output_format=output_format,
                             validate_records={"a": ["string", "number"]} if validate else False)
    assert fast == reader


ODD_LINES = [
    HEAD + b'{"a":1,"b":37.50}' + TAIL,                  # a decimal with its own digits: not canonical
    HEAD + b'{"a":1e5,"b":-0.0,"c":0.00001,"d":1e-7}' + TAIL,
    HEAD + b'{"big":123456789012345678901}' + TAIL,      # orjson reads a float; Ion an integer
    HEAD + b'{"s":"\\u00e9\\/\\ud83d\\ude00"}' + TAIL,
    HEAD + b"{a:'''ion only'''}" + TAIL,                # Ion, not JSON
    HEAD + b'{"a":"x"}' + TAIL + b" ",
    HEAD + b'{"a":' + TAIL,                             # truncated: corrupt
    HEAD + b'"text"' + TAIL,
    HEAD + b"null" + TAIL,
    HEAD.replace(b"2024-06-01T10:20", b"2024-02-30T10:20") + b'{"a":"x"}' + TAIL,  # no such day
    HEAD.replace(b"10:20:30", b"24:20:30") + b'{"a":"x"}' + TAIL,
    HEAD.replace(b'"web-1"', b"null") + b'{"a":"x"}' + TAIL,
    HEAD.replace(b'"web-1"', b'"w\\u00e9b"') + b'{"a":"x"}' + TAIL,
    HEAD.replace(b'"web-1"', b'"w\\qb"') + b'{"a":"x"}' + TAIL,   # not an escape Ion knows
    HEAD.replace(b'"web-1"', b'"w\xffb"') + b'{"a":"x"}' + TAIL,    # not UTF-8
    HEAD.replace(b'"logs"', b'"lo\x01gs"') + b'{"a":"x"}' + TAIL,   # a control character
    HEAD.replace(b"offset:7", b"offset:007") + b'{"a":"x"}' + TAIL,
    b'{topic:"logs",value:{"a":"x"}}',                    # another layout
    b"{value:" + b'{"a":"x"}' + b"}",
    b'$ion_symbol_table::{symbols:["x"]}',
    b"$ion_1_0",
    b"",
    b"  ",
    b"42",
    HEAD + b'{"a":"x"}' + TAIL + b"\r",
]


@pytest.mark.parametrize("line", ODD_LINES, ids=range(len(ODD_LINES)))
@pytest.mark.parametrize("output_format", ["jsonl", "json_array"])
@pytest.mark.parametrize("validate", [False, True])
def test_odd_lines_between_envelopes_convert_the_same_both_ways(line: bytes, output_format: str,
                                                                validate: bool) -> None:
    good = HEAD + b'{"a":"x","n":1}' + TAIL
    data = b"$ion_1_0\n" + good + b"\n" + line + b"\n" + good + b"\n"
    fast, reader = both_ways(data, output_format=output_format,
                             validate_records={"a": "string"} if validate else False)
    assert fast == reader


def test_a_file_without_a_final_newline_or_a_version_marker() -> None:
    data = HEAD + b'{"a":1}' + TAIL + b"\n" + HEAD + b'{"a":2}' + TAIL
    fast, reader = both_ways(data)
    assert fast == reader and fast[0] == b'{"a":1}\n{"a":2}\n'


def test_canonical_envelope_lines_do_not_go_through_the_ion_reader(ion_reader_calls: list[Any]) -> None:
    data = envelope_file([orjson.dumps({"status": 200, "latency_ms": 12.5, "path": "/é"})] * 5000)
    out, invalid = io.BytesIO(), io.BytesIO()
    result = convert_ion_to_json(io.BytesIO(data), out.write, invalid.write)
    assert ion_reader_calls == [] and result.record_count == 5000
    assert out.getvalue() == b'{"status":200,"latency_ms":12.5,"path":"/\xc3\xa9"}\n' * 5000


def test_after_a_line_in_another_layout_the_rest_goes_to_the_streaming_reader() -> None:
    rest = b'{topic:"logs",value:{"a":2}}\n' + HEAD + b'{"a":3}' + TAIL + b"\n"
    data = HEAD + b'{"a":1}' + TAIL + b"\n" + rest
    writer_out, invalid = io.BytesIO(), io.BytesIO()
    result = convert_ion_to_json(io.BytesIO(data), writer_out.write, invalid.write)
    assert writer_out.getvalue() == b'{"a":1}\n{"a":2}\n{"a":3}\n' and result.record_count == 3


def test_corrupt_input_after_envelope_lines_names_its_record_index() -> None:
    data = (HEAD + b'{"a":1}' + TAIL + b"\n") * 3 + HEAD + b'{"a":' + b"\n"
    with pytest.raises(CorruptIonError, match=r"in\.ion: corrupt Ion at record index 3 \(records 0\.\.2 were read"):
        convert_ion_to_json(io.BytesIO(data), io.BytesIO().write, io.BytesIO().write, source_name="in.ion")


def test_values_the_shortcut_copies_are_the_ion_routes_bytes() -> None:
    # The argument in ion_json.py, spot-checked: canonical numbers Ion reads as decimals or floats.
    values = [0.00001, 1e-6, 1e16, 123456789012345.6, -0.0, 5e-324, 1.7976931348623157e308, 2**63, -(2**63)]
    data = envelope_file([orjson.dumps({"n": v}) for v in values])
    fast, reader = both_ways(data)
    assert fast == reader
    assert [orjson.loads(line)["n"] for line in fast[0].splitlines()] == values


def test_integers_beyond_64_bits_keep_their_digits() -> None:
    # orjson refuses them; JSON numbers have no size limit. Was a TypeError out of the conversion.
    big = 123456789012345678901234567890
    data = HEAD + b'{"n":%d,"m":[-%d]}' % (big, big) + TAIL + b"\n"
    fast, reader = both_ways(data, validate_records={"x": "string"})
    assert fast == reader
    assert b'"n":%d,"m":[-%d]' % (big, big) in fast[1]  # the set-aside envelope too
    out, _, _ = both_ways(data)[0]
    assert out == b'{"n":%d,"m":[-%d]}\n' % (big, big)


def test_binary_ion_goes_to_the_reader_unread(monkeypatch: pytest.MonkeyPatch) -> None:
    encoder = make_encoder("binary", "string", "json")
    for offset in range(50):
        encoder.add("logs", 0, offset, 1_717_236_000_000, None, b'{"a":"\\n","n":%d}' % offset, None)
    data = encoder.preamble() + encoder.drain()
    fast, reader = both_ways(data)
    assert fast == reader and fast[2].record_count == 50


@settings(max_examples=200, deadline=None)
@given(st.lists(st.sampled_from([HEAD + b'{"a":"x"}' + TAIL, HEAD + b'{"a": "spaced"}' + TAIL, b"",
                                 HEAD + b'{"a":"' + b"y" * 150 + b'"}' + TAIL]), min_size=1, max_size=12),
       st.sampled_from([b"", b"\n"]), st.integers(1, 300), st.integers(100, 400))
def test_block_and_line_limits_anywhere_convert_the_same(lines: list[bytes], end: bytes, block: int,
                                                          limit: int) -> None:
    data = b"\n".join(lines) + end
    patch = pytest.MonkeyPatch()
    try:
        patch.setattr(ion_json, "ENVELOPE_BLOCK_BYTES", block)
        patch.setattr(ion_json, "ENVELOPE_LINE_LIMIT_BYTES", limit)
        fast, reader = both_ways(data)
    finally:
        patch.undo()
    assert fast == reader


def test_a_line_over_the_limit_hands_the_rest_to_the_reader(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ion_json, "ENVELOPE_BLOCK_BYTES", 64)
    monkeypatch.setattr(ion_json, "ENVELOPE_LINE_LIMIT_BYTES", 200)
    long_line = HEAD + b'{"a":"' + b"z" * 300 + b'"}' + TAIL
    data = HEAD + b'{"a":1}' + TAIL + b"\n" + long_line + b"\n" + HEAD + b'{"a":2}' + TAIL + b"\n"
    out = io.BytesIO()
    result = convert_ion_to_json(io.BytesIO(data), out.write, io.BytesIO().write)
    assert result.record_count == 3
    assert out.getvalue() == b'{"a":1}\n{"a":"' + b"z" * 300 + b'"}\n{"a":2}\n'
