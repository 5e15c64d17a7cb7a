"""The window read's C loop (``_native_envelope.c``) against the Python loop it replaces.

* its JSON check says yes only to what orjson accepts (hand-picked texts, random JSON, random
  byte-level damage), and says yes to ordinary log records (else the fast path is never taken);
* ``TextEnvelopeEncoder.window_batch`` (C) and ``window_batch_python`` give the same batch — the same
  bytes, counts, offsets, dead letters and refusal reasons — for random batches of messages.
"""

from __future__ import annotations

import json
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from airflow_provider_logproc.consume import encoders as encoders_module
from airflow_provider_logproc.consume import loop as loop_module
from airflow_provider_logproc.consume.encoders import TextEnvelopeEncoder
from airflow_provider_logproc.consume.loop import window_batch_python
from airflow_provider_logproc.kafka.window import TimeWindow

native = encoders_module.native_envelope
needs_native = pytest.mark.skipif(native is None, reason="the C loop is not built here")


def _orjson_accepts(data: bytes) -> bool:
    try:
        orjson.loads(data)
    except orjson.JSONDecodeError:
        return False
    return True


RECORD = (b'{"timestamp":"2026-11-24T10:00:00.123Z","client_ip":"192.0.2.1","method":"GET","path":"/a?b=1",'
          b'"status":200,"bytes":512,"latency_ms":12.5,"user_agent":"curl/8.5.0","ok":true,"tags":["x",null]}')

TEXTS = [
    RECORD, b"1", b"-0", b"0.5", b'"x"', b"true", b"false", b"null", b"[]", b"{}", b" [ 1 , 2 ] ", b"\t{}\r\n",
    b"", b" ", b"01", b"1.", b".5", b"-", b"+1", b"1e5", b"1E-5", b"1e999", b"-1e999", b"1" * 300, b"1" * 301,
    b"1" * 400, b"0." + b"1" * 299, b"NaN", b"Infinity", b"-Infinity", b"nul", b"tru", b"[1,]", b"{,}",
    b'{"a":}', b'{"a" 1}', b'{"a":1,}', b'{1:2}', b"[1 2]", b"[", b"]", b"{", b"}", b'"abc', b'"a\\"',
    b'"\\u00e9"', b'"\\ud83d\\ude00"', b'"\\ud800"', b'"\\udc00"', b'"\\ud800\\u0041"', b'"\\ud800x"',
    b'"\\uD83D\\uDE00"', b'"\\u12"', b'"\\u12G4"', b'"\\x"', b'"\\/\\b\\f\\n\\r\\t\\\\"', b'"\x00"', b'"\x1f"',
    b'"\x7f"', b'"caf\xc3\xa9"', b'"\xc3"', b'"\xc0\x80"', b'"\xed\xa0\x80"', b'"\xf4\x90\x80\x80"',
    b'"\xf0\x9f\x98\x80"', b'"\xe0\x80\x80"', b'"\xff"', b"\xef\xbb\xbf1", b"1\x0b", b"1 2", b'"a" "b"',
    b"[" * 512 + b"]" * 512, b"[" * 513 + b"]" * 513, b"[" * 1024 + b"]" * 1024, b"[" * 1025 + b"]" * 1025,
    b'{"a":' * 300 + b"1" + b"}" * 300, b'{"a":1,"a":2}', b'{"":""}', b"[1,[2,[3,{}]]]", b"\x00",
]


@needs_native
@pytest.mark.parametrize("text", TEXTS, ids=range(len(TEXTS)))
def test_the_c_check_says_yes_only_to_what_orjson_accepts(text: bytes) -> None:
    assert native is not None
    if native.surely_json(text):
        assert _orjson_accepts(text)


@needs_native
def test_the_c_check_takes_ordinary_records() -> None:
    assert native is not None
    for text in (RECORD, b'{"a":"caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80"}', b'"\\ud83d\\ude00"',
                 b"[" * 512 + b"]" * 512, b"-12.5", b'{"n":18446744073709551616}'):
        assert native.surely_json(text), text


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=5), children, max_size=4),
    max_leaves=20,
)


@needs_native
def test_the_c_check_leaves_keys_that_may_read_as_ion_symbol_ids_to_python() -> None:
    assert native is not None
    assert not native.surely_json(b'{"$1":1}') and not native.surely_json(b'{"a":{"\\u00241":1}}')
    assert native.surely_json(b'{"a":"$1","b":["$2"]}')  # values are strings whatever they read


@needs_native
@settings(max_examples=400, deadline=None)
@given(json_values, st.booleans(), st.sampled_from([(",", ":"), (", ", ": "), (" ,\t", " :\n")]),
       st.lists(st.tuples(st.integers(0, 10_000), st.integers(0, 255)), max_size=3))
