"""KafkaBatchConsumeOperator against the real local broker (noida-db) and file:// object storage."""

from __future__ import annotations

import base64
import datetime as dt
import io
import time
import zlib
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from typing import Any

import orjson
import pytest
from amazon.ion import simpleion
from confluent_kafka import Consumer, TopicPartition
from confluent_kafka.admin import AdminClient

from airflow_provider_logproc.consume.ion_json import BARE_VALUE_MODEL
from airflow_provider_logproc.kafka.window import RetentionGapError
from airflow_provider_logproc.operators.kafka import DeadLetterThresholdError, KafkaBatchConsumeOperator
from logproc_local import sample_logs

pytestmark = pytest.mark.integration

DAY1, DAY2, DAY3 = dt.date(2024, 3, 1), dt.date(2024, 3, 2), dt.date(2024, 3, 3)
PER_DAY = 1500
PRODUCED_PARTITIONS = 3  # the topic has 4: partition 3 stays idle
LATE_RECORDS = 15


def day_start(day: dt.date) -> dt.datetime:
    return dt.datetime.combine(day, dt.time(), tzinfo=dt.UTC)


def ms(moment: dt.datetime) -> int:
    return int(moment.timestamp() * 1000)


class RecordingTaskInstance:
    """Collects xcom_push calls (the Airflow run path is covered by test_operators_in_a_dag_run)."""

    def __init__(self) -> None:
        self.xcom: dict[str, Any] = {}

    def xcom_push(self, key: str, value: Any) -> None:
        self.xcom[key] = value


def run(operator: KafkaBatchConsumeOperator, **context: Any) -> tuple[str, dict[str, Any]]:
    ti = RecordingTaskInstance()
    uri = operator.execute({"ti": ti, **context})  # type: ignore[typeddict-item]
    return uri, ti.xcom


def as_json(value: Any) -> bytes:
    """Ion text keeps JSON fractions as exact decimals: compare through floats, as JSON readers do."""
    return orjson.dumps(value, default=lambda v: float(v) if isinstance(v, Decimal) else str(v))


def read_ion(path: Path) -> list[dict[str, Any]]:
    return list(simpleion.load(io.BytesIO(path.read_bytes()), single_value=False, value_model=BARE_VALUE_MODEL))


@pytest.fixture(scope="module")
def three_days(kafka_broker) -> dict[str, Any]:
    """A 4-partition topic with three days of records; late day-2 records arrive among day 3's."""
    from confluent_kafka.admin import NewTopic

    topic = f"three-days-{time.time_ns() % 10**9}"
    admin = AdminClient({"bootstrap.servers": kafka_broker.bootstrap_servers})
    for future in admin.create_topics([NewTopic(topic, 4, 1, config={"retention.ms": "-1"})]).values():
        future.result(timeout=15)
    day1 = list(sample_logs.generate(DAY1, PER_DAY, seed=1))
    day2 = list(sample_logs.generate(DAY2, PER_DAY, seed=2))
    day3 = list(sample_logs.generate(DAY3, PER_DAY, seed=3))
    late, day2_on_time = day2[-LATE_RECORDS:], day2[:-LATE_RECORDS]
    early_day3 = [r for r in day3 if r.timestamp_ms < ms(day_start(DAY3) + dt.timedelta(minutes=40))]
    assert len(early_day3) >= 5, "the sample day must start with some records"
    cut = len(early_day3) // 2
    order = day1 + day2_on_time + day3[:cut] + late + day3[cut:]
    sample_logs.produce(order, topic, {"bootstrap.servers": kafka_broker.bootstrap_servers},
                        partitions=PRODUCED_PARTITIONS)
    return {"topic": topic, "produced": order, "late": late}


