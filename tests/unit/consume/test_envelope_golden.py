"""The text envelope layout, version 1, pinned by a checked-in file (see consume/envelope.py).

``data/envelopes_v1.ion`` was written by the consume step's text encoder; ``data/envelopes_v1.jsonl``
is what the Ion→JSON step makes of it. The encoder must still write those exact bytes, the
Ion→JSON shortcut must take every line it is meant to take, and both routes must give the JSON.

Regenerate (only for a deliberate change of the layout: bump ENVELOPE_FORMAT_VERSION, write new
files beside these, and keep reading the old ones — archived windows are in the old layout)::

    .venv/bin/python tests/unit/consume/test_envelope_golden.py --regenerate
"""

from __future__ import annotations

import io
import sys
from pathlib import Path
from typing import Any

from airflow_provider_logproc.consume import ion_json
from airflow_provider_logproc.consume.encoders import make_encoder
from airflow_provider_logproc.consume.envelope import ENVELOPE_FORMAT_VERSION, ION_TEXT_VERSION_MARKER

DATA = Path(__file__).parent / "data"
GOLDEN_ION = DATA / "envelopes_v1.ion"
GOLDEN_JSONL = DATA / "envelopes_v1.jsonl"
T0 = 1_717_237_230_405  # 2024-06-01T10:20:30.405Z

# (topic, partition, offset, timestamp_ms, key, value, headers, route): "fast" is the shortcut, "alone" the
# Ion reader for that line alone, "rest" the streaming reader for this line and all after it.
RECORDS: list[tuple[str, int, int, int, bytes | None, bytes | None, Any, str]] = [
    ("logs", 0, 7, T0, b"web-1", b'{"status":200,"path":"/a","latency_ms":12.5}', None, "fast"),
    # An integer beyond 64 bits, and a decimal with a trailing zero: not orjson's own text, so read as Ion.
    ("logs", 0, 8, T0 + 1, None, b'{"status":404,"path":"/\xc3\xa9","big":123456789012345678901234567890}', None,
     "alone"),
    ("logs", 1, 0, T0 + 59_999, b"web-2", b'[1,2.50,3e5,"x",null,true]', None, "alone"),
    ("logs", 1, 1, T0 + 60_000, b"web-2", b'"a string value"', None, "fast"),
    ("logs", 1, 2, T0 + 3_600_000, b"web-3", None, None, "fast"),
    # Not canonical JSON (spaces): the shape matches, the Ion reader reads this line alone.
    ("logs", 2, 5, T0, b"web-4", b'{"status": 500, "path": "/b"}', None, "alone"),
    # Headers: not the shortcut's tail, so this line and the rest go to the streaming reader.
    ("logs", 2, 6, T0, b"web-4", b'{"status":201}', [("trace", b"\x00\x01"), ("empty", None)], "rest"),
    ("other-topic", 0, 1, T0, b"k", b'{"status":200}', None, "rest"),
]


def encode_records() -> bytes:
    encoder = make_encoder("text", "string", "json")
    for topic, partition, offset, timestamp_ms, key, value, headers, _ in RECORDS:
        encoder.add(topic, partition, offset, timestamp_ms, key, value, headers)
    return encoder.preamble() + encoder.drain()


def convert(data: bytes, *, envelope_lines: bool) -> bytes:
    out, invalid = io.BytesIO(), io.BytesIO()
    result = ion_json.convert_ion_to_json(io.BytesIO(data), out.write, invalid.write, envelope_lines=envelope_lines)
    assert result.record_count == len(RECORDS) and not invalid.getvalue()
    return out.getvalue()


def test_this_file_pins_the_current_format_version():
    assert ENVELOPE_FORMAT_VERSION == 1, "a new layout needs its own golden files (see the module docstring)"
    assert GOLDEN_ION.read_bytes().startswith(ION_TEXT_VERSION_MARKER)


def test_the_encoder_still_writes_the_golden_bytes():
    assert encode_records() == GOLDEN_ION.read_bytes()


def test_the_python_batch_route_writes_the_same_bytes():
    class Message:
        def __init__(self, record: tuple[Any, ...]) -> None:
            self.record = record

        def offset(self) -> int:
            return int(self.record[2])

        def timestamp(self) -> tuple[int, int]:
            return 1, int(self.record[3])

        def key(self) -> bytes | None:
            return self.record[4]  # type: ignore[no-any-return]

        def value(self) -> bytes | None:
            return self.record[5]  # type: ignore[no-any-return]

        def headers(self) -> Any:
            return self.record[6]

    encoder = make_encoder("text", "string", "json")
    chunks = [encoder.preamble()]
    for record in RECORDS:
        assert encoder.add_messages(record[0], record[1], [Message(record)]) == []
        chunks.append(encoder.drain())
    assert b"".join(chunks) == GOLDEN_ION.read_bytes()


def test_ion_to_json_reads_the_golden_file_by_both_routes():
    expected = GOLDEN_JSONL.read_bytes()
    assert convert(GOLDEN_ION.read_bytes(), envelope_lines=True) == expected
    assert convert(GOLDEN_ION.read_bytes(), envelope_lines=False) == expected


def test_the_shortcut_takes_exactly_the_lines_the_layout_promises(ion_reader_calls: list[Any]) -> None:
    calls = ion_reader_calls
    convert(GOLDEN_ION.read_bytes(), envelope_lines=True)
    # One reader per line read alone, one for the rest of the file from the first line with headers.
    routes = [record[7] for record in RECORDS]
    assert routes.count("fast") == 3 and routes.index("rest") == len(routes) - 2
    assert len(calls) == routes.count("alone") + 1
    assert [type(source) for source in calls[:-1]] == [io.BytesIO] * routes.count("alone")


def regenerate() -> None:
    DATA.mkdir(exist_ok=True)
    GOLDEN_ION.write_bytes(encode_records())
    GOLDEN_JSONL.write_bytes(convert(GOLDEN_ION.read_bytes(), envelope_lines=False))
    print(f"wrote {GOLDEN_ION} and {GOLDEN_JSONL}")


if __name__ == "__main__" and sys.argv[1:] == ["--regenerate"]:
    regenerate()
