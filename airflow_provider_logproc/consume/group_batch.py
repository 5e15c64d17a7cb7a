"""The group-mode read: a consumer group's next batch, committed only once the output is written."""

from __future__ import annotations

import logging
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from typing import IO, Any

from confluent_kafka import Consumer, TopicPartition

from airflow_provider_logproc.consume.dead_letters import DeadLetters
from airflow_provider_logproc.consume.encoders import EnvelopeEncoder
from airflow_provider_logproc.consume.envelope import UndecodableRecord
from airflow_provider_logproc.consume.loop import Log, Progress, ReadLimits, StalledReadError, read_error
from airflow_provider_logproc.consume.partition_stats import PartitionStats

log = logging.getLogger(__name__)
# ReadLimits is frozen: one shared default is safe.
_DEFAULT_LIMITS = ReadLimits()


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
    first_offsets: dict[tuple[str, int], int] = field(default_factory=dict)

    @property
    def record_count(self) -> int:
        return sum(stats.count for stats in self.stats.values())

    def commit_offsets(self) -> list[TopicPartition]:
        return [TopicPartition(topic, partition, offset)
                for (topic, partition), offset in sorted(self.next_offsets.items())]

    def ranges(self) -> list[dict[str, Any]]:
        """Return the offsets read, ``[start, end)`` per partition: what a rerun of the same run must read again."""
        return [{"topic": topic, "partition": partition, "start": self.first_offsets[(topic, partition)],
                 "end": end} for (topic, partition), end in sorted(self.next_offsets.items())]


def read_group_batch(
    consumer: Consumer,
    encoder: EnvelopeEncoder,
    spools: PartitionSpools,
    dead_letters: DeadLetters,
    *,
    max_records: int | None,
    max_duration_s: float | None,
    join_timeout_s: float = 60.0,
    limits: ReadLimits = _DEFAULT_LIMITS,
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
        read += _take(messages, batch, encoder, spools, dead_letters)
        progress.tick(len(messages))
    return batch


def _take(messages: list[Any], batch: GroupBatch, encoder: EnvelopeEncoder, spools: PartitionSpools,
          dead_letters: DeadLetters, ends: dict[tuple[str, int], int] | None = None) -> int:
    """Encode ``messages`` into their partitions' spools (or dead letters); returns how many were taken.

    With ``ends``, a message at or past its partition's end offset is left out (a replay reads a range).
    """
    taken = 0
    current: tuple[str, int] | None = None
    for message in messages:
        error = message.error()
        if error is not None:
            raise read_error(error, message.topic() or "?", message.partition() or -1)
        topic, partition, offset = message.topic(), message.partition(), message.offset()
        key_pair = (topic, partition)
        if ends is not None and offset >= ends.get(key_pair, 0):
            continue
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
        batch.first_offsets.setdefault(key_pair, offset)
        batch.next_offsets[key_pair] = offset + 1
        taken += 1
    if current is not None:
        spools.write(*current, encoder.drain())
    return taken


def read_offset_ranges(
    consumer: Consumer,
    encoder: EnvelopeEncoder,
    spools: PartitionSpools,
    dead_letters: DeadLetters,
    ranges: list[dict[str, Any]],
    *,
    limits: ReadLimits = _DEFAULT_LIMITS,
    progress: Progress | None = None,
    logger: Log = log,
) -> GroupBatch:
    """Read exactly the offsets ``[start, end)`` of each range again (a rerun of a committed group batch).

    The consumer is assigned the partitions (no group subscription, nothing committed). Fails naming
    the ranges not read when the broker stops delivering them (e.g. retention removed them).
    """
    progress = progress or Progress("replay", logger=logger)
    ends = {(r["topic"], int(r["partition"])): int(r["end"]) for r in ranges if int(r["end"]) > int(r["start"])}
    consumer.assign([TopicPartition(r["topic"], int(r["partition"]), int(r["start"]))
                     for r in ranges if (r["topic"], int(r["partition"])) in ends])
    batch = GroupBatch({}, {})
    last_progress = time.monotonic()
    while any(batch.next_offsets.get(key, -1) < end for key, end in ends.items()):
        messages: list[Any] = consumer.consume(num_messages=limits.batch_size, timeout=limits.poll_timeout_s)
        if _take(messages, batch, encoder, spools, dead_letters, ends):
            last_progress = time.monotonic()
            progress.tick(len(messages))
        elif time.monotonic() - last_progress > limits.stall_timeout_s:
            missing = [f"{topic}[{partition}] {batch.next_offsets.get((topic, partition), '?')}..{end}"
                       for (topic, partition), end in sorted(ends.items())
                       if batch.next_offsets.get((topic, partition), -1) < end]
            raise StalledReadError(f"replaying this run's offsets: nothing for {limits.stall_timeout_s:.0f} s; "
                                   f"not read: {', '.join(missing)} (removed by retention?)")
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
