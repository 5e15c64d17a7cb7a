"""Kafka records as Ion envelopes: both encoders give the same Ion data; bad input is refused clearly."""

from __future__ import annotations

import base64
import datetime as dt
import io
from decimal import Decimal
from typing import Any

import orjson
import pytest
from amazon.ion import simpleion
from hypothesis import example, given, settings
from hypothesis import strategies as st

from airflow_provider_logproc.consume.encoders import BinaryEnvelopeEncoder, TextEnvelopeEncoder, make_encoder
from airflow_provider_logproc.consume.envelope import (
    IonTimestampText,
    UndecodableRecord,
    check_deserializer,
    check_encoding,
    text_deserializer,
)
from airflow_provider_logproc.consume.ion_json import BARE_VALUE_MODEL

TS = 1_709_337_600_123  # 2024-03-02T00:00:00.123Z

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**63 - 1)
    | st.floats(allow_nan=False, allow_infinity=False) | st.text(),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(), children, max_size=4),
    max_leaves=12,
)


def load_all(data: bytes) -> list[Any]:
    return list(simpleion.load(io.BytesIO(data), single_value=False, value_model=BARE_VALUE_MODEL))


def plain(value: Any) -> Any:
    """Ion text keeps JSON fractions as decimals; compare as JSON readers see them."""
    if isinstance(value, Decimal):
        return float(value)
    if isinstance(value, dict):
        return {key: plain(item) for key, item in value.items()}
    if isinstance(value, list):
        return [plain(item) for item in value]
    return value


def encode(encoder: Any, records: list[tuple[bytes | None, bytes | None]], headers: Any = None) -> bytes:
    for offset, (key, value) in enumerate(records):
        encoder.add("logs", 2, offset, TS + offset, key, value, headers)
    return encoder.preamble() + encoder.drain()


@settings(max_examples=150, deadline=None)
@given(st.lists(json_values, min_size=1, max_size=5))
@example([{"$0": None}])  # found by this test: amazon-ion read the key as symbol ID 0
@example([{"$10": 1, "a": {"$1": ["$2"]}}])
def test_json_values_round_trip_through_both_encodings(values):
    raw = [orjson.dumps(value) for value in values]
    for encoder in (TextEnvelopeEncoder("string", "json"), BinaryEnvelopeEncoder("string", "json")):
        loaded = load_all(encode(encoder, [(b"k", value) for value in raw]))
        assert [plain(envelope["value"]) for envelope in loaded] == [orjson.loads(value) for value in raw]


def test_envelope_fields_are_the_same_in_both_encodings():
    records = [(b"web-1", b'{"status": 200, "latency_ms": 12.5}'), (None, None)]
    headers = [("trace", b"\x00\x01"), ("empty", None)]
    text = load_all(encode(TextEnvelopeEncoder("string", "json"), records, headers))
    binary = load_all(encode(BinaryEnvelopeEncoder("string", "json"), records, headers))
    for envelope in (text, binary):
        first = envelope[0]
        assert (first["topic"], first["partition"], first["offset"], first["key"]) == ("logs", 2, 0, "web-1")
        assert first["timestamp"] == dt.datetime(2024, 3, 2, 0, 0, 0, 123_000, tzinfo=dt.UTC)
        assert first["headers"] == [{"key": "trace", "value": b"\x00\x01"}, {"key": "empty", "value": None}]
        assert envelope[1]["key"] is None and envelope[1]["value"] is None  # a tombstone
    assert plain(text[0]["value"]) == binary[0]["value"] == {"status": 200, "latency_ms": 12.5}


def test_binary_chunks_concatenate_into_one_stream():
    encoder = BinaryEnvelopeEncoder("bytes", "bytes")
    first = encode(encoder, [(b"a", b"1"), (b"b", b"2")])
    second = encode(encoder, [(b"c", b"3")])
    assert first.startswith(b"\xe0\x01\x00\xea") and second.startswith(b"\xe0\x01\x00\xea")  # each has the IVM
    assert [e["value"] for e in load_all(first + second)] == [b"1", b"2", b"3"]


