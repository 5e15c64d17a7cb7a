"""Kafka records to Ion envelopes: the text encoder (with its C batch loop) and the binary one.

The envelope format itself (fields, order, version marker) is in :mod:`.envelope`.
"""

from __future__ import annotations

import io
import os
from typing import Any, NamedTuple, Protocol

import orjson

from airflow_provider_logproc.consume.envelope import (
    ENVELOPE_LINE_REST,
    ION_TEXT_VERSION_MARKER,
    IonTimestampText,
    UndecodableRecord,
    check_encoding,
    encode_binary_chunk,
    envelope_head,
    headers_object,
    headers_text,
    minute_prefix,
    object_deserializer,
    text_deserializer,
    timestamp_object,
)
from airflow_provider_logproc.kafka.window import TimeWindow
from logproc_analyzer.native import optional_extension

# The window read's per-batch loop in C (see _native_envelope.c); same results as window_batch_python.
native_envelope = optional_extension("airflow_provider_logproc.consume._native_envelope")


def _why_not_c() -> str:
    """Say why the C loop is not there (optional_extension returns None for both reasons)."""
    if os.environ.get("LOGPROC_PURE_PYTHON"):
        return "LOGPROC_PURE_PYTHON is set"
    return "the C extension _native_envelope is not built (installed without a C compiler?)"


class WindowBatch(NamedTuple):
    """One batch of a partition's messages, read (``TextEnvelopeEncoder.window_batch`` in C, or
    ``window_batch_python``): what was written, and what the caller still has to account for."""

    chunk: bytes  # the envelopes written
    done: bool  # the partition's end (stop offset or stop time) was reached
    last_offset: int  # of the last message looked at
    outside_window: int
    written: int
    first_written: int  # offsets, -1 if none
    last_written: int
    no_timestamp: list[Any]  # messages without a timestamp, for the dead letters
    refused: list[tuple[Any, UndecodableRecord]]
    error_index: int  # of a message with an error, -1 if none


class EnvelopeEncoder(Protocol):
    def preamble(self) -> bytes: ...

    def add(self, topic: str, partition: int, offset: int, timestamp_ms: int,
            key: bytes | None, value: bytes | None, headers: Any) -> None: ...

    def add_messages(self, topic: str, partition: int, messages: list[Any]) -> list[tuple[Any, UndecodableRecord]]:
        ...

    def drain(self) -> bytes: ...

    def window_batch(self, messages: list[Any], topic: str, partition: int, stop_offset: int,
                     window: TimeWindow) -> WindowBatch | None: ...

    def window_loop(self) -> str: ...


