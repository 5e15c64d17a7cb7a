"""The window read: every partition of an exact time window, in (topic, partition, offset) order.

:func:`read_window` takes a ready ``confluent_kafka.Consumer`` (the operator builds it from the
official ``kafka`` connection), the plans of :func:`plan_window` and a ``write`` callable that
appends bytes to the output, and returns per partition statistics. Records that cannot be
deserialized go to a :class:`~.dead_letters.DeadLetters` spool. Also here: what both reads share
(:class:`ReadLimits`, :class:`Progress`, :class:`StalledReadError`). The group-mode read is in
:mod:`.group_batch`, the encoders in :mod:`.encoders`. No Airflow import here.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from confluent_kafka import Consumer, KafkaError, KafkaException, TopicPartition

from airflow_provider_logproc.consume.dead_letters import DeadLetters
from airflow_provider_logproc.consume.encoders import EnvelopeEncoder, WindowBatch
from airflow_provider_logproc.consume.envelope import UndecodableRecord
from airflow_provider_logproc.consume.partition_stats import PartitionStats
from airflow_provider_logproc.garbage_collection import cyclic_gc_paused
from airflow_provider_logproc.kafka.window import (
    PartitionPlan,
    RetentionGapError,
    TimeWindow,
    WindowError,
    plan_partition,
    retention_gap_message,
)

log = logging.getLogger(__name__)


class Log(Protocol):
    """What the loops log through: a stdlib logger or Airflow's task logger."""

    def info(self, msg: Any, /, *args: Any, **kwargs: Any) -> Any: ...

    def warning(self, msg: Any, /, *args: Any, **kwargs: Any) -> Any: ...

# Messages asked of consume() at a time. The batch's envelopes (~400 bytes each) are written as one
# chunk; at 1,000 the chunk (~400 KB) is still in the CPU cache when write() copies it to the page
# cache, at 10,000 (~4 MB) it is not (that copy was 22% of the read's CPU, perf). With the broker
# on another CPU the read's CPU went 1.94 -> 1.66 s at 1M records, 7.39 -> 5.57 s at 4M
# (bench_consume --pin-broker, medians). librdkafka fetches in the background whatever the size.
DEFAULT_BATCH_SIZE = 1_000
PROGRESS_INTERVAL_S = 10.0


class StalledReadError(RuntimeError):
    """A partition delivered nothing for too long although records remain to be read."""


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
                    raise read_error(part[batch.error_index].error(), topic, partition)
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


def read_error(error: KafkaError, topic: str, partition: int) -> KafkaException:
    if error.code() == KafkaError._AUTO_OFFSET_RESET:
        return KafkaException(KafkaError(error.code(), (
            f"{topic}[{partition}]: the planned start offset is no longer on the broker (deleted by "
            f"retention while reading?): {error.str()}")))
    return KafkaException(KafkaError(error.code(), f"{topic}[{partition}]: {error.str()}"))