def expected_window(produced: list[sample_logs.SampleRecord], since: dt.datetime, until: dt.datetime,
                    ) -> list[tuple[int, bytes]]:
    """(partition, value) in partition, offset order — what the window must return."""
    result: list[tuple[int, bytes]] = []
    for partition in range(PRODUCED_PARTITIONS):
        result.extend(
            (partition, record.value) for record in produced
            if zlib.crc32(record.key or b"") % PRODUCED_PARTITIONS == partition
            and ms(since) <= record.timestamp_ms < ms(until))
    return result


@pytest.mark.parametrize("ion_encoding", ["text", "binary"])
def test_day_window_returns_exactly_that_days_records_and_rerun_is_byte_identical(
        three_days, session_dir, ion_encoding):
    since, until = day_start(DAY2), day_start(DAY3)
    target = session_dir / f"window-{ion_encoding}" / "raw.ion"
    operator = KafkaBatchConsumeOperator(
        task_id="consume", topics=three_days["topic"], output_uri=f"file://{target}",
        max_lateness=dt.timedelta(hours=1), ion_encoding=ion_encoding)

    uri, xcom = run(operator, data_interval_start=since, data_interval_end=until)

    assert uri == f"file://{target}"
    envelopes = read_ion(target)
    got = [(e["partition"], as_json(e["value"])) for e in envelopes]
    want = [(p, orjson.dumps(orjson.loads(v))) for p, v in expected_window(three_days["produced"], since, until)]
    assert len(want) == PER_DAY
    assert got == want  # same records, in partition, offset order
    offsets = [(e["partition"], e["offset"]) for e in envelopes]
    assert offsets == sorted(offsets)
    assert all(ms(since) <= ms(e["timestamp"]) < ms(until) for e in envelopes)
    assert {e["topic"] for e in envelopes} == {three_days["topic"]}
    assert xcom["record_count"] == PER_DAY
    # No dead letters: no URI pushed at all (a key never pushed pulls as None; Airflow 3.0 rejects null XComs).
    assert xcom["dead_letter_count"] == 0 and "dead_letter_uri" not in xcom
    by_partition = {p["partition"]: p for p in xcom["partition_offsets"]}
    assert sorted(by_partition) == [0, 1, 2, 3]
    assert by_partition[3]["count"] == 0 and by_partition[3]["first_offset"] is None  # the idle partition
    for partition in range(PRODUCED_PARTITIONS):
        mine = [e["offset"] for e in envelopes if e["partition"] == partition]
        assert by_partition[partition]["count"] == len(mine)
        assert (by_partition[partition]["first_offset"], by_partition[partition]["last_offset"]) == (mine[0], mine[-1])

    first_bytes = target.read_bytes()
    run(operator, data_interval_start=since, data_interval_end=until)
    assert target.read_bytes() == first_bytes
    assert [p.name for p in target.parent.iterdir()] == ["raw.ion"]  # no temporary files left


def test_without_lateness_the_late_records_are_not_waited_for(three_days, session_dir):
    since, until = day_start(DAY2), day_start(DAY3)
    target = session_dir / "no-lateness" / "raw.ion"
    operator = KafkaBatchConsumeOperator(task_id="consume", topics=[three_days["topic"]],
                                         since=since.isoformat(), until=until.isoformat(),
                                         output_uri=str(target))
    _, xcom = run(operator)
    # Each partition stops at its first day-3 record, so late day-2 records behind it are missed.
    assert PER_DAY - LATE_RECORDS <= xcom["record_count"] < PER_DAY


def test_empty_window_and_idle_partitions_end_promptly(three_days, session_dir):
    target = session_dir / "empty" / "raw.ion"
    operator = KafkaBatchConsumeOperator(
        task_id="consume", topics=three_days["topic"], output_uri=str(target),
        since=dt.datetime(2024, 4, 1, tzinfo=dt.UTC), until=dt.datetime(2024, 4, 2, tzinfo=dt.UTC))
    started = time.monotonic()
    _, xcom = run(operator)
    elapsed = time.monotonic() - started
    assert xcom["record_count"] == 0
    assert read_ion(target) == []
    assert [p["count"] for p in xcom["partition_offsets"]] == [0, 0, 0, 0]
    print(f"empty window over 4 partitions took {elapsed:.2f} s")


