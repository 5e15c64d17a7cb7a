"""Ion → JSON conversion: type mapping, formats, validation, corrupt input (no servers)."""

from __future__ import annotations

import io
from typing import Any

import orjson
import pytest
from amazon.ion import simpleion

from airflow_provider_logproc.consume.ion_json import CorruptIonError, convert_ion_to_json


def convert(ion: bytes | str, **options: Any) -> tuple[bytes, list[dict[str, Any]], Any]:
    data = ion.encode() if isinstance(ion, str) else ion
    out, invalid = io.BytesIO(), io.BytesIO()
    result = convert_ion_to_json(io.BytesIO(data), out.write, invalid.write, source_name="test.ion", **options)
    return out.getvalue(), [orjson.loads(line) for line in invalid.getvalue().splitlines()], result


ENVELOPES = """$ion_1_0
{topic:"logs",partition:0,offset:1,timestamp:2024-03-02T23:30:00.250Z,key:"k",value:{a:1,b:12.50,c:"x"},headers:[]}
{topic:"logs",partition:0,offset:2,timestamp:2024-03-02T23:31:00Z,key:null,value:{a:2,b:1e0,c:{{aGk=}}},headers:[]}
"""


def test_unwrapped_values_as_json_lines():
    out, invalid, result = convert(ENVELOPES)
    assert out == b'{"a":1,"b":12.50,"c":"x"}\n{"a":2,"b":1.0,"c":"aGk="}\n'  # decimal digits kept
    assert invalid == [] and (result.record_count, result.invalid_count) == (2, 0)


def test_envelopes_with_timestamps_in_a_time_zone():
    out, _, _ = convert(ENVELOPES, unwrap_value=False, timezone="America/New_York")
    first, second = (orjson.loads(line) for line in out.splitlines())
    assert first["timestamp"] == "2024-03-02T18:30:00.250-05:00"
    assert second["timestamp"] == "2024-03-02T18:31:00.000-05:00"
    assert second["key"] is None and first["headers"] == []


def test_json_array_output():
    out, _, _ = convert(ENVELOPES, output_format="json_array")
    assert orjson.loads(out) == [{"a": 1, "b": 12.5, "c": "x"}, {"a": 2, "b": 1.0, "c": "aGk="}]
    empty, _, result = convert("", output_format="json_array")
    assert orjson.loads(empty) == [] and result.record_count == 0


def test_array_output_spans_chunks(monkeypatch):
    from airflow_provider_logproc.consume import ion_json

    monkeypatch.setattr(ion_json, "CHUNK_RECORDS", 4)
    monkeypatch.setattr(ion_json.JsonSink, "FLUSH_BYTES", 5)
    ion = simpleion.dumps([{"value": i} for i in range(10)], binary=True, sequence_as_stream=True)
    out, _, _ = convert(ion, output_format="json_array")
    assert orjson.loads(out) == list(range(10))


def test_annotations_dropped_or_kept():
    ion = '{value: {status: http::200, ok: flag::true, tag: t::sym, n: null.int, when: day::2024-03-02T}}'
    dropped, _, _ = convert(ion)
    assert orjson.loads(dropped) == {"status": 200, "ok": True, "tag": "sym", "n": None,
                                     "when": "2024-03-02T00:00:00.000+00:00"}
    kept, _, _ = convert(ion, keep_annotations=True)
    assert orjson.loads(kept) == {
        "status": {"$annotations": ["http"], "$value": 200},
        "ok": {"$annotations": ["flag"], "$value": True},
        "tag": {"$annotations": ["t"], "$value": "sym"},
        "n": None,
        "when": {"$annotations": ["day"], "$value": "2024-03-02T00:00:00.000+00:00"},
    }


def test_values_that_are_not_envelopes_are_counted_invalid():
    out, invalid, result = convert('{value: 1} 42 {other: 2} {value: "x"}')
    assert out == b'1\n"x"\n'
    assert [(line["index"], line["reason"], line["record"]) for line in invalid] == [
        (1, "not an envelope: no 'value' field", 42), (2, "not an envelope: no 'value' field", {"other": 2})]
    assert (result.record_count, result.invalid_count) == (2, 2)
    whole, _, _ = convert("42 {other: 2}", unwrap_value=False)
    assert whole == b'42\n{"other":2}\n'


def test_validation_of_required_fields_and_types():
    ion = ('{value:{timestamp:"t",client_ip:"1.2.3.4",method:"GET",path:"/",status:200}}'
           '{value:{timestamp:1,client_ip:"1.2.3.4",method:"GET",path:"/",status:"200"}}'
           '{value:{timestamp:"t",status:null}}'
           '{value:[1]}')
    _, invalid, result = convert(ion, validate_records=True)
    assert result.record_count == 1 and result.invalid_count == 3
    assert [line["reason"] for line in invalid] == [
        "status is string, expected integer",
        "missing client_ip, method, path; status is null, expected integer",
        "record is array, not an object",
    ]
    assert [line["index"] for line in invalid] == [1, 2, 3]


def test_corrupt_ion_names_the_record_index_and_bytes():
    good = simpleion.dumps([{"value": i} for i in range(100)], binary=True, sequence_as_stream=True)
    with pytest.raises(CorruptIonError) as failure:
        convert(good[:-3])
    message = str(failure.value)
    assert message.startswith("test.ion: corrupt Ion at record index 99 (records 0..98 were read;")
    assert f"consumed {len(good) - 3} bytes" in message
    with pytest.raises(CorruptIonError, match=r"record index 1 \(records 0..0 were read"):
        convert("{value:1} {value:[1,2}")
    with pytest.raises(CorruptIonError, match=r"record index 0 \(no record was read"):
        convert("{value:")


@pytest.mark.parametrize("size", [16 * 1024, 70 * 1024, 5 * 1024 * 1024])
def test_long_values_in_text_and_binary_ion(size):
    from airflow_provider_logproc.consume.encoders import BinaryEnvelopeEncoder, TextEnvelopeEncoder

    value = orjson.dumps({"path": "/" + "x" * size, "status": 200})
    for encoder in (TextEnvelopeEncoder("string", "json"), BinaryEnvelopeEncoder("string", "json")):
        encoder.add("logs", 0, 0, 1_709_337_600_000, b"k", b'{"small": 1}', None)
        encoder.add("logs", 0, 1, 1_709_337_600_001, b"k", value, None)
        out, _, result = convert(encoder.preamble() + encoder.drain())
        assert result.record_count == 2
        assert out.splitlines()[1] == value
