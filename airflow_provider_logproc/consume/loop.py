"""The consume loops: an exact time window over every partition, or a consumer-group batch.

Both loops take a ready ``confluent_kafka.Consumer`` (the operator builds it from the official
``kafka`` connection) and a ``write`` callable that appends bytes to the output, and return per
partition statistics. Records that cannot be deserialized go to a :class:`DeadLetters` spool.
No Airflow import here.
"""

from __future__ import annotations

import base64
import datetime as dt
import io
import logging
import shutil
import tempfile
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import IO, Any, NamedTuple, Protocol

import orjson
from confluent_kafka import Consumer, KafkaError, KafkaException, TopicPartition

from airflow_provider_logproc.consume.envelope import (
    ION_TEXT_VERSION_MARKER,
    IonTimestampText,
    UndecodableRecord,
    check_encoding,
    encode_binary_chunk,
    headers_object,
    headers_text,
    minute_prefix,
    object_deserializer,
    text_deserializer,
    timestamp_object,
)
from airflow_provider_logproc.garbage_collection import cyclic_gc_paused
from airflow_provider_logproc.kafka.window import (
    PartitionPlan,
    PartitionStats,
    RetentionGapError,
    TimeWindow,
    WindowError,
    plan_partition,
    retention_gap_message,
)
from logproc_analyzer.native import optional_extension

# The window read's per-batch loop in C (see _native_envelope.c); same results as window_batch_python.
native_envelope = optional_extension("airflow_provider_logproc.consume._native_envelope")

log = logging.getLogger(__name__)


class Log(Protocol):
    """What the loops log through: a stdlib logger or Airflow's task logger."""

    def info(self, msg: Any, /, *args: Any, **kwargs: Any) -> Any: ...

    def warning(self, msg: Any, /, *args: Any, **kwargs: Any) -> Any: ...

DEFAULT_BATCH_SIZE = 10_000
PROGRESS_INTERVAL_S = 10.0


class StalledReadError(RuntimeError):
    """A partition delivered nothing for too long although records remain to be read."""


# --- encoders ------------------------------------------------------------------------------------


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
            b"%b%d,timestamp:%b,key:%b,value:%b,headers:%b}\n"
            % (self._head(topic, partition), offset, self._timestamp(timestamp_ms), key_text, value_text,
               headers_text(headers))
        )

    def _head(self, topic: str, partition: int) -> bytes:
        """An envelope's constant start, up to its offset: ``{topic:"...",partition:N,offset:``."""
        topic_text = self._topics.get(topic)
        if topic_text is None:
            topic_text = self._topics[topic] = orjson.dumps(topic)
        return b"{topic:%b,partition:%d,offset:" % (topic_text, partition)

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
        refused: list[tuple[Any, UndecodableRecord]] = []
        for message in messages:
            try:
                key = key_text(message.key())
                value = value_text(message.value())
            except UndecodableRecord as bad:
                refused.append((message, bad))
                continue
            headers = message.headers()
            append(b"%b%d,timestamp:%b,key:%b,value:%b,headers:%b}\n" % (
                head, message.offset(), stamp(message.timestamp()[1]), key, value,
                headers_text(headers) if headers else b"[]"))
        return refused

    def window_batch(self, messages: list[Any], topic: str, partition: int, stop_offset: int,
                     window: TimeWindow) -> WindowBatch | None:
        """A whole batch of ``_read_partition`` (filter by the window, then encode) in C, for JSON
        values; None where the C loop is not built or the values are not JSON."""
        if native_envelope is None or not self._json_values:
            return None
        return WindowBatch(*native_envelope.encode_window_batch(
            messages, self._head(topic, partition), stop_offset,
            window.since_ms, window.until_ms, window.stop_ms, self._keys, self._key, self._value,
            minute_prefix, headers_text, UndecodableRecord))

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


# --- dead letters --------------------------------------------------------------------------------