def test_window_between_days_with_no_records(kafka_topic, kafka_broker, session_dir):
    topic = kafka_topic(partitions=2)
    records = list(sample_logs.generate(DAY1, 50, seed=4)) + list(sample_logs.generate(DAY3, 50, seed=5))
    sample_logs.produce(records, topic, {"bootstrap.servers": kafka_broker.bootstrap_servers}, partitions=2)
    target = session_dir / "gap-day" / "raw.ion"
    operator = KafkaBatchConsumeOperator(task_id="consume", topics=topic, output_uri=str(target),
                                         since=day_start(DAY2), until=day_start(DAY3))
    _, xcom = run(operator)
    assert xcom["record_count"] == 0 and read_ion(target) == []


def test_undecodable_values_go_to_the_dead_letter_file(kafka_topic, kafka_broker, session_dir):
    topic = kafka_topic(partitions=3)
    records = list(sample_logs.generate(DAY1, 600, seed=6, bad_share=0.05))
    sample_logs.produce(records, topic, {"bootstrap.servers": kafka_broker.bootstrap_servers}, partitions=3)
    not_json = [r for r in records if r.is_bad and not _is_json(r.value)]
    assert not_json
    target = session_dir / "bad" / "raw.ion"
    operator = KafkaBatchConsumeOperator(task_id="consume", topics=topic, output_uri=str(target),
                                         since=day_start(DAY1), until=day_start(DAY2), max_bad_share=0.1)

    _uri, xcom = run(operator)

    assert xcom["dead_letter_count"] == len(not_json)
    assert xcom["record_count"] == len(records) - len(not_json)
    dead_letter = target.with_name("raw.dead-letter.jsonl")
    assert xcom["dead_letter_uri"] == f"file://{dead_letter}"
    lines = [orjson.loads(line) for line in dead_letter.read_bytes().splitlines()]
    assert sorted(base64.b64decode(line["value_base64"]) for line in lines) == sorted(r.value for r in not_json)
    for line in lines:
        assert line["topic"] == topic and line["offset"] >= 0 and line["partition"] in (0, 1, 2)
        assert line["reason"].startswith("value: not JSON")
        assert line["timestamp"].startswith("2024-03-01T")
    assert len(read_ion(target)) == xcom["record_count"]

    # Past the tolerated share: the run fails, says how many and where, and publishes no output.
    strict_target = session_dir / "bad-strict" / "raw.ion"
    strict = KafkaBatchConsumeOperator(task_id="consume", topics=topic, output_uri=str(strict_target),
                                       since=day_start(DAY1), until=day_start(DAY2))
    with pytest.raises(DeadLetterThresholdError) as failure:
        run(strict)
    message = str(failure.value)
    assert f"{len(not_json)} of {len(records)} records" in message
    assert "raw.dead-letter.jsonl" in message
    assert not strict_target.exists()
    assert strict_target.with_name("raw.dead-letter.jsonl").exists()


def _is_json(value: bytes) -> bool:
    try:
        orjson.loads(value)
    except orjson.JSONDecodeError:
        return False
    return True