def test_random_json_and_damaged_json(value: Any, ascii_only: bool, separators: tuple[str, str],
                                      damage: list[tuple[int, int]]) -> None:
    assert native is not None
    text = json.dumps(value, ensure_ascii=ascii_only, separators=separators).encode("utf-8", "surrogatepass")
    if native.surely_json(text):
        assert _orjson_accepts(text)
    damaged = bytearray(text)
    for position, byte in damage:
        if damaged:
            damaged[position % len(damaged)] = byte
    if native.surely_json(bytes(damaged)):
        assert _orjson_accepts(bytes(damaged))


class FakeMessage:
    """What the loops call of a confluent_kafka.Message (which cannot be built outside a consumer)."""

    def __init__(self, offset: int, timestamp_ms: int, key: bytes | None, value: bytes | None,
                 headers: list[tuple[str, bytes | None]] | None = None, error: Any = None) -> None:
        self._offset, self._timestamp_ms, self._key, self._value = offset, timestamp_ms, key, value
        self._headers, self._error = headers, error

    def error(self) -> Any:
        return self._error

    def offset(self) -> int:
        return self._offset

    def timestamp(self) -> tuple[int, int]:
        return (0, -1) if self._timestamp_ms < 0 else (1, self._timestamp_ms)

    def key(self) -> bytes | None:
        return self._key

    def value(self) -> bytes | None:
        return self._value

    def headers(self) -> list[tuple[str, bytes | None]] | None:
        return self._headers


DAY_MS = 1_764_000_000_000 - 1_764_000_000_000 % 86_400_000
WINDOW = TimeWindow(DAY_MS, DAY_MS + 86_400_000, DAY_MS + 86_460_000)  # since, until, stop (1 min late)
VALUES = [RECORD, b"null", b"{bad", b'"\\ud800"', b"1e999", b"1e5", b"[1,2]", b'"caf\xc3\xa9"', b"\xff", None, b"",
          b'{"$1":"a","b":{"\\u00240":"$2"}}']
KEYS = [None, b"host-1", b"host-2", b"\xff\xfe", b'{"k":1}', b"not json", b"", b'{"$3":1}']
TIMESTAMPS = [-1, DAY_MS - 1, DAY_MS, DAY_MS + 59_999, DAY_MS + 60_000, DAY_MS + 86_399_999, DAY_MS + 86_400_000,
              DAY_MS + 86_460_000]


@st.composite
def batches(draw: Any) -> tuple[list[FakeMessage], int]:
    count = draw(st.integers(1, 40))
    first = draw(st.integers(0, 5))
    messages = []
    for i in range(count):
        headers = draw(st.sampled_from([None, [], [("h", b"v")], [("h", None), ("i", b"\x00")]]))
        error = "broken" if draw(st.integers(0, 60)) == 0 else None
        messages.append(FakeMessage(first + i, draw(st.sampled_from(TIMESTAMPS)) + draw(st.integers(0, 3)),
                                    draw(st.sampled_from(KEYS)), draw(st.sampled_from(VALUES)), headers, error))
    stop_offset = draw(st.integers(first, first + count + 2))
    return messages, stop_offset


def _comparable(batch: Any) -> tuple[Any, ...]:
    return (*batch[:7], [id(m) for m in batch.no_timestamp], [(id(m), str(r)) for m, r in batch.refused],
            batch.error_index)


@needs_native
@settings(max_examples=300, deadline=None)
@given(batches(), st.sampled_from(["string", "json", "bytes"]))
def test_the_c_batch_is_the_python_batch(batch: tuple[list[FakeMessage], int], key_deserializer: str) -> None:
    messages, stop_offset = batch
    c_encoder = TextEnvelopeEncoder(key_deserializer, "json")
    python_encoder = TextEnvelopeEncoder(key_deserializer, "json")
    c_batch = c_encoder.window_batch(messages, "logs", 2, stop_offset, WINDOW)
    assert c_batch is not None
    python_batch = window_batch_python(python_encoder, messages, "logs", 2, stop_offset, WINDOW)
    if python_batch.error_index >= 0:
        # The read fails at that message: only the dead letters before it are kept.
        assert (c_batch.error_index, [id(m) for m in c_batch.no_timestamp]) == \
            (python_batch.error_index, [id(m) for m in python_batch.no_timestamp])
        return
    assert _comparable(c_batch) == _comparable(python_batch)
    assert c_encoder._keys == python_encoder._keys


def test_the_c_loop_is_only_for_json_values() -> None:
    assert TextEnvelopeEncoder("string", "string").window_batch([], "t", 0, 1, WINDOW) is None
    assert TextEnvelopeEncoder("string", "bytes").window_batch([], "t", 0, 1, WINDOW) is None


@needs_native
def test_a_window_read_the_c_loop_writes_the_same_envelopes_for_a_full_day() -> None:
    messages = [FakeMessage(i, DAY_MS + i * 997, b"host-%d" % (i % 7), RECORD.replace(b"512", str(i).encode()))
                for i in range(5000)]
    c_batch = TextEnvelopeEncoder("string", "json").window_batch(messages, "logs", 0, 10_000, WINDOW)
    python_batch = window_batch_python(TextEnvelopeEncoder("string", "json"), messages, "logs", 0, 10_000, WINDOW)
    assert c_batch is not None and c_batch.written == 5000
    assert c_batch.chunk == python_batch.chunk
    assert c_batch.chunk.startswith(b'{topic:"logs",partition:0,offset:0,timestamp:2025-11-24T00:00:00.000Z,'
                                    b'key:"host-0",value:{')