class DeadLetters:
    """Records kept aside, as JSON lines, in a local spool until the run publishes them."""

    def __init__(self, path: str | None = None) -> None:
        self.count = 0
        self.examples: list[str] = []
        self._spool: IO[bytes] = (
            open(path, "w+b") if path else tempfile.SpooledTemporaryFile(max_size=8 << 20))  # noqa: SIM115

    def absorb(self, path: str, count: int, examples: list[str]) -> None:
        """Append another spool's dead letters (a partition read in a worker process)."""
        with open(path, "rb") as other:
            shutil.copyfileobj(other, self._spool, 1 << 20)
        self.count += count
        self.examples.extend(examples[: max(0, 5 - len(self.examples))])

    def flush(self) -> None:
        self._spool.flush()

    def add(self, topic: str, partition: int, offset: int, timestamp_ms: int, reason: str,
            key: bytes | None, value: bytes | None) -> None:
        self.count += 1
        if len(self.examples) < 5:
            self.examples.append(f"{topic}[{partition}]@{offset}: {reason}")
        line = {
            "topic": topic,
            "partition": partition,
            "offset": offset,
            "timestamp": _iso_ms(timestamp_ms),
            "timestamp_ms": timestamp_ms,
            "reason": reason,
            "key_base64": None if key is None else base64.b64encode(key).decode(),
            "value_base64": None if value is None else base64.b64encode(value).decode(),
        }
        self._spool.write(orjson.dumps(line, option=orjson.OPT_APPEND_NEWLINE))

    def copy_to(self, target: IO[bytes]) -> None:
        self._spool.seek(0)
        shutil.copyfileobj(self._spool, target, 1 << 20)

    def close(self) -> None:
        self._spool.close()


def _iso_ms(timestamp_ms: int) -> str | None:
    if timestamp_ms < 0:
        return None
    return dt.datetime.fromtimestamp(timestamp_ms / 1000, dt.UTC).isoformat(timespec="milliseconds")


# --- progress ------------------------------------------------------------------------------------


class Progress:
    """Logs records/s every ``interval`` seconds during long reads."""

    def __init__(self, what: str, interval: float = PROGRESS_INTERVAL_S, logger: Log = log):
        self.what = what
        self.interval = interval
        self.logger = logger
        self.started = time.monotonic()
        self._next = self.started + interval
        self.read = 0

    def tick(self, read: int) -> None:
        self.read += read
        now = time.monotonic()
        if now >= self._next:
            self._next = now + self.interval
            elapsed = now - self.started
            self.logger.info("%s: %d records read in %.1f s (%.0f records/s)",
                             self.what, self.read, elapsed, self.read / elapsed if elapsed else 0.0)


# --- window mode ---------------------------------------------------------------------------------


def list_partitions(consumer: Consumer, topics: Sequence[str], timeout: float) -> list[tuple[str, int]]:
    """Every (topic, partition) of the topics, sorted; a missing topic is an error."""
    found: list[tuple[str, int]] = []
    for topic in topics:
        metadata = consumer.list_topics(topic, timeout=timeout)
        described = metadata.topics.get(topic)
        if described is None or described.error is not None or not described.partitions:
            reason = described.error if described is not None and described.error else "no partitions"
            raise WindowError(f"topic {topic!r} cannot be read: {reason}")
        found.extend((topic, partition) for partition in described.partitions)
    return sorted(found)


def plan_window(consumer: Consumer, topics: Sequence[str], window: TimeWindow,
                timeout: float = 30.0) -> list[PartitionPlan]:
    """Watermarks and ``offsets_for_times(since)`` for every partition, taken once, now."""
    partitions = list_partitions(consumer, topics, timeout)
    answers = consumer.offsets_for_times(
        [TopicPartition(topic, partition, window.since_ms) for topic, partition in partitions], timeout=timeout)
    by_partition = {(answer.topic, answer.partition): answer for answer in answers}
    plans = []
    for topic, partition in partitions:
        answer = by_partition[(topic, partition)]
        if answer.error is not None:
            raise KafkaException(answer.error)
        low, high = consumer.get_watermark_offsets(TopicPartition(topic, partition), timeout=timeout, cached=False)
        plans.append(plan_partition(topic, partition, low, high, answer.offset))
    return plans


@dataclass(frozen=True, slots=True)
class ReadLimits:
    batch_size: int = DEFAULT_BATCH_SIZE
    poll_timeout_s: float = 1.0
    stall_timeout_s: float = 60.0