def test_string_and_bytes_deserializers(kafka_topic, kafka_broker, session_dir):
    topic = kafka_topic(partitions=1)
    records = list(sample_logs.generate(DAY1, 20, seed=7, bad_share=0.2))
    sample_logs.produce(records, topic, {"bootstrap.servers": kafka_broker.bootstrap_servers}, partitions=1)
    window: dict[str, Any] = {"since": day_start(DAY1), "until": day_start(DAY2)}
    as_bytes = session_dir / "bytes" / "raw.ion"
    _, xcom = run(KafkaBatchConsumeOperator(task_id="c", topics=topic, output_uri=str(as_bytes),
                                            key_deserializer="bytes", value_deserializer="bytes",
                                            ion_encoding="binary", **window))
    envelopes = read_ion(as_bytes)
    assert xcom["dead_letter_count"] == 0
    assert [e["value"] for e in envelopes] == [r.value for r in records]
    assert [e["key"] for e in envelopes] == [r.key for r in records]

    as_text = session_dir / "strings" / "raw.ion"
    _, xcom = run(KafkaBatchConsumeOperator(task_id="c", topics=topic, output_uri=str(as_text),
                                            value_deserializer="string", max_bad_share=1.0, **window))
    not_utf8 = [r for r in records if not _is_utf8(r.value)]
    assert xcom["dead_letter_count"] == len(not_utf8) > 0
    assert [e["value"] for e in read_ion(as_text)] == [r.value.decode() for r in records if _is_utf8(r.value)]


def _is_utf8(value: bytes) -> bool:
    try:
        value.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


def _wait_for_low_watermark(bootstrap: str, topic: str, timeout: float = 30.0) -> int:
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "watermark-probe"})
    try:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            low, _high = consumer.get_watermark_offsets(TopicPartition(topic, 0), timeout=5, cached=False)
            if low > 0:
                return low
            time.sleep(0.5)
    finally:
        consumer.close()
    raise AssertionError(f"the broker did not apply retention to {topic} within {timeout} s")


def test_window_past_retention_fails_clearly_or_warns(kafka_topic, kafka_broker, session_dir, capsys):
    # Real retention: records three days old on a topic that keeps one minute are deleted.
    topic = kafka_topic(partitions=1, config={"retention.ms": "60000", "segment.ms": "1000"})
    bootstrap = {"bootstrap.servers": kafka_broker.bootstrap_servers}
    now = dt.datetime.now(dt.UTC)
    old_day = (now - dt.timedelta(days=3)).date()
    sample_logs.produce(list(sample_logs.generate(old_day, 30, seed=8)), topic, bootstrap, partitions=1)
    time.sleep(1.5)  # let the segment roll
    recent = [sample_logs.SampleRecord(ms(now) + i, b'{"n": %d}' % i, {"n": i}, b"k") for i in range(5)]
    sample_logs.produce(recent, topic, bootstrap, partitions=1)
    low = _wait_for_low_watermark(kafka_broker.bootstrap_servers, topic)

    window: dict[str, Any] = {"since": day_start(old_day), "until": day_start(old_day) + dt.timedelta(days=1)}
    target = session_dir / "retention" / "raw.ion"
    with pytest.raises(RetentionGapError) as failure:
        run(KafkaBatchConsumeOperator(task_id="c", topics=topic, output_uri=str(target), **window))
    assert f"{topic}[0]" in str(failure.value) and f"from offset {low}" in str(failure.value)
    assert "before retention" in str(failure.value)
    assert not target.exists()

    capsys.readouterr()
    _, xcom = run(KafkaBatchConsumeOperator(task_id="c", topics=topic, output_uri=str(target),
                                            on_retention_gap="warn", **window))
    assert xcom["record_count"] == 0
    assert target.exists()
    logged = capsys.readouterr()
    assert "before retention" in logged.out + logged.err  # the task log (Airflow logs to stdout here)


