"""How far a Kafka stream has got past a time window: the check shared by the sensor and its trigger.

A window ``[since, until)`` is *complete* on a partition when either

* the partition's latest record (the one at ``high_watermark - 1``) carries a timestamp
  ``>= until + max_lateness`` — the stream has moved past the window plus the allowed lateness; or
* the partition's high watermark has not moved for ``idle_timeout`` — nothing new is arriving.

Idleness is measured from *observed* high-watermark changes (a record's own timestamp says when the
device made it, not when it arrived). Each partition's state keeps the absolute time (epoch seconds)
at which its current high watermark was first seen, so the state can be serialized into a trigger
and a rebuilt trigger resumes the idle clock where it was instead of restarting it.

The module has two halves:

* pure functions (:func:`evaluate`, the state and its messages) with no I/O, unit-tested on their
  own (the sensor's arguments are coerced by :mod:`airflow_provider_logproc._templating`);
* one blocking function (:func:`observe_partitions`) that asks the cluster for metadata and
  watermarks and reads the latest record of each partition with a short-lived *assigned* consumer
  (no group join, no commit: checking never changes anything on the cluster).

:func:`check_window` combines them; the sensor calls it in poke mode, the trigger in a thread.
"""

from __future__ import annotations

import datetime as dt
import functools
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any, Literal

from airflow_provider_logproc.kafka.config import connection_config
from airflow_provider_logproc.kafka.window import to_epoch_ms

# confluent_kafka is imported where a check runs, not here: the sensor and trigger import this
# module when a DAG file is parsed, and parsing must stay cheap.
if TYPE_CHECKING:
    from confluent_kafka import Consumer

PartitionStatus = Literal["passed", "idle", "behind"]

# The consumer only reads one record per partition: no group, no commits, no topic creation.
_PROBE_CONSUMER_OVERRIDES: dict[str, Any] = {
    "enable.auto.commit": False,
    "enable.auto.offset.store": False,
    "enable.partition.eof": True,
    "allow.auto.create.topics": False,
    # If high_watermark - 1 is gone (retention, compaction), jump to the end rather than scan the
    # whole partition from the start.
    "auto.offset.reset": "latest",
}
# librdkafka wants a group.id for any consumer; with assign() and no commits it is never used.
_FALLBACK_GROUP_ID = "logproc-window-sensor"


@functools.cache
def _permanent_errors() -> frozenset[int]:
    """Errors that another check will not cure: fail the task instead of waiting for the timeout."""
    from confluent_kafka import KafkaError

    return frozenset({
        KafkaError._AUTHENTICATION, KafkaError.SASL_AUTHENTICATION_FAILED, KafkaError.TOPIC_AUTHORIZATION_FAILED,
        KafkaError.CLUSTER_AUTHORIZATION_FAILED, KafkaError._SSL, KafkaError._FATAL,
    })


class KafkaUnavailableError(Exception):
    """The cluster did not answer in time (broker down, network): worth retrying on the next check."""


class KafkaWindowConfigError(ValueError):
    """The sensor's arguments or the cluster's topics do not allow a check (not worth retrying)."""


# --------------------------------------------------------------------------------------------------
# Messages (pure)


def format_timestamp_ms(timestamp_ms: int | None) -> str:
    if timestamp_ms is None:
        return "none"
    moment = dt.datetime.fromtimestamp(timestamp_ms / 1000, tz=dt.UTC)
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


# --------------------------------------------------------------------------------------------------
# State and evaluation (pure)


@dataclass(frozen=True, slots=True)
class PartitionObservation:
    """What one check saw on a partition."""

    topic: str
    partition: int
    low_watermark: int
    high_watermark: int
    latest_timestamp_ms: int | None  # None: partition empty, or its last record could not be read


