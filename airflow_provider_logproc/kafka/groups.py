"""Partition groups: how a window's consume is split over mapped tasks (one task per group).

A group is a contiguous run of the sorted (topic, partition) list, so the groups' outputs, read in
group order, hold the records in the same (topic, partition, offset) order as the single task's
output. The split depends only on the partition list and the group count: a rerun of a day reads
the same partitions into the same part.

How many groups: the ``consume_groups`` DAG param when given (capped at the partition count);
``0`` means *auto*: one group (the single-task path) for a window holding fewer than
``LOGPROC_MAPPED_CONSUME_MIN_RECORDS`` offsets (default 1,000,000), else
``min(partitions, LOGPROC_CONSUME_GROUPS)`` (default 4).
"""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Sequence
from typing import Any

GROUPS_ENV = "LOGPROC_CONSUME_GROUPS"
MIN_RECORDS_ENV = "LOGPROC_MAPPED_CONSUME_MIN_RECORDS"
DEFAULT_GROUPS = 4
DEFAULT_MIN_RECORDS = 1_000_000


class PartitionGroupError(ValueError):
    """A group count or a partition selection that cannot be used."""


def split_partitions(partitions: Sequence[tuple[str, int]], groups: int) -> list[list[tuple[str, int]]]:
    """Split the sorted ``partitions`` into ``groups`` contiguous runs whose sizes differ by at most one."""
    if groups < 1:
        raise PartitionGroupError(f"the group count must be at least 1, got {groups}")
    ordered = sorted(partitions)
    count = min(groups, len(ordered)) or 1
    size, extra = divmod(len(ordered), count)
    result, start = [], 0
    for index in range(count):
        end = start + size + (1 if index < extra else 0)
        result.append(ordered[start:end])
        start = end
    return result


def choose_group_count(requested: int, partitions: int, window_offsets: int, *,
                       default_groups: int | None = None, min_records: int | None = None) -> int:
    """Return how many groups to read the window in (``requested`` 0 = auto, see the module doc)."""
    if requested < 0:
        raise PartitionGroupError(f"consume_groups must be 0 (auto) or a positive count, got {requested}")
    if partitions < 1:
        return 1
    if requested:
        return min(requested, partitions)
    default_groups = default_groups or int(os.environ.get(GROUPS_ENV, DEFAULT_GROUPS))
    min_records = min_records if min_records is not None else int(os.environ.get(MIN_RECORDS_ENV,
                                                                                  DEFAULT_MIN_RECORDS))
    if window_offsets < min_records:
        return 1
    return max(1, min(partitions, default_groups))


def window_offsets(consumer: Any, topics: Sequence[str], since: dt.datetime, until: dt.datetime,
                   timeout: float = 30.0) -> dict[tuple[str, int], int]:
    """Per partition, how many offsets lie between ``since`` and ``until`` (by timestamp; an estimate of size)."""
    from confluent_kafka import TopicPartition

    from airflow_provider_logproc.consume.loop import list_partitions
    from airflow_provider_logproc.kafka.window import to_epoch_ms

    partitions = list_partitions(consumer, topics, timeout)
    bounds = {}
    for moment in (since, until):
        answers = consumer.offsets_for_times([TopicPartition(t, p, to_epoch_ms(moment)) for t, p in partitions],
                                             timeout=timeout)
        bounds[moment] = {(a.topic, a.partition): a.offset for a in answers}
    sizes = {}
    for topic, partition in partitions:
        _low, high = consumer.get_watermark_offsets(TopicPartition(topic, partition), timeout=timeout, cached=False)
        start, end = bounds[since][(topic, partition)], bounds[until][(topic, partition)]
        start = high if start < 0 else start  # -1: no record at or after the time
        end = high if end < 0 else end
        sizes[(topic, partition)] = max(0, end - start)
    return sizes


def plan_partition_groups(topics: Sequence[str], since: dt.datetime, until: dt.datetime, requested: int,
                          kafka_config_id: str = "kafka_default") -> list[list[list[Any]]]:
    """Ask the broker for the partitions and the window's size; return the groups as ``[[topic, partition], ...]``."""
    from confluent_kafka import Consumer

    from airflow_provider_logproc.kafka.config import connection_config

    config = {**connection_config(kafka_config_id), "enable.auto.commit": False}
    config.setdefault("group.id", "logproc-partition-groups")
    consumer = Consumer(config)
    try:
        sizes = window_offsets(consumer, topics, since, until)
    finally:
        consumer.close()
    count = choose_group_count(int(requested or 0), len(sizes), sum(sizes.values()))
    return [[[topic, partition] for topic, partition in group] for group in split_partitions(list(sizes), count)]


def parse_partitions(selection: Any, topics: Sequence[str]) -> set[tuple[str, int]] | None:
    """Read a consume task's ``partitions`` (ints of its one topic, or ``[topic, partition]`` pairs); None = all."""
    if selection is None or selection == "" or selection == "None":
        return None
    if isinstance(selection, str):
        import json

        try:
            selection = json.loads(selection)
        except ValueError:
            raise PartitionGroupError(f"partitions {selection!r} is not a JSON list") from None
    if not isinstance(selection, (list, tuple)) or not selection:
        raise PartitionGroupError(f"partitions must be a non-empty list, got {selection!r}")
    chosen: set[tuple[str, int]] = set()
    for item in selection:
        if isinstance(item, int) and not isinstance(item, bool):
            if len(topics) != 1:
                raise PartitionGroupError(f"partition {item} names no topic, and {len(topics)} topics are read: "
                                          "give [topic, partition] pairs")
            chosen.add((topics[0], item))
        elif isinstance(item, (list, tuple)) and len(item) == 2 and isinstance(item[0], str) \
                and isinstance(item[1], int):
            chosen.add((item[0], item[1]))
        else:
            raise PartitionGroupError(f"partitions: {item!r} is neither a partition number nor [topic, partition]")
    return chosen


def parts_per_group(parts: int, groups: int) -> int:
    """Return the Batch parts each group's upload makes, so that the day's total stays about ``parts``."""
    return max(1, -(-int(parts) // max(1, int(groups))))


__all__ = [
    "PartitionGroupError",
    "choose_group_count",
    "parse_partitions",
    "parts_per_group",
    "plan_partition_groups",
    "split_partitions",
    "window_offsets",
]