def test_group_mode_commits_only_after_the_write(kafka_topic, kafka_broker, session_dir):
    topic = kafka_topic(partitions=3)
    records = list(sample_logs.generate(DAY1, 300, seed=9))
    sample_logs.produce(records, topic, {"bootstrap.servers": kafka_broker.bootstrap_servers}, partitions=3)
    group = f"group-{topic}"
    blocker = session_dir / f"not-a-directory-{topic}"
    blocker.write_text("a file where the output's parent directory would go")

    failing = KafkaBatchConsumeOperator(task_id="c", topics=topic, group_id=group, max_records=120,
                                        output_uri=f"file://{blocker}/raw.ion")
    with pytest.raises(OSError):  # noqa: PT011 - the write fails; which OSError depends on the platform
        run(failing)
    assert _committed(kafka_broker.bootstrap_servers, topic, group, 3) == [None, None, None]

    first = session_dir / "group-1" / "raw.ion"
    _, xcom = run(KafkaBatchConsumeOperator(task_id="c", topics=topic, group_id=group, max_records=120,
                                            output_uri=str(first)))
    assert xcom["record_count"] == 120
    batch1 = read_ion(first)
    assert len(batch1) == 120
    assert [(e["partition"], e["offset"]) for e in batch1] == sorted((e["partition"], e["offset"]) for e in batch1)
    committed = _committed(kafka_broker.bootstrap_servers, topic, group, 3)
    for entry in xcom["partition_offsets"]:
        assert committed[entry["partition"]] == entry["last_offset"] + 1

    second = session_dir / "group-2" / "raw.ion"
    _, xcom = run(KafkaBatchConsumeOperator(task_id="c", topics=topic, group_id=group,
                                            max_duration=dt.timedelta(seconds=30), output_uri=str(second)))
    batch2 = read_ion(second)
    assert xcom["record_count"] == len(batch2) == 300 - 120  # caught up before max_duration
    seen = {(e["partition"], e["offset"]) for e in batch1}
    assert not seen & {(e["partition"], e["offset"]) for e in batch2}
    assert sorted(as_json(e["value"]) for e in batch1 + batch2) == sorted(
        orjson.dumps(orjson.loads(r.value)) for r in records)


def test_a_rerun_of_a_group_run_reads_the_same_batch_again(kafka_topic, kafka_broker, session_dir):
    """Commit, fail downstream, clear consume, rerun: the same records, none lost, none doubled."""
    topic = kafka_topic(partitions=3)
    producer = {"bootstrap.servers": kafka_broker.bootstrap_servers}
    first_records = list(sample_logs.generate(DAY1, 200, seed=4))
    sample_logs.produce(first_records, topic, producer, partitions=3)
    group = f"group-{topic}"
    run_a = session_dir / f"replay-{topic}" / "run-a" / "raw.ion"

    def consume(output: Path) -> dict[str, Any]:
        return run(KafkaBatchConsumeOperator(task_id="c", topics=topic, group_id=group,
                                             max_duration=dt.timedelta(seconds=30), output_uri=str(output)))[1]

    xcom = consume(run_a)
    assert xcom["record_count"] == 200
    original = run_a.read_bytes()
    committed = _committed(kafka_broker.bootstrap_servers, topic, group, 3)
    ranges = orjson.loads((run_a.parent / "raw.offsets.json").read_bytes())["ranges"]
    assert sum(r["end"] - r["start"] for r in ranges) == 200

    # New records arrive; then run A is cleared and runs again: it reads its own batch, not the new one.
    later_records = list(sample_logs.generate(DAY1 + dt.timedelta(days=1), 90, seed=5))
    sample_logs.produce(later_records, topic, producer, partitions=3)
    xcom = consume(run_a)
    assert xcom["record_count"] == 200
    assert run_a.read_bytes() == original
    assert _committed(kafka_broker.bootstrap_servers, topic, group, 3) == committed

    # The next run of the DAG gets exactly the records that came after: none lost, none doubled.
    run_b = session_dir / f"replay-{topic}" / "run-b" / "raw.ion"
    assert consume(run_b)["record_count"] == 90
    seen_a = {(e["partition"], e["offset"]) for e in read_ion(run_a)}
    seen_b = {(e["partition"], e["offset"]) for e in read_ion(run_b)}
    assert not seen_a & seen_b and len(seen_a | seen_b) == 290