def read_window(
    consumer: Consumer,
    plans: Iterable[PartitionPlan],
    window: TimeWindow,
    encoder: EnvelopeEncoder,
    write: Callable[[bytes], Any],
    dead_letters: DeadLetters,
    *,
    on_retention_gap: str = "fail",
    limits: ReadLimits = ReadLimits(),
    progress: Progress | None = None,
    logger: Log = log,
    write_preamble: bool = True,
) -> list[PartitionStats]:
    """Read each planned partition in turn (assign, not subscribe) and write its window's records.

    Partitions are read one after another in (topic, partition) order and each in offset order,
    so the output is the same bytes whenever the same window is read from the same topic content.
    """
    if on_retention_gap not in ("fail", "warn"):
        raise ValueError(f"on_retention_gap must be 'fail' or 'warn', not {on_retention_gap!r}")
    progress = progress or Progress("window read", logger=logger)
    if write_preamble:
        write(encoder.preamble())
    results = []
    for plan in plans:
        stats = PartitionStats(plan.topic, plan.partition)
        results.append(stats)
        warn_if_emptied_by_retention(plan, logger)
        if plan.is_empty:
            continue
        with cyclic_gc_paused():
            _read_partition(consumer, plan, window, encoder, write, dead_letters, stats,
                            on_retention_gap, limits, progress, logger)
    return results


def warn_if_emptied_by_retention(plan: PartitionPlan, logger: Log) -> None:
    # Nothing is kept, so the deleted records' timestamps are unknown: a gap cannot be told apart
    # from a partition that simply had no traffic in the window. Say so rather than stay silent.
    if plan.low == plan.high and plan.low > 0:
        logger.warning("%s[%d] keeps no records (offsets below %d were deleted by retention); if the "
                       "window had records there, they are gone", plan.topic, plan.partition, plan.low)


def _read_partition(
    consumer: Consumer,
    plan: PartitionPlan,
    window: TimeWindow,
    encoder: EnvelopeEncoder,
    write: Callable[[bytes], Any],
    dead_letters: DeadLetters,
    stats: PartitionStats,
    on_retention_gap: str,
    limits: ReadLimits,
    progress: Progress,
    logger: Log,
) -> None:
    topic, partition = plan.topic, plan.partition
    stop_offset = plan.high
    check_retention = plan.starts_at_retention_edge

    def check_first_timestamp(timestamp_ms: int) -> None:
        gap = retention_gap_message(plan, timestamp_ms, window)
        if gap is not None:
            if on_retention_gap == "fail":
                raise RetentionGapError(gap)
            logger.warning("%s", gap)
    consumer.assign([TopicPartition(topic, partition, plan.start)])
    last_progress = time.monotonic()
    next_offset = plan.start
    done = False
    try:
        while not done:
            # consume() waits until it has num_messages or the timeout passes: never ask for more
            # than the partition still holds, or the last call of every partition waits it out.
            wanted = max(1, min(limits.batch_size, stop_offset - next_offset))
            # Any: fetched records always have topic, partition and offset (the stubs say Optional).
            messages: list[Any] = consumer.consume(num_messages=wanted, timeout=limits.poll_timeout_s)
            if not messages:
                position = consumer.position([TopicPartition(topic, partition)])[0].offset
                if position >= stop_offset:
                    break  # e.g. the last offsets were transaction markers, never delivered
                if time.monotonic() - last_progress > limits.stall_timeout_s:
                    raise StalledReadError(
                        f"{topic}[{partition}]: no records for {limits.stall_timeout_s:.0f} s at offset "
                        f"{position} although the high watermark was {stop_offset} when the read began")
                continue
            last_progress = time.monotonic()
            # The C loop, but for a partition's first record when it must be checked against the
            # retention edge: that one goes through the Python loop.
            parts = [messages[:1], messages[1:]] if check_retention else [messages]
            for part in parts:
                if done or not part:
                    break
                batch = None if check_retention else encoder.window_batch(part, topic, partition, stop_offset, window)
                if batch is None:
                    batch = window_batch_python(encoder, part, topic, partition, stop_offset, window,
                                                check_first_timestamp if check_retention else None)
                    check_retention = False
                for message in batch.no_timestamp:
                    _dead_letter_without_timestamp(dead_letters, stats, topic, partition, message)
                if batch.error_index >= 0:
                    raise _read_error(part[batch.error_index].error(), topic, partition)
                stats.outside_window += batch.outside_window
                _keep_refused(dead_letters, stats, topic, partition, batch.refused)
                if batch.written:
                    if stats.first_offset is None:
                        stats.first_offset = batch.first_written
                    stats.last_offset = batch.last_written
                    stats.count += batch.written
                done = batch.done
                next_offset = batch.last_offset + 1
                write(batch.chunk)
            progress.tick(len(messages))
    finally:
        consumer.unassign()