class FakeConsumer:
    """Serves one partition's messages in batches, as Consumer.consume does."""

    def __init__(self, messages: list[FakeMessage]) -> None:
        self._messages = messages

    def assign(self, partitions: Any) -> None:
        pass

    def unassign(self) -> None:
        pass

    def consume(self, num_messages: int, timeout: float) -> list[FakeMessage]:
        batch, self._messages = self._messages[:num_messages], self._messages[num_messages:]
        return batch


def test_a_window_read_takes_both_loops_without_cyclic_gc(monkeypatch: pytest.MonkeyPatch) -> None:
    import gc

    from airflow_provider_logproc.consume.dead_letters import DeadLetters
    from airflow_provider_logproc.consume.loop import ReadLimits, read_window
    from airflow_provider_logproc.kafka.window import PartitionPlan

    seen: list[tuple[str, bool]] = []
    real_c, real_python = TextEnvelopeEncoder.window_batch, loop_module.window_batch_python

    def c_spy(self: TextEnvelopeEncoder, *args: Any) -> Any:
        seen.append(("c", gc.isenabled()))
        return real_c(self, *args)

    def python_spy(*args: Any) -> Any:
        seen.append(("python", gc.isenabled()))
        return real_python(*args)

    monkeypatch.setattr(TextEnvelopeEncoder, "window_batch", c_spy)
    monkeypatch.setattr(loop_module, "window_batch_python", python_spy)
    messages = [FakeMessage(i, DAY_MS + i - 5, None, RECORD) for i in range(5, 30)]
    out = bytearray()
    # Offsets 0..4 deleted, the read starts at the oldest kept: its first record goes through the
    # Python loop (the retention check), the rest of that batch and the other two through the C loop.
    stats = read_window(FakeConsumer(messages), [PartitionPlan("logs", 0, 5, 30, 5)], WINDOW,  # type: ignore[arg-type]
                        TextEnvelopeEncoder("string", "json"), out.extend, DeadLetters(),
                        limits=ReadLimits(batch_size=10))
    assert stats[0].count == 25 and out.count(b"\n") == 26  # the version marker's line, then 25 envelopes
    expected_c = [] if native is None else [("c", False)] * 3
    assert [entry for entry in seen if entry[0] == "python"][:1] == [("python", False)]
    if native is not None:
        assert seen == [("python", False), *expected_c]
    assert gc.isenabled()


# The only Python names _native_envelope.c looks up itself (PyInit__native_envelope's INTERN list):
# confluent-kafka's public Message methods. Everything of this package it uses (the key cache, the
# deserializers, headers_text, minute_prefix, UndecodableRecord) is passed in as an argument by
# TextEnvelopeEncoder.window_batch, so renaming any of those cannot silently break the C loop.
MESSAGE_METHODS_THE_C_LOOP_CALLS = ("error", "offset", "timestamp", "key", "value", "headers")


def test_the_c_loop_calls_only_public_message_methods_that_exist() -> None:
    from pathlib import Path

    import confluent_kafka

    source = (Path(encoders_module.__file__).parent / "_native_envelope.c").read_text()
    interned = source[source.index("PyInit__native_envelope"):]
    assert [line.split('"')[1] for line in interned.splitlines() if "INTERN(" in line] == list(
        MESSAGE_METHODS_THE_C_LOOP_CALLS)
    for forbidden in ("PyObject_GetAttr", "PyImport_Import", "PyObject_SetAttr"):
        assert forbidden not in source, forbidden
    for name in MESSAGE_METHODS_THE_C_LOOP_CALLS:
        assert callable(getattr(confluent_kafka.Message, name, None)), name


def test_the_window_loop_says_which_implementation_runs_and_why(monkeypatch: pytest.MonkeyPatch) -> None:
    from airflow_provider_logproc.consume.encoders import BinaryEnvelopeEncoder

    if native is not None:
        assert TextEnvelopeEncoder("string", "json").window_loop() == "C (_native_envelope.encode_window_batch)"
    assert TextEnvelopeEncoder("string", "string").window_loop() == "Python (the C loop takes JSON values only)"
    assert BinaryEnvelopeEncoder("string", "json").window_loop().startswith("Python (binary Ion")
    monkeypatch.setattr(encoders_module, "native_envelope", None)
    monkeypatch.delenv("LOGPROC_PURE_PYTHON", raising=False)
    assert "not built" in TextEnvelopeEncoder("string", "json").window_loop()
    monkeypatch.setenv("LOGPROC_PURE_PYTHON", "1")
    assert TextEnvelopeEncoder("string", "json").window_loop() == "Python (LOGPROC_PURE_PYTHON is set)"