@dataclass(frozen=True, slots=True)
class PartitionProgress:
    """A partition's progress, and the state carried to the next check (serializable as a dict)."""

    topic: str
    partition: int
    high_watermark: int
    # Epoch seconds at which this high watermark was first observed: the idle clock's start.
    watermark_seen_at: float
    latest_timestamp_ms: int | None
    # Once the stream has passed until + max_lateness it stays passed: records that arrive later
    # with older timestamps are beyond the allowed lateness by definition.
    passed: bool
    status: PartitionStatus

    @property
    def key(self) -> tuple[str, int]:
        return self.topic, self.partition

    @property
    def label(self) -> str:
        return f"{self.topic}[{self.partition}]"

    def to_state(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_state(cls, state: Mapping[str, Any]) -> PartitionProgress:
        try:
            latest = state.get("latest_timestamp_ms")
            return cls(
                topic=str(state["topic"]),
                partition=int(state["partition"]),
                high_watermark=int(state["high_watermark"]),
                watermark_seen_at=float(state["watermark_seen_at"]),
                latest_timestamp_ms=None if latest is None else int(latest),
                passed=bool(state.get("passed", False)),
                status=state.get("status", "behind"),
            )
        except (KeyError, TypeError, ValueError) as error:
            raise KafkaWindowConfigError(f"invalid partition state {dict(state)!r}: {error}") from None

    def describe(self, now: float) -> str:
        unchanged_for = max(0.0, now - self.watermark_seen_at)
        return (f"{self.label} latest record {format_timestamp_ms(self.latest_timestamp_ms)}, "
                f"high watermark {self.high_watermark} (unchanged for {unchanged_for:.0f}s)")


@dataclass(frozen=True, slots=True)
class WindowProgress:
    """The result of one check over every partition of the topics."""

    topics: tuple[str, ...]
    window_end_ms: int
    threshold_ms: int  # until + max_lateness
    idle_timeout: float | None
    checked_at: float  # epoch seconds
    partitions: tuple[PartitionProgress, ...]

    @property
    def complete(self) -> bool:
        return all(p.status != "behind" for p in self.partitions)

    @property
    def behind(self) -> list[PartitionProgress]:
        return [p for p in self.partitions if p.status == "behind"]

    def state(self) -> list[dict[str, Any]]:
        """Return what the next check needs (JSON-serializable): one dict per partition."""
        return [p.to_state() for p in self.partitions]

    def partition_lines(self) -> list[str]:
        """One human-readable line per partition, for the task / triggerer log."""
        idle = "never" if self.idle_timeout is None else f"{self.idle_timeout:g}s"
        return [f"{p.describe(self.checked_at)} → {p.status} "
                f"(needs ≥ {format_timestamp_ms(self.threshold_ms)} or idle {idle})"
                for p in self.partitions]

    def behind_summary(self) -> str:
        behind = self.behind
        return (f"{len(behind)} of {len(self.partitions)} partitions still behind "
                f"{format_timestamp_ms(self.threshold_ms)} (until + max_lateness): "
                + "; ".join(p.describe(self.checked_at) for p in behind))

    def summary(self) -> dict[str, Any]:
        """Return the sensor's XCom value: small, JSON-serializable."""
        return {
            "topics": list(self.topics),
            "threshold": format_timestamp_ms(self.threshold_ms),
            "partitions": [
                {"topic": p.topic, "partition": p.partition, "high_watermark": p.high_watermark,
                 "latest_timestamp": format_timestamp_ms(p.latest_timestamp_ms), "status": p.status}
                for p in self.partitions
            ],
        }


def state_by_partition(state: Iterable[Mapping[str, Any]] | None) -> dict[tuple[str, int], PartitionProgress]:
    return {progress.key: progress for progress in map(PartitionProgress.from_state, state or ())}


def evaluate(
    observations: Iterable[PartitionObservation],
    previous: Mapping[tuple[str, int], PartitionProgress],
    *,
    topics: Sequence[str],
    threshold_ms: int,
    idle_timeout: float | None,
    now: float,
    window_end_ms: int | None = None,
) -> WindowProgress:
    """Judge each observed partition against the threshold and the idle clock (no I/O)."""
    partitions = []
    for seen in sorted(observations, key=lambda o: (o.topic, o.partition)):
        before = previous.get((seen.topic, seen.partition))
        unchanged = before is not None and before.high_watermark == seen.high_watermark
        seen_at = before.watermark_seen_at if unchanged and before is not None else now
        latest = seen.latest_timestamp_ms
        if latest is None and before is not None and (unchanged or before.passed):
            latest = before.latest_timestamp_ms  # not re-read: nothing it could change
        passed = (before is not None and before.passed) or (latest is not None and latest >= threshold_ms)
        status: PartitionStatus
        if passed:
            status = "passed"
        elif idle_timeout is not None and now - seen_at >= idle_timeout:
            status = "idle"
        else:
            status = "behind"
        partitions.append(PartitionProgress(
            topic=seen.topic, partition=seen.partition, high_watermark=seen.high_watermark,
            watermark_seen_at=seen_at, latest_timestamp_ms=latest, passed=passed, status=status))
    return WindowProgress(
        topics=tuple(topics), window_end_ms=threshold_ms if window_end_ms is None else window_end_ms,
        threshold_ms=threshold_ms, idle_timeout=idle_timeout, checked_at=now, partitions=tuple(partitions))


# --------------------------------------------------------------------------------------------------
# Talking to the cluster (blocking)


def probe_consumer_config(connection_config: Mapping[str, Any]) -> dict[str, Any]:
    """Return the connection's librdkafka config, made safe for a read-only probe consumer."""
    config = dict(connection_config)
    config.setdefault("group.id", _FALLBACK_GROUP_ID)
    config.update(_PROBE_CONSUMER_OVERRIDES)
    return config


def build_consumer_config(kafka_config_id: str) -> dict[str, Any]:
    """Return the connection's config for a probe consumer: the sensor connects like the consume task."""
    return probe_consumer_config(connection_config(kafka_config_id))


def _bootstrap(config: Mapping[str, Any]) -> str:
    return str(config.get("bootstrap.servers", "?"))


def _list_partitions(consumer: Consumer, topics: Sequence[str], config: Mapping[str, Any],
                     timeout: float) -> list[tuple[str, int]]:
    from confluent_kafka import KafkaError, KafkaException

    found: list[tuple[str, int]] = []
    for topic in topics:
        try:
            metadata = consumer.list_topics(topic=topic, timeout=timeout)
        except KafkaException as error:
            kafka_error = error.args[0]
            if isinstance(kafka_error, KafkaError) and kafka_error.code() in _permanent_errors():
                raise KafkaWindowConfigError(
                    f"{_bootstrap(config)} refused the connection's credentials or TLS settings: "
                    f"{kafka_error.str()}") from None
            raise KafkaUnavailableError(
                f"no metadata for topic {topic!r} from {_bootstrap(config)}: {kafka_error}") from None
        topic_metadata = metadata.topics.get(topic)
        if topic_metadata is None or topic_metadata.error is not None:
            code = topic_metadata.error.code() if topic_metadata is not None and topic_metadata.error else None
            if code in (KafkaError.UNKNOWN_TOPIC_OR_PART, KafkaError._UNKNOWN_TOPIC):
                raise KafkaWindowConfigError(f"topic {topic!r} does not exist on {_bootstrap(config)}")
            if code in _permanent_errors():
                raise KafkaWindowConfigError(
                    f"the connection may not read topic {topic!r} on {_bootstrap(config)}: {topic_metadata.error}")
            raise KafkaUnavailableError(
                f"metadata for topic {topic!r} from {_bootstrap(config)} has an error: "
                f"{topic_metadata.error if topic_metadata is not None else 'missing'}")
        if not topic_metadata.partitions:
            raise KafkaUnavailableError(f"topic {topic!r} has no partitions in the metadata yet")
        found.extend((topic, partition_id) for partition_id in sorted(topic_metadata.partitions))
    return found


def _read_latest_timestamps(consumer: Consumer, offsets: Mapping[tuple[str, int], int],
                            timeout: float) -> dict[tuple[str, int], int | None]:
    """Read the timestamp of the record at each given offset (high_watermark - 1), read by assignment."""
    from confluent_kafka import TIMESTAMP_NOT_AVAILABLE, KafkaError, TopicPartition

    result: dict[tuple[str, int], int | None] = {}
    if not offsets:
        return result
    consumer.assign([TopicPartition(topic, partition, offset) for (topic, partition), offset in offsets.items()])
    pending = set(offsets)
    deadline = time.monotonic() + timeout
    try:
        while pending and time.monotonic() < deadline:
            for message in consumer.consume(num_messages=len(pending), timeout=min(0.5, timeout)):
                key = (message.topic(), message.partition())
                if key not in pending:
                    continue
                error = message.error()
                if error is not None:
                    if error.code() == KafkaError._PARTITION_EOF:
                        # Nothing readable at high_watermark - 1 (a transaction marker, or compacted
                        # away): the partition is judged by its idle clock alone.
                        result[key] = None
                        pending.discard(key)
                        continue
                    raise KafkaUnavailableError(f"reading {key[0]}[{key[1]}] failed: {error}")
                timestamp_type, timestamp_ms = message.timestamp()
                result[key] = None if timestamp_type == TIMESTAMP_NOT_AVAILABLE else int(timestamp_ms)
                pending.discard(key)
    finally:
        consumer.unassign()
    if pending:
        labels = ", ".join(f"{topic}[{partition}]" for topic, partition in sorted(pending))
        raise KafkaUnavailableError(f"the latest record of {labels} could not be read within {timeout:g}s")
    return result


def observe_partitions(
    config: Mapping[str, Any],
    topics: Sequence[str],
    previous: Mapping[tuple[str, int], PartitionProgress],
    *,
    request_timeout: float = 10.0,
) -> list[PartitionObservation]:
    """Watermarks of every partition of ``topics`` and the timestamp of each one's latest record.

    A record is only fetched where it can change the verdict: not for partitions already passed, not
    when the high watermark is where the previous check saw it (its latest record is known).
    """
    from confluent_kafka import Consumer, KafkaException, TopicPartition

    consumer = Consumer(dict(config))
    try:
        observations = []
        to_read: dict[tuple[str, int], int] = {}
        watermarks: dict[tuple[str, int], tuple[int, int]] = {}
        for key in _list_partitions(consumer, topics, config, request_timeout):
            try:
                low, high = consumer.get_watermark_offsets(
                    TopicPartition(*key), timeout=request_timeout, cached=False)
            except KafkaException as error:
                raise KafkaUnavailableError(
                    f"no watermarks for {key[0]}[{key[1]}] from {_bootstrap(config)}: {error.args[0]}") from None
            watermarks[key] = (low, high)
            before = previous.get(key)
            known = (before is not None and before.high_watermark == high
                     and (before.passed or before.latest_timestamp_ms is not None))
            if high > low and not known and not (before is not None and before.passed):
                to_read[key] = high - 1
        latest = _read_latest_timestamps(consumer, to_read, request_timeout)
        for key, (low, high) in watermarks.items():
            observations.append(PartitionObservation(
                topic=key[0], partition=key[1], low_watermark=low, high_watermark=high,
                latest_timestamp_ms=latest.get(key)))
        return observations
    finally:
        consumer.close()


def check_window(
    config: Mapping[str, Any],
    topics: Sequence[str],
    *,
    window_end: dt.datetime,
    max_lateness: float,
    idle_timeout: float | None,
    previous_state: Iterable[Mapping[str, Any]] | None = None,
    request_timeout: float = 10.0,
    now: float | None = None,
) -> WindowProgress:
    """One check of every partition (blocking): the function poke() calls and the trigger runs in a thread."""
    previous = state_by_partition(previous_state)
    observations = observe_partitions(config, topics, previous, request_timeout=request_timeout)
    window_end_ms = to_epoch_ms(window_end)
    return evaluate(
        observations, previous, topics=topics, threshold_ms=window_end_ms + int(max_lateness * 1000),
        idle_timeout=idle_timeout, now=time.time() if now is None else now, window_end_ms=window_end_ms)


def timeout_message(
    *,
    topics: Sequence[str],
    window_start: dt.datetime | None,
    window_end: dt.datetime,
    timeout: float | None,
    progress: WindowProgress | None,
    last_error: str | None = None,
) -> str:
    """Why the wait ended without a complete window: which partitions are behind, and how far they got."""
    start = "…" if window_start is None else window_start.isoformat()
    after = "before its deadline" if timeout is None else f"after the sensor timeout of {timeout:g}s"
    head = f"Kafka window [{start}, {window_end.isoformat()}) on {', '.join(topics)} is not complete {after}"
    if progress is None:
        return f"{head}: no check succeeded ({last_error or 'no check ran'})"
    message = f"{head}: {progress.behind_summary()}"
    if last_error:
        message += f" (the last check failed: {last_error})"
    return message