def _committed(bootstrap: str, topic: str, group: str, partitions: int) -> list[int | None]:
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": group})
    try:
        offsets = consumer.committed([TopicPartition(topic, p) for p in range(partitions)], timeout=10)
    finally:
        consumer.close()
    return [tp.offset if tp.offset >= 0 else None for tp in offsets]


def test_unknown_topic_is_a_clear_error(kafka_broker, session_dir):
    from airflow_provider_logproc.kafka.window import WindowError

    operator = KafkaBatchConsumeOperator(task_id="c", topics="no-such-topic-here", output_uri=str(session_dir / "x"),
                                         since=day_start(DAY1), until=day_start(DAY2))
    with pytest.raises((WindowError, Exception), match="no-such-topic-here"):
        run(operator)


def _unused(_: Callable[..., Any]) -> None:  # keep imports honest for type checkers
    return None


@pytest.mark.parametrize("ion_encoding", ["text", "binary"])
def test_worker_processes_give_the_same_bytes_as_one_process(three_days, session_dir, ion_encoding):
    window: dict[str, Any] = {"since": day_start(DAY1), "until": day_start(DAY3), "max_lateness": dt.timedelta(hours=1)}
    outputs = {}
    for workers in (1, 3):
        target = session_dir / f"workers-{ion_encoding}-{workers}" / "raw.ion"
        _, xcom = run(KafkaBatchConsumeOperator(task_id="consume", topics=three_days["topic"], output_uri=str(target),
                                                ion_encoding=ion_encoding, workers=workers, **window))
        outputs[workers] = (target.read_bytes(), xcom)
    assert outputs[1][0] == outputs[3][0]
    assert outputs[1][1] == outputs[3][1]
    assert outputs[3][1]["record_count"] == 2 * PER_DAY
    assert [p.name for p in (session_dir / f"workers-{ion_encoding}-3").iterdir()] == ["raw.ion"]


def test_worker_processes_merge_dead_letters_and_report_failures(kafka_topic, kafka_broker, session_dir):
    topic = kafka_topic(partitions=3)
    records = list(sample_logs.generate(DAY1, 600, seed=14, bad_share=0.05))
    sample_logs.produce(records, topic, {"bootstrap.servers": kafka_broker.bootstrap_servers}, partitions=3)
    window: dict[str, Any] = {"since": day_start(DAY1), "until": day_start(DAY2)}
    results = {}
    for workers in (1, 3):
        target = session_dir / f"dead-workers-{workers}" / "raw.ion"
        _, xcom = run(KafkaBatchConsumeOperator(task_id="c", topics=topic, output_uri=str(target), max_bad_share=0.5,
                                                workers=workers, **window))
        results[workers] = (target.read_bytes(), target.with_name("raw.dead-letter.jsonl").read_bytes(), xcom)
    assert results[1][0] == results[3][0]
    assert results[1][1] == results[3][1]  # dead letters in the same (partition, offset) order
    assert results[3][2]["dead_letter_count"] == sum(1 for r in records if r.is_bad and not _is_json(r.value))

    # A failure inside a worker reaches the task as the same error, with no output left behind.
    target = session_dir / "dead-workers-strict" / "raw.ion"
    with pytest.raises(DeadLetterThresholdError, match="could not be deserialized"):
        run(KafkaBatchConsumeOperator(task_id="c", topics=topic, output_uri=str(target), workers=3, **window))
    assert not target.exists()
    # Records deleted from the start of every partition (DeleteRecords, as retention would):
    # the gap is found inside the workers and raised in the task as RetentionGapError.
    admin = AdminClient({"bootstrap.servers": kafka_broker.bootstrap_servers})
    for future in admin.delete_records([TopicPartition(topic, p, 5) for p in range(3)]).values():
        future.result(timeout=15)
    with pytest.raises(RetentionGapError, match=r"keeps records from offset 5 on"):
        run(KafkaBatchConsumeOperator(task_id="c", topics=topic, output_uri=str(target), workers=3,
                                      max_bad_share=0.5, **window))
    assert not target.exists()
