"""KafkaBatchConsumeOperator: the records of an exact time window (or a consumer-group batch) to Ion."""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from airflow.providers.common.compat.sdk import BaseOperator, ObjectStoragePath

from airflow_provider_logproc import staging
from airflow_provider_logproc._templating import resolve_window, to_optional_int, to_timedelta
from airflow_provider_logproc.consume.envelope import check_deserializer, check_encoding
from airflow_provider_logproc.consume.partition_stats import PartitionStats
from airflow_provider_logproc.kafka.config import connection_config
from airflow_provider_logproc.kafka.progress import KafkaWindowConfigError
from airflow_provider_logproc.kafka.window import TimeWindow
from airflow_provider_logproc.version_compat import push_xcoms

# The Kafka hook and the read loop (confluent_kafka, amazon.ion) are imported in execute(): this
# module is imported whenever a DAG file using the operator is parsed, and parsing must stay cheap.
if TYPE_CHECKING:
    from airflow.providers.common.compat.sdk import Context
    from confluent_kafka import Consumer

    from airflow_provider_logproc.consume.dead_letters import DeadLetters
    from airflow_provider_logproc.consume.loop import ReadLimits

DEAD_LETTER_SUFFIX = "dead-letter.jsonl"
# Group mode: the offset ranges a run consumed, written before they are committed (replayed by a rerun).
OFFSETS_SUFFIX = "offsets.json"


class DeadLetterThresholdError(RuntimeError):
    """More undecodable records than ``max_bad_share`` allows."""