class TextEnvelopeEncoder:
    """Ion text envelopes, one per line (see :mod:`.envelope`)."""

    def __init__(self, key_deserializer: str, value_deserializer: str):
        self._key_text = text_deserializer(key_deserializer, "key")
        self._value = text_deserializer(value_deserializer, "value")
        self._json_values = value_deserializer == "json"
        self._timestamp = IonTimestampText()
        self._topics: dict[str, bytes] = {}
        self._keys: dict[bytes, bytes] = {}  # keys repeat (device, host, ...): encode each once
        # A BytesIO rather than a list of lines to join: measurably faster per record.
        self._buffer = io.BytesIO()

    def _key(self, key: bytes | None) -> bytes:
        if key is None:
            return b"null"
        text = self._keys.get(key)
        if text is None:
            text = self._key_text(key)
            if len(self._keys) < 100_000:
                self._keys[key] = text
        return text

    def preamble(self) -> bytes:
        return ION_TEXT_VERSION_MARKER

    def add(self, topic: str, partition: int, offset: int, timestamp_ms: int,
            key: bytes | None, value: bytes | None, headers: Any) -> None:
        # Deserialize both before appending, so an undecodable record leaves no partial line.
        key_text = self._key(key)
        value_text = self._value(value)
        self._buffer.write(
            ENVELOPE_LINE_REST
            % (self._head(topic, partition), offset, self._timestamp(timestamp_ms), key_text, value_text,
               headers_text(headers))
        )

    def _head(self, topic: str, partition: int) -> bytes:
        """Return an envelope's constant start, up to its offset: ``{topic:"...",partition:N,offset:``."""
        topic_text = self._topics.get(topic)
        if topic_text is None:
            topic_text = self._topics[topic] = orjson.dumps(topic)
        return envelope_head(topic_text, partition)

    def add_messages(self, topic: str, partition: int, messages: list[Any]) -> list[tuple[Any, UndecodableRecord]]:
        """Encode confluent-kafka messages of one partition; returns those that cannot be decoded.

        The per-record loop of the whole read: names are bound locally and the envelope's constant
        head is formatted once per call.
        """
        head = self._head(topic, partition)
        append = self._buffer.write
        key_text = self._key
        value_text = self._value
        stamp = self._timestamp
        line = ENVELOPE_LINE_REST  # a local: as cheap as the literal it names
        refused: list[tuple[Any, UndecodableRecord]] = []
        for message in messages:
            try:
                key = key_text(message.key())
                value = value_text(message.value())
            except UndecodableRecord as bad:
                refused.append((message, bad))
                continue
            headers = message.headers()
            append(line % (
                head, message.offset(), stamp(message.timestamp()[1]), key, value,
                headers_text(headers) if headers else b"[]"))
        return refused

    def window_batch(self, messages: list[Any], topic: str, partition: int, stop_offset: int,
                     window: TimeWindow) -> WindowBatch | None:
        """Run a whole batch of ``_read_partition`` (filter by the window, then encode) in C, for JSON
        values; None where the C loop is not built or the values are not JSON."""
        if native_envelope is None or not self._json_values:
            return None
        return WindowBatch(*native_envelope.encode_window_batch(
            messages, self._head(topic, partition), stop_offset,
            window.since_ms, window.until_ms, window.stop_ms, self._keys, self._key, self._value,
            minute_prefix, headers_text, UndecodableRecord))

    def window_loop(self) -> str:
        """Say which loop encodes a window read's batches, and why Python where it is not C."""
        if not self._json_values:
            return "Python (the C loop takes JSON values only)"
        if native_envelope is None:
            return f"Python ({_why_not_c()})"
        return "C (_native_envelope.encode_window_batch)"

    def drain(self) -> bytes:
        chunk = self._buffer.getvalue()
        self._buffer.seek(0)
        self._buffer.truncate()
        return chunk


class BinaryEnvelopeEncoder:
    """Ion binary envelopes through amazon-ion's C extension, one Ion stream per chunk."""

    def window_batch(self, messages: list[Any], topic: str, partition: int, stop_offset: int,
                     window: TimeWindow) -> WindowBatch | None:
        return None  # no C loop: amazon-ion's encoder writes binary chunks (window_batch_python)

    def window_loop(self) -> str:
        """Say which loop encodes a window read's batches: Python, around amazon-ion's binary encoder."""
        return "Python (binary Ion: amazon-ion's C encoder, record by record)"

    def __init__(self, key_deserializer: str, value_deserializer: str):
        self._key = object_deserializer(key_deserializer, "key")
        self._value = object_deserializer(value_deserializer, "value")
        self._envelopes: list[dict[str, Any]] = []

    def preamble(self) -> bytes:
        return b""  # every chunk starts with its own Ion version marker

    def add(self, topic: str, partition: int, offset: int, timestamp_ms: int,
            key: bytes | None, value: bytes | None, headers: Any) -> None:
        key_object = self._key(key)
        value_object = self._value(value)
        self._envelopes.append({
            "topic": topic, "partition": partition, "offset": offset,
            "timestamp": timestamp_object(timestamp_ms), "key": key_object, "value": value_object,
            "headers": headers_object(headers),
        })

    def add_messages(self, topic: str, partition: int, messages: list[Any]) -> list[tuple[Any, UndecodableRecord]]:
        refused: list[tuple[Any, UndecodableRecord]] = []
        for message in messages:
            try:
                self.add(topic, partition, message.offset(), message.timestamp()[1], message.key(), message.value(),
                         message.headers())
            except UndecodableRecord as bad:
                refused.append((message, bad))
        return refused

    def drain(self) -> bytes:
        chunk = encode_binary_chunk(self._envelopes)
        self._envelopes.clear()
        return chunk


def make_encoder(ion_encoding: str, key_deserializer: str, value_deserializer: str) -> EnvelopeEncoder:
    check_encoding(ion_encoding)
    if ion_encoding == "text":
        return TextEnvelopeEncoder(key_deserializer, value_deserializer)
    return BinaryEnvelopeEncoder(key_deserializer, value_deserializer)