def _dead_letter_without_timestamp(dead_letters: DeadLetters, stats: PartitionStats, topic: str, partition: int,
                                   message: Any) -> None:
    dead_letters.add(topic, partition, message.offset(), message.timestamp()[1],
                     "record has no timestamp: cannot place it in a time window", message.key(), message.value())
    stats.dead_letters += 1


def _keep_refused(dead_letters: DeadLetters, stats: PartitionStats, topic: str, partition: int,
                  refused: list[tuple[Any, UndecodableRecord]]) -> None:
    for message, reason in refused:
        dead_letters.add(topic, partition, message.offset(), message.timestamp()[1], str(reason),
                         message.key(), message.value())
    stats.dead_letters += len(refused)


def window_batch_python(
    encoder: EnvelopeEncoder,
    messages: list[Any],
    topic: str,
    partition: int,
    stop_offset: int,
    window: TimeWindow,
    check_first_timestamp: Callable[[int], None] | None = None,
) -> WindowBatch:
    """One batch of a partition's messages: those in the window encoded, the others counted or kept
    for the dead letters; stops at the stop offset, at a record at or past ``window.stop_ms``, or at a
    message with an error. What the C loop (``encoder.window_batch``) does, and its reference."""
    since_ms, until_ms, stop_ms = window.since_ms, window.until_ms, window.stop_ms
    accepted: list[Any] = []
    no_timestamp: list[Any] = []
    outside = 0
    offset = -1
    done = False
    for index, message in enumerate(messages):
        if message.error() is not None:
            return WindowBatch(b"", done, offset, outside, 0, -1, -1, no_timestamp, [], index)
        offset = message.offset()
        if offset >= stop_offset:
            done = True
            break
        timestamp_ms = message.timestamp()[1]
        if check_first_timestamp is not None:
            check_first_timestamp(timestamp_ms)
            check_first_timestamp = None
        if timestamp_ms >= stop_ms:
            done = True
            break
        if since_ms <= timestamp_ms < until_ms:
            accepted.append(message)
        elif timestamp_ms < 0:
            no_timestamp.append(message)
        else:
            outside += 1
        if offset + 1 >= stop_offset:
            done = True
            break
    refused = encoder.add_messages(topic, partition, accepted) if accepted else []
    if refused:
        refused_offsets = {message.offset() for message, _ in refused}
        written_offsets = [m.offset() for m in accepted if m.offset() not in refused_offsets]
    else:
        written_offsets = [accepted[0].offset(), accepted[-1].offset()] if accepted else []
    written = len(accepted) - len(refused)
    return WindowBatch(encoder.drain(), done, offset, outside, written,
                       written_offsets[0] if written else -1, written_offsets[-1] if written else -1,
                       no_timestamp, refused, -1)


def _read_error(error: KafkaError, topic: str, partition: int) -> KafkaException:
    if error.code() == KafkaError._AUTO_OFFSET_RESET:
        return KafkaException(KafkaError(error.code(), (
            f"{topic}[{partition}]: the planned start offset is no longer on the broker (deleted by "
            f"retention while reading?): {error.str()}")))
    return KafkaException(KafkaError(error.code(), f"{topic}[{partition}]: {error.str()}"))


# --- group mode ----------------------------------------------------------------------------------


class PartitionSpools:
    """One local spool per partition, so group-mode output is in (partition, offset) order too."""

    def __init__(self) -> None:
        self._spools: dict[tuple[str, int], IO[bytes]] = {}

    def write(self, topic: str, partition: int, chunk: bytes) -> None:
        if not chunk:
            return
        spool = self._spools.get((topic, partition))
        if spool is None:
            spool = self._spools[(topic, partition)] = tempfile.TemporaryFile()  # noqa: SIM115
        spool.write(chunk)

    def copy_to(self, target: IO[bytes]) -> None:
        for key in sorted(self._spools):
            spool = self._spools[key]
            spool.seek(0)
            shutil.copyfileobj(spool, target, 1 << 20)

    def close(self) -> None:
        for spool in self._spools.values():
            spool.close()
        self._spools.clear()