def test_text_output_is_one_line_per_record_after_the_version_marker():
    data = encode(TextEnvelopeEncoder("bytes", "string"), [(b"\xff", "zoë \"quoted\"\n".encode())])
    lines = data.splitlines()
    assert lines[0] == b"$ion_1_0"
    assert lines[1] == (b'{topic:"logs",partition:2,offset:0,timestamp:2024-03-02T00:00:00.123Z,key:{{/w==}},'
                        b'value:"zo\xc3\xab \\"quoted\\"\\n",headers:[]}')
    assert load_all(data)[0]["value"] == 'zoë "quoted"\n'


@pytest.mark.parametrize("encoder_class", [TextEnvelopeEncoder, BinaryEnvelopeEncoder])
@pytest.mark.parametrize(
    ("deserializer", "raw", "reason"),
    [
        ("json", b'{"broken": ', "value: not JSON"),
        ("json", b"\xff\xfe", "value: not JSON"),
        ("string", b"ok \xc3\x28", "value: not UTF-8 (invalid continuation byte at byte 3)"),
    ],
)
def test_undecodable_values_are_refused_and_leave_nothing_behind(encoder_class, deserializer, raw, reason):
    encoder = encoder_class("string", deserializer)
    with pytest.raises(UndecodableRecord) as refused:
        encoder.add("logs", 0, 5, TS, b"k", raw, None)
    assert str(refused.value).startswith(reason)
    assert refused.value.field == "value"
    encoder.add("logs", 0, 6, TS, b"k", b'"fine"', None)
    assert [e["offset"] for e in load_all(encoder.preamble() + encoder.drain())] == [6]


def test_undecodable_key():
    with pytest.raises(UndecodableRecord, match=r"^key: not UTF-8"):
        TextEnvelopeEncoder("string", "json").add("t", 0, 0, TS, b"\xff", b"1", None)


def test_bytes_as_ion_blob_text():
    assert text_deserializer("bytes", "value")(b"\x00\xffab") == b"{{" + base64.b64encode(b"\x00\xffab") + b"}}"


def test_timestamp_text_caches_the_second_but_not_the_millis():
    stamp = IonTimestampText()
    assert stamp(TS) == b"2024-03-02T00:00:00.123Z"
    assert stamp(TS + 1) == b"2024-03-02T00:00:00.124Z"
    assert stamp(TS + 1000) == b"2024-03-02T00:00:01.123Z"
    assert stamp(0) == b"1970-01-01T00:00:00.000Z"


def test_unknown_names_are_refused():
    with pytest.raises(ValueError, match="value_deserializer must be one of string, json, bytes"):
        check_deserializer("avro", "value")
    with pytest.raises(ValueError, match="ion_encoding must be one of binary, text"):
        check_encoding("json")
    with pytest.raises(ValueError, match="ion_encoding"):
        make_encoder("xml", "string", "json")


def test_keys_that_read_as_ion_symbol_ids_survive_the_text_envelope_and_the_json_step():
    from airflow_provider_logproc.consume.ion_json import convert_ion_to_json

    # Positional parameters of SQL logs, say; one written with an escape.
    raw = [b'{"query":"select $1","params":{"$1":"x","$10":2,"$0":null}}', b'{"\\u00241":"y","$a":1}']
    ion = encode(TextEnvelopeEncoder("string", "json"), [(b"k", value) for value in raw])
    assert b"'$10':2" in ion and b'"$a":1' in ion  # only keys of $ and digits are quoted symbols
    out = io.BytesIO()
    result = convert_ion_to_json(io.BytesIO(ion), out.write, io.BytesIO().write, source_name="test.ion")
    assert result.record_count == 2
    assert [orjson.loads(line) for line in out.getvalue().splitlines()] == [orjson.loads(value) for value in raw]