class KafkaBatchConsumeOperator(BaseOperator):
    """
    Read Kafka records into one Amazon Ion file and return its URI.

    **Window mode** (default): every record of ``topics`` whose timestamp lies in ``[since, until)``
    (default: the run's data interval), from every partition, read with ``assign`` (no consumer
    group, nothing committed). Each partition starts at ``offsets_for_times(since)`` and stops at
    the high watermark taken at the start, or at the first record whose timestamp is
    ``>= until + max_lateness`` — ``max_lateness`` is how late (by timestamp, relative to its
    neighbours) a record may still arrive after the window's end and be found. Records are written
    in (topic, partition, offset) order, so reading the same window again gives the same bytes.
    If the oldest record a partition still keeps is later than ``since`` and older records were
    deleted, the window is past retention: the task fails (``on_retention_gap="fail"``) or logs a
    warning (``"warn"``).

    **Group mode** (``group_id`` given): subscribe as that consumer group, read up to
    ``max_records`` records / ``max_duration`` or until caught up, and commit the offsets only
    after the output is written (at-least-once).

    Each record becomes an envelope ``{topic, partition, offset, timestamp, key, value, headers}``.
    Keys and values are deserialized as ``string``, ``json`` (stored as Ion structs, lists, ...) or
    ``bytes`` (Ion blobs). A record that fails goes, raw, to a dead-letter file beside the output
    (JSON lines with topic, partition, offset, timestamp, reason, base64 key and value); the task
    fails only when the share of such records exceeds ``max_bad_share``.

    XCom: the return value is the output URI; keys ``record_count``, ``dead_letter_count``,
    ``dead_letter_uri`` (None when there were none) and ``partition_offsets`` (per partition first
    and last written offset and count).

    :param topics: topic name or names.
    :param kafka_config_id: the ``kafka`` connection (extra = librdkafka config).
    :param since: window start (datetime or ISO 8601; default ``data_interval_start``).
    :param until: window end, exclusive (default ``data_interval_end``).
    :param max_lateness: see above; a timedelta or seconds (templated); default 0.
    :param output_uri: where to write (``file://``, ``abfs://``, ...); default
        ``<staging base>/<dag_id>/<task_id>/<data interval>/raw.ion``.
    :param staging_base: base for the default output URI (default env ``LOGPROC_STAGING_BASE``).
    :param key_deserializer: ``string`` | ``json`` | ``bytes``.
    :param value_deserializer: ``string`` | ``json`` | ``bytes``.
    :param max_bad_share: highest tolerated share (0..1) of undecodable records.
    :param on_retention_gap: ``fail`` or ``warn``.
    :param group_id: consumer group: switches to group mode.
    :param max_records: group mode: read at most this many records (templated).
    :param max_duration: group mode: read at most this long (timedelta or seconds; templated).
    :param ion_encoding: ``text`` (default, written several times faster) or ``binary`` (smaller,
        faster to read back); both are Ion and read the same.
    :param poll_timeout: seconds one ``consume`` call waits.
    :param stall_timeout: fail when a partition delivers nothing this long although records remain.
    :param workers: window mode: worker processes reading partitions in parallel (encoding is
        CPU-bound and holds the GIL). Default: one per partition, up to twice the CPUs, when the window
        holds at least 100,000 offsets, else 1 (read in the task's process). The output bytes are
        the same either way.
    :param partitions: window mode: read only these partitions (numbers of the one topic, or
        ``[topic, partition]`` pairs; templated): one group of a consume mapped over partition groups
        (see :mod:`airflow_provider_logproc.kafka.groups`). Default: every partition.
    """

    template_fields: Sequence[str] = (
        "topics", "since", "until", "max_lateness", "output_uri", "staging_base", "group_id", "kafka_config_id",
        "max_records", "max_duration", "partitions",
    )
    ui_color = "#e8f1f8"

    def __init__(
        self,
        *,
        topics: str | Sequence[str],
        kafka_config_id: str = "kafka_default",
        since: dt.datetime | str | None = None,
        until: dt.datetime | str | None = None,
        max_lateness: dt.timedelta | float | str = dt.timedelta(0),
        output_uri: str | None = None,
        staging_base: str | None = None,
        key_deserializer: str = "string",
        value_deserializer: str = "json",
        max_bad_share: float = 0.0,
        on_retention_gap: str = "fail",
        group_id: str | None = None,
        max_records: int | str | None = None,
        max_duration: dt.timedelta | float | str | None = None,
        ion_encoding: str = "text",
        poll_timeout: float = 1.0,
        stall_timeout: float = 60.0,
        workers: int | None = None,
        partitions: Sequence[int] | Sequence[Sequence[Any]] | str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        check_deserializer(key_deserializer, "key")
        check_deserializer(value_deserializer, "value")
        check_encoding(ion_encoding)
        if not 0.0 <= max_bad_share <= 1.0:
            raise ValueError(f"max_bad_share must be within [0, 1], got {max_bad_share}")
        if on_retention_gap not in ("fail", "warn"):
            raise ValueError(f"on_retention_gap must be 'fail' or 'warn', not {on_retention_gap!r}")
        self.topics = topics
        self.kafka_config_id = kafka_config_id
        self.since = since
        self.until = until
        self.max_lateness = max_lateness
        self.output_uri = output_uri
        self.staging_base = staging_base
        self.key_deserializer = key_deserializer
        self.value_deserializer = value_deserializer
        self.max_bad_share = max_bad_share
        self.on_retention_gap = on_retention_gap
        self.group_id = group_id
        self.max_records = max_records
        self.max_duration = max_duration
        self.ion_encoding = ion_encoding
        self.poll_timeout = poll_timeout
        self.stall_timeout = stall_timeout
        if workers is not None and workers < 1:
            raise ValueError(f"workers must be at least 1, got {workers}")
        self.workers = workers
        if partitions is not None and group_id is not None:
            raise ValueError("partitions selects part of a window: it cannot be combined with group_id")
        self.partitions = partitions
        # What execute read and wrote, for OpenLineage (bootstrap, output, records, dead letters).
        self._lineage: dict[str, Any] | None = None

    # -- helpers -----------------------------------------------------------------------------------

    @property
    def topic_list(self) -> list[str]:
        topics = [self.topics] if isinstance(self.topics, str) else list(self.topics)
        if not topics or not all(isinstance(t, str) and t for t in topics):
            raise ValueError(f"topics must be a topic name or a non-empty list of names, got {self.topics!r}")
        return topics

    def _max_duration_s(self) -> float | None:
        duration = to_timedelta(self.max_duration, "max_duration", error=KafkaWindowConfigError)
        return None if duration is None else duration.total_seconds()

    def _max_records(self) -> int | None:
        return to_optional_int(self.max_records, "max_records", positive=True, error=KafkaWindowConfigError)

    def _window(self, context: Context) -> TimeWindow:
        # The window sensor's resolution: same defaults, and a zero-length data interval (Airflow 3's
        # schedule="@daily") is refused with the fix instead of quietly reading nothing.
        since, until = resolve_window(context, self.since, self.until, error=KafkaWindowConfigError)
        max_lateness = to_timedelta(self.max_lateness, "max_lateness", error=KafkaWindowConfigError)
        return TimeWindow.from_datetimes(since, until, max_lateness or dt.timedelta(0))

    def _output_path(self, context: Context) -> ObjectStoragePath:
        if self.output_uri:
            return staging.as_path(self.output_uri)
        if self.group_id is None:
            label = staging.interval_label(*resolve_window(context, self.since, self.until,
                                                           error=KafkaWindowConfigError))
        else:
            # A group batch has no window; name it by when the run was due (still not the run id).
            dag_run = context.get("dag_run")
            moment = getattr(dag_run, "run_after", None) or getattr(dag_run, "logical_date", None)
            label = f"batch-{staging.utc_label(moment or dt.datetime.now(dt.UTC))}"
        return staging.default_uri(dag_id=self.dag_id, task_id=self.task_id, label=label,
                                   filename="raw.ion", base=self.staging_base)

    def _consumer_config(self, group_mode: bool) -> dict[str, Any]:
        # The connection's config as the official hooks build it (callbacks, managed OAuth); only
        # the consumer settings this operator relies on are overridden.
        config = connection_config(self.kafka_config_id)
        config.update({"enable.auto.commit": False, "enable.auto.offset.store": False,
                       "enable.partition.eof": False})
        if group_mode:
            config["group.id"] = self.group_id
            config.setdefault("auto.offset.reset", "earliest")
        else:
            # assign() needs no group, but librdkafka wants a group.id set; nothing is committed.
            config.setdefault("group.id", f"logproc-window-{self.dag_id}")
            # A planned start offset that disappears (retention) must fail, not jump to the end.
            config["auto.offset.reset"] = "error"
        return config

    # -- execute -----------------------------------------------------------------------------------

    def execute(self, context: Context) -> str:
        from airflow_provider_logproc.consume.dead_letters import DeadLetters
        from airflow_provider_logproc.consume.encoders import make_encoder
        from airflow_provider_logproc.consume.loop import ReadLimits

        output = self._output_path(context)
        dead_letter_path = staging.sibling(output, DEAD_LETTER_SUFFIX)
        encoder = make_encoder(self.ion_encoding, self.key_deserializer, self.value_deserializer)
        dead_letters = DeadLetters()
        limits = ReadLimits(poll_timeout_s=self.poll_timeout, stall_timeout_s=self.stall_timeout)
        from confluent_kafka import Consumer

        config = self._consumer_config(group_mode=self.group_id is not None)
        consumer = Consumer(config)
        started = time.monotonic()
        try:
            if self.group_id is None:
                stats = self._read_window(context, consumer, config, output, encoder, dead_letters, limits,
                                          dead_letter_path)
            else:
                stats = self._read_group(consumer, output, encoder, dead_letters, limits, dead_letter_path)
        finally:
            dead_letters.close()
            consumer.close()
        record_count = sum(s.count for s in stats)
        elapsed = time.monotonic() - started
        self.log.info("wrote %d records (%d dead letters) to %s in %.1f s (%.0f records/s)",
                      record_count, dead_letters.count, output, elapsed, record_count / elapsed if elapsed else 0)
        self._lineage = {"bootstrap": str(config.get("bootstrap.servers", "")), "output": str(output),
                         "records": record_count, "dead_letters": dead_letters.count,
                         "dead_letter_uri": str(dead_letter_path) if dead_letters.count else None}
        push_xcoms(context["ti"], record_count=record_count, dead_letter_count=dead_letters.count,
                   dead_letter_uri=str(dead_letter_path) if dead_letters.count else None,
                   partition_offsets=[s.as_dict() for s in stats])
        return str(output)

    def _read_window(self, context: Context, consumer: Consumer, config: dict[str, Any], output: ObjectStoragePath,
                     encoder: Any, dead_letters: DeadLetters, limits: ReadLimits,
                     dead_letter_path: ObjectStoragePath) -> list[PartitionStats]:
        from airflow_provider_logproc.consume.loop import Progress, plan_window, read_window
        from airflow_provider_logproc.consume.parallel import choose_workers, read_window_in_workers

        window = self._window(context)
        # Once per task: whether the C loop or its Python twin runs (the same in worker processes).
        self.log.info("encoding loop: %s", encoder.window_loop())
        plans = self._selected(plan_window(consumer, self.topic_list, window))
        for plan in plans:
            self.log.info("%s[%d]: offsets %d..%d to read (low %d, high %d)", plan.topic, plan.partition,
                          plan.start, plan.high - 1, plan.low, plan.high)
        workers = choose_workers(self.workers, plans, config)
        with staging.atomic_write(output) as handle:
            if workers > 1:
                self.log.info("reading %d partitions in %d worker processes", len(plans), workers)
                stats = read_window_in_workers(
                    config, plans, window, workers=workers, ion_encoding=self.ion_encoding,
                    key_deserializer=self.key_deserializer, value_deserializer=self.value_deserializer,
                    on_retention_gap=self.on_retention_gap, limits=limits, write=handle.write,
                    dead_letters=dead_letters, logger=self.log)
            else:
                stats = read_window(consumer, plans, window, encoder, handle.write, dead_letters,
                                    on_retention_gap=self.on_retention_gap, limits=limits,
                                    progress=Progress("window read", logger=self.log), logger=self.log)
            self._publish_dead_letters(dead_letters, dead_letter_path, sum(s.count for s in stats))
        return stats

    def _selected(self, plans: list[Any]) -> list[Any]:
        """Keep the plans of the ``partitions`` this task reads (all when not given); unknown ones are an error."""
        from airflow_provider_logproc.kafka.groups import PartitionGroupError, parse_partitions

        chosen = parse_partitions(self.partitions, self.topic_list)
        if chosen is None:
            return plans
        missing = chosen - {(plan.topic, plan.partition) for plan in plans}
        if missing:
            raise PartitionGroupError(f"partitions {sorted(missing)} are not partitions of {self.topic_list}")
        return [plan for plan in plans if (plan.topic, plan.partition) in chosen]

    def _read_group(self, consumer: Consumer, output: ObjectStoragePath, encoder: Any,
                    dead_letters: DeadLetters, limits: ReadLimits,
                    dead_letter_path: ObjectStoragePath) -> list[PartitionStats]:
        """Read the group's next batch; or, when this run consumed one before, exactly that batch again.

        The offsets a run consumed are written beside its output (``<name>.offsets.json``) before they
        are committed. A rerun of the run (cleared, retried after a later step failed) finds them and
        re-reads those ranges instead of the group's *next* batch, which would leave the committed one
        unanalysed.
        """
        import orjson

        from airflow_provider_logproc.consume.group_batch import (
            PartitionSpools,
            read_group_batch,
            read_offset_ranges,
        )
        from airflow_provider_logproc.consume.loop import Progress

        ranges_path = staging.sibling(output, OFFSETS_SUFFIX)
        recorded = orjson.loads(ranges_path.read_bytes()) if ranges_path.exists() else None
        spools = PartitionSpools()
        try:
            if recorded is not None:
                self.log.info("this run consumed offsets before (%s): reading exactly those again: %s", ranges_path,
                              ", ".join(f"{r['topic']}[{r['partition']}] {r['start']}..{r['end']}"
                                        for r in recorded["ranges"]))
                batch = read_offset_ranges(consumer, encoder, spools, dead_letters, recorded["ranges"],
                                           limits=limits, progress=Progress("replay", logger=self.log),
                                           logger=self.log)
            else:
                consumer.subscribe(self.topic_list)
                batch = read_group_batch(consumer, encoder, spools, dead_letters, max_records=self._max_records(),
                                         max_duration_s=self._max_duration_s(), limits=limits,
                                         progress=Progress("group read", logger=self.log), logger=self.log)
            with staging.atomic_write(output) as handle:
                handle.write(encoder.preamble())
                spools.copy_to(handle)
                self._publish_dead_letters(dead_letters, dead_letter_path, batch.record_count)
        finally:
            spools.close()
        if recorded is None and batch.next_offsets:
            with staging.atomic_write(ranges_path) as handle:
                handle.write(orjson.dumps({"group_id": self.group_id, "ranges": batch.ranges()}))
        self._commit(consumer, batch.commit_offsets())
        return [batch.stats[key] for key in sorted(batch.stats)]

    def _commit(self, consumer: Consumer, offsets: list[Any]) -> None:
        """Commit (only now, with the output durably in place: at-least-once) what the group is behind on.

        A replay commits too, but never moves the group back: a crash between recording the ranges
        and committing them is repaired, a later run's commits are kept.
        """
        from confluent_kafka import TopicPartition

        if not offsets:
            return
        committed = consumer.committed([TopicPartition(tp.topic, tp.partition) for tp in offsets],
                                       timeout=max(10.0, float(self.poll_timeout) * 10))
        behind = [tp for tp, done in zip(offsets, committed, strict=True) if done.offset < tp.offset]
        if behind:
            consumer.commit(offsets=behind, asynchronous=False)
            self.log.info("committed offsets for group %s: %s", self.group_id,
                          ", ".join(f"{tp.topic}[{tp.partition}]={tp.offset}" for tp in behind))

    def get_openlineage_facets_on_complete(self, task_instance: Any) -> Any:
        """Return the OpenLineage inputs (the topics' window) and outputs (the Ion file, dead letters)."""
        from airflow_provider_logproc.lineage.datasets import kafka_window_input, operator_lineage, staging_dataset

        done = self._lineage
        if not done:
            return operator_lineage([], [])
        # Per-topic counts are not kept: the window's totals go on each topic read.
        inputs = [kafka_window_input(done["bootstrap"], topic, read=done["records"], dead_letters=done["dead_letters"])
                  for topic in self.topic_list]
        outputs = [staging_dataset(done["output"], output=True, row_count=done["records"])]
        if done["dead_letter_uri"]:
            outputs.append(staging_dataset(done["dead_letter_uri"], output=True, row_count=done["dead_letters"]))
        return operator_lineage(inputs, outputs)

    def _publish_dead_letters(self, dead_letters: DeadLetters, path: ObjectStoragePath, good: int) -> None:
        if not dead_letters.count:
            if staging.remove_if_exists(path):
                self.log.info("removed a dead-letter file of an earlier run: %s", path)
            return
        with staging.atomic_write(path) as handle:
            dead_letters.copy_to(handle)
        total = good + dead_letters.count
        share = dead_letters.count / total
        self.log.warning("%d of %d records could not be deserialized; kept in %s (first: %s)",
                         dead_letters.count, total, path, "; ".join(dead_letters.examples))
        if share > self.max_bad_share:
            raise DeadLetterThresholdError(
                f"{dead_letters.count} of {total} records ({share:.2%}) could not be deserialized, more than "
                f"max_bad_share={self.max_bad_share:.2%}; they are in {path} (first: "
                f"{'; '.join(dead_letters.examples)})")


__all__ = ["DeadLetterThresholdError", "KafkaBatchConsumeOperator"]