@dataclass(slots=True)
class GroupBatch:
    stats: dict[tuple[str, int], PartitionStats]
    next_offsets: dict[tuple[str, int], int]  # what to commit: last read offset + 1 per partition

    @property
    def record_count(self) -> int:
        return sum(stats.count for stats in self.stats.values())

    def commit_offsets(self) -> list[TopicPartition]:
        return [TopicPartition(topic, partition, offset)
                for (topic, partition), offset in sorted(self.next_offsets.items())]


def read_group_batch(
    consumer: Consumer,
    encoder: EnvelopeEncoder,
    spools: PartitionSpools,
    dead_letters: DeadLetters,
    *,
    max_records: int | None,
    max_duration_s: float | None,
    join_timeout_s: float = 60.0,
    limits: ReadLimits = ReadLimits(),
    progress: Progress | None = None,
    logger: Log = log,
) -> GroupBatch:
    """Read from an already subscribed consumer until ``max_records``, ``max_duration_s``, or caught up.

    The caller writes ``encoder.preamble()`` and then the spools to the output. Nothing is committed
    here: the caller commits :meth:`GroupBatch.commit_offsets` once the output
    is durably written (at-least-once). Records past ``max_records`` in the last fetched batch are
    not written and not committed, so the next run reads them.
    """
    progress = progress or Progress("group read", logger=logger)
    started = time.monotonic()
    deadline = started + max_duration_s if max_duration_s is not None else None
    batch = GroupBatch({}, {})
    read = 0
    while True:
        if max_records is not None and read >= max_records:
            break
        now = time.monotonic()
        if deadline is not None and now >= deadline:
            break
        wanted = limits.batch_size if max_records is None else min(limits.batch_size, max_records - read)
        timeout = limits.poll_timeout_s if deadline is None else max(0.0, min(limits.poll_timeout_s, deadline - now))
        messages: list[Any] = consumer.consume(num_messages=wanted, timeout=timeout)
        if not messages:
            assignment = consumer.assignment()
            if assignment and _caught_up(consumer, assignment, batch, limits.poll_timeout_s * 5):
                break
            if not assignment and time.monotonic() - started > join_timeout_s:
                raise StalledReadError(f"no partitions assigned to the consumer group within {join_timeout_s:.0f} s")
            continue
        current: tuple[str, int] | None = None
        for message in messages:
            error = message.error()
            if error is not None:
                raise _read_error(error, message.topic() or "?", message.partition() or -1)
            topic, partition, offset = message.topic(), message.partition(), message.offset()
            key_pair = (topic, partition)
            if key_pair != current:
                if current is not None:
                    spools.write(*current, encoder.drain())
                current = key_pair
            stats = batch.stats.get(key_pair)
            if stats is None:
                stats = batch.stats[key_pair] = PartitionStats(topic, partition)
            timestamp_ms = message.timestamp()[1]
            key, value = message.key(), message.value()
            try:
                encoder.add(topic, partition, offset, timestamp_ms, key, value, message.headers())
            except UndecodableRecord as bad:
                dead_letters.add(topic, partition, offset, timestamp_ms, str(bad), key, value)
                stats.dead_letters += 1
            else:
                stats.wrote(offset)
            batch.next_offsets[key_pair] = offset + 1
            read += 1
        if current is not None:
            spools.write(*current, encoder.drain())
        progress.tick(len(messages))
    return batch


def _caught_up(consumer: Consumer, assignment: list[TopicPartition], batch: GroupBatch, timeout: float) -> bool:
    positions = consumer.position(assignment)
    for position in positions:
        low, high = consumer.get_watermark_offsets(position, timeout=timeout, cached=False)
        offset: int | None = position.offset
        if offset is None or offset < 0:
            offset = batch.next_offsets.get((position.topic, position.partition))
        if offset is None:
            # Nothing fetched yet: caught up only if the partition is empty from the group's start.
            committed = consumer.committed([position], timeout=timeout)[0].offset
            offset = committed if committed >= 0 else low
        if offset < high:
            return False
    return True
