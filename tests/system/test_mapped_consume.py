"""The daily DAG with its consume mapped over partition groups, on the local stack (issue 17, item 2).

The same day, read by one task and by three mapped tasks, gives the same report counts; the mapped
run's parts stay separate up to the Batch job; a rerun rewrites the same objects with the same bytes.
"""

from __future__ import annotations

import datetime as dt

import pytest

from logproc_local import sample_logs
from logproc_local.version_matrix import comparable_counts
from tests.system import test_daily_pipeline as daily
from tests.system.test_daily_pipeline import BAD_SHARE, DAY, expected_counts, results, run_day

pytestmark = pytest.mark.system

PARTITIONS = 4
# The daily pipeline tests' fixtures: the local stack, the analyzer command on the local pool.
stack = daily.stack
monkeypatch_module = daily.monkeypatch_module


def comparable(summary: dict) -> dict:
    """The summary without what describes the inputs one by one (the parts differ: 3 of a day, or a group's).

    Also without the staging URIs of the kept-aside files (they name the branch's folder).
    """
    return {**comparable_counts(summary), "input_lines": sum(part["lines"] for part in summary["inputs"])}


def produce_days(stack: dict, topic: str, count: int, seed: int) -> dict[dt.date, list[sample_logs.SampleRecord]]:
    """Produce ``count`` records of the day and as many of the next (the day's window then closes) over
    the topic's partitions; return them by day."""
    produced = {day: list(sample_logs.generate(day, count, seed=seed, bad_share=BAD_SHARE))
                for day in (DAY, DAY + dt.timedelta(days=1))}
    for records in produced.values():
        sample_logs.produce(records, topic, {"bootstrap.servers": stack["kafka"].bootstrap_servers},
                            partitions=PARTITIONS)
    return produced


def test_mapped_consume_gives_the_single_tasks_counts_and_reruns_byte_identical(stack, kafka_topic,
                                                                               blob_service_client):
    topic = kafka_topic(partitions=PARTITIONS)
    produced = produce_days(stack, topic, 1_200, seed=5)
    want = expected_counts(produced[DAY])

    single = run_day(topic, DAY, consume_groups=1)
    states = {ti.task_id: ti.state for ti in single.get_task_instances()}
    assert states["consume"] == "success" and states["plan_consume_groups"] == "skipped"
    one_task, _ = results(blob_service_client, topic, DAY)

    mapped = run_day(topic, DAY, consume_groups=3)
    tis = mapped.get_task_instances()
    assert {ti.task_id: ti.state for ti in tis if ti.map_index < 0}["consume"] == "skipped"
    parts = sorted((ti.task_id, ti.map_index, ti.state) for ti in tis if ti.map_index >= 0)
    assert parts == sorted((task_id, index, "success") for index in range(3)
                           for task_id in ("consume_part", "archive_part", "to_json_part", "upload_part"))
    in_parts, digests = results(blob_service_client, topic, DAY)

    # The report's counts are the single task's, every record accounted for.
    assert comparable(in_parts) == comparable(one_task)
    assert in_parts["totals"]["valid"] == want["valid"]
    assert in_parts["pipeline"]["undecodable_records"] == want["undecodable"]
    assert in_parts["pipeline"]["invalid_records"] == want["invalid"]
    assert in_parts["accounting"]["adds_up"] and in_parts["accounting"]["window_records"] == len(produced[DAY])
    # Each group uploaded its own parts (nothing concatenated); 3 groups x ceil(3 parts / 3 groups).
    prefix = f"logs/{topic}/{DAY:%Y/%m/%d}"
    assert {name for name in digests if name.startswith(f"{prefix}/group-")} == {
        f"{prefix}/group-{index:03d}/{name}" for index in range(3) for name in ("part-00000.jsonl", "manifest.json")}
    assert {f"archive/{topic}/{DAY:%Y/%m/%d}/raw-groups/part-{index:03d}.ion" for index in range(3)} <= set(digests)

    # The same day mapped again: the same objects, byte for byte.
    run_day(topic, DAY, consume_groups=3)
    again, digests_again = results(blob_service_client, topic, DAY)
    assert digests_again == digests
    assert again == in_parts


def test_auto_groups_keep_a_small_day_in_one_task_and_map_a_large_one(stack, kafka_topic, blob_service_client,
                                                                      monkeypatch):
    topic = kafka_topic(partitions=PARTITIONS)
    records = list(sample_logs.generate(DAY, 600, seed=6, bad_share=BAD_SHARE))
    sample_logs.produce(records, topic, {"bootstrap.servers": stack["kafka"].bootstrap_servers},
                        partitions=PARTITIONS)

    small = run_day(topic, DAY)  # consume_groups=0: auto; 600 records is a small day
    assert {ti.task_id: ti.state for ti in small.get_task_instances() if ti.map_index < 0}["consume"] == "success"
    monkeypatch.setenv("LOGPROC_MAPPED_CONSUME_MIN_RECORDS", "100")
    monkeypatch.setenv("LOGPROC_CONSUME_GROUPS", "2")
    large = run_day(topic, DAY)
    assert sorted(ti.map_index for ti in large.get_task_instances() if ti.task_id == "consume_part") == [0, 1]
    summary, _ = results(blob_service_client, topic, DAY)
    assert summary["totals"]["valid"] == expected_counts(records)["valid"]


def test_a_day_archived_in_parts_is_restored_past_retention_without_the_stale_parts(stack, kafka_topic,
                                                                                    blob_service_client):
    from collections import Counter

    from confluent_kafka import TopicPartition
    from confluent_kafka.admin import AdminClient

    topic = kafka_topic(partitions=PARTITIONS)
    produced = produce_days(stack, topic, 800, seed=8)
    # Four groups, then two: parts 002 and 003 of the first run stay in the archive, stale.
    run_day(topic, DAY, consume_groups=4)
    run_day(topic, DAY, consume_groups=2)
    mapped, _ = results(blob_service_client, topic, DAY)
    archived = {blob.name for blob in blob_service_client.get_container_client("archive").list_blobs(
        name_starts_with=f"{topic}/{DAY:%Y/%m/%d}/raw-groups/")}
    assert len(archived) == 4

    # Retention removes the day (each partition's start moved past its records of DAY).
    per_partition = Counter(sample_logs._stable_partition(r.key, PARTITIONS) for r in produced[DAY])
    admin = AdminClient({"bootstrap.servers": stack["kafka"].bootstrap_servers})
    for future in admin.delete_records([TopicPartition(topic, p, n) for p, n in per_partition.items()]).values():
        future.result(timeout=15)

    restored_run = run_day(topic, DAY, consume_groups=2)
    states = {ti.task_id: ti.state for ti in restored_run.get_task_instances() if ti.map_index < 0}
    assert states["restore_from_archive"] == "success" and states["consume"] == "skipped"
    restored, _ = results(blob_service_client, topic, DAY)
    # The two current parts, joined: the mapped run's counts, none of the stale parts' records twice.
    assert comparable(restored) == comparable(mapped)
    assert restored["totals"]["valid"] == expected_counts(produced[DAY])["valid"]
    assert restored["pipeline"]["undecodable_records"] == expected_counts(produced[DAY])["undecodable"]
