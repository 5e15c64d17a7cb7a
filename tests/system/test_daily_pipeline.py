"""The daily DAG end to end on the local stack (noida-db, Azurite, the local Batch service), via dag.test().

What a user enables: one day through every step; the same day twice gives the same outputs; three
days in a row; a day whose records Kafka no longer holds is served from the run's archive.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import importlib.util
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import orjson
import pytest

from logproc_local import sample_logs

pytestmark = pytest.mark.system

REPO = Path(__file__).resolve().parents[2]
DAY = dt.date(2026, 2, 10)
RECORDS = 1_500
BAD_SHARE = 0.02


def load_dag(name: str):
    spec = importlib.util.spec_from_file_location(f"dagfile_{name}", REPO / "dags" / f"{name}.py")
    assert spec is not None
    module = importlib.util.module_from_spec(spec)
    assert spec.loader is not None
    spec.loader.exec_module(module)
    return module.dag


@pytest.fixture(scope="module")
def stack(kafka_broker, azurite, batch_service, airflow_db, monkeypatch_module):
    # Batch tasks run `logproc-analyze`: the console script of this environment, on the local pool.
    monkeypatch_module.setenv("LOGPROC_ANALYZER_COMMAND", str(Path(sys.executable).parent / "logproc-analyze"))
    return {"kafka": kafka_broker, "azurite": azurite, "batch": batch_service}


@pytest.fixture(scope="module")
def monkeypatch_module():
    with pytest.MonkeyPatch.context() as patch:
        yield patch


def produce_days(kafka_broker, topic: str, days: list[dt.date], records: int = RECORDS) -> dict[dt.date, list]:
    produced = {day: list(sample_logs.generate(day, records, seed=3, bad_share=BAD_SHARE)) for day in days}
    for day in days:
        sample_logs.produce(produced[day], topic, {"bootstrap.servers": kafka_broker.bootstrap_servers},
                            partitions=3)
    return produced


def run_day(topic: str, day: dt.date, **conf):
    dag = load_dag("logproc_daily")
    # With a cron data-interval timetable, a manual run at D covers the window [D-1, D).
    run = dag.test(
        logical_date=dt.datetime.combine(day + dt.timedelta(days=1), dt.time(), tzinfo=dt.UTC),
        run_conf={"topic": topic, "parts": 3, "idle_timeout_minutes": 0.02, **conf},
    )
    assert run.state == "success", f"logproc_daily failed for {day}: {run.state}"
    return run


def results(blob_service_client, topic: str, day: dt.date) -> tuple[dict, dict[str, str]]:
    """The day's summary and, for every blob the run wrote for the day, its MD5."""
    prefix = f"{topic}/{day:%Y/%m/%d}"
    summary = orjson.loads(
        blob_service_client.get_blob_client("results", f"{prefix}/summary.json").download_blob().readall())
    digests = {}
    for container in ("logs", "results", "archive"):
        client = blob_service_client.get_container_client(container)
        for blob in client.list_blobs(name_starts_with=prefix):
            data = client.get_blob_client(blob.name).download_blob().readall()
            digests[f"{container}/{blob.name}"] = hashlib.md5(data).hexdigest()
    return summary, digests


def expected_counts(records: list) -> dict[str, Any]:
    good = [r for r in records if not r.is_bad]
    bad = [r for r in records if r.is_bad]
    undecodable = sum(1 for r in bad if not r.value.startswith(b"{") or b"broken json" in r.value)
    return {"valid": len(good), "undecodable": undecodable, "invalid": len(bad) - undecodable,
            "status": Counter(r.fields["status"] for r in good)}


def test_one_day_end_to_end_then_the_same_day_again_gives_identical_outputs(stack, kafka_topic, blob_service_client):
    topic = kafka_topic(partitions=3)
    produced = produce_days(stack["kafka"], topic, [DAY - dt.timedelta(days=1), DAY, DAY + dt.timedelta(days=1)])
    want = expected_counts(produced[DAY])

    run_day(topic, DAY)
    summary, digests = results(blob_service_client, topic, DAY)

    assert summary["totals"]["valid"] == want["valid"]
    assert summary["totals"]["invalid"] == 0
    assert {int(code): n for code, n in summary["status"].items()} == dict(want["status"])
    assert summary["pipeline"]["undecodable_records"] == want["undecodable"]
    assert summary["pipeline"]["invalid_records"] == want["invalid"]
    assert summary["pipeline"]["consumed_records"] == want["valid"] + want["invalid"]
    # Deterministic names: parts, manifest, archive, partials, summary, report.
    names = sorted(digests)
    assert f"logs/{topic}/{DAY:%Y/%m/%d}/part-00000.jsonl" in names
    assert f"archive/{topic}/{DAY:%Y/%m/%d}/raw.ion" in names
    assert f"results/{topic}/{DAY:%Y/%m/%d}/report.html" in names
    # The error burst the generator puts at 14h is found.
    assert any("14:00" in str(a) for a in summary["anomalies"]["hours"])
    # Every record of the window is accounted for, the kept-aside records beside the results.
    accounting = summary["accounting"]
    assert accounting["adds_up"], accounting
    assert accounting["window_records"] == len(produced[DAY])
    assert accounting["dead_lettered"]["count"] == want["undecodable"] == \
        sum(accounting["dead_lettered"]["by_reason"].values())
    assert accounting["invalid_at_conversion"]["count"] == want["invalid"] == \
        sum(accounting["invalid_at_conversion"]["by_reason"].values())
    kept_aside = f"/results/{topic}/{DAY:%Y/%m/%d}/kept-aside"
    assert accounting["dead_lettered"]["file"].endswith(f"{kept_aside}/dead-letters.jsonl")
    assert f"results/{topic}/{DAY:%Y/%m/%d}/kept-aside/invalid.jsonl" in names
    # The analysis knows its window: the per-hour figures are the day's.
    assert summary["window"]["since"] == f"{DAY}T00:00:00.000Z"
    assert summary["window"]["until"] == f"{DAY + dt.timedelta(days=1)}T00:00:00.000Z"
    assert len(summary["per_hour"]) <= 24
    # The day before was not analysed: nothing to compare with.
    assert "previous_window" not in summary

    run_day(topic, DAY)
    summary_again, digests_again = results(blob_service_client, topic, DAY)
    assert digests_again == digests
    assert summary_again == summary


def test_three_consecutive_days(stack, kafka_topic, blob_service_client):
    topic = kafka_topic(partitions=3)
    days = [DAY + dt.timedelta(days=i) for i in range(3)]
    produced = produce_days(stack["kafka"], topic, days, records=800)
    for day in days:
        run_day(topic, day)
    for day in days:
        summary, _ = results(blob_service_client, topic, day)
        assert summary["totals"]["valid"] == expected_counts(produced[day])["valid"]
        assert summary["period"]["first_minute"].startswith(day.isoformat())
        if day != days[0]:  # each later day beside the one before it
            previous, _ = results(blob_service_client, topic, day - dt.timedelta(days=1))
            assert summary["previous_window"]["previous"]["requests"] == previous["totals"]["valid"]


def test_a_day_past_retention_is_served_from_the_archive(stack, kafka_topic, blob_service_client):
    from confluent_kafka import TopicPartition
    from confluent_kafka.admin import AdminClient

    topic = kafka_topic(partitions=3)
    days = [DAY, DAY + dt.timedelta(days=1)]
    produced = produce_days(stack["kafka"], topic, days, records=800)
    run_day(topic, DAY)
    first, first_digests = results(blob_service_client, topic, DAY)

    # Retention removes the day: move each partition's start past its records of DAY (what the
    # broker's retention does), keeping the next day's.
    per_partition = Counter(sample_logs._stable_partition(r.key, 3) for r in produced[DAY])
    admin = AdminClient({"bootstrap.servers": stack["kafka"].bootstrap_servers})
    futures = admin.delete_records([TopicPartition(topic, p, n) for p, n in per_partition.items()])
    for future in futures.values():
        future.result(timeout=15)

    run = run_day(topic, DAY)
    states = {ti.task_id: ti.state for ti in run.get_task_instances()}
    assert states["restore_from_archive"] == "success"
    assert states["consume"] == "skipped"
    again, again_digests = results(blob_service_client, topic, DAY)
    # The parts uploaded from the restored window are the very bytes uploaded from Kafka the first time,
    # and the summary (with the counters archived beside the window) reads the same.
    assert again_digests == first_digests
    assert again == first


def test_an_empty_or_far_smaller_day_is_an_anomaly_shown_and_notified(stack, kafka_topic, blob_service_client,
                                                                      tmp_path, monkeypatch):
    notes = tmp_path / "notifications.jsonl"
    monkeypatch.setenv("LOGPROC_NOTIFICATIONS_FILE", str(notes))
    topic = kafka_topic(partitions=3)
    usual, short, empty = [DAY + dt.timedelta(days=i) for i in range(3)], DAY + dt.timedelta(days=3), \
        DAY + dt.timedelta(days=4)
    produce_days(stack["kafka"], topic, usual, records=500)
    produce_days(stack["kafka"], topic, [short], records=40)
    for day in [*usual, short, empty]:
        run_day(topic, day)

    for day in usual:
        assert results(blob_service_client, topic, day)[0]["anomalies"]["volume"] == []
    short_summary, _ = results(blob_service_client, topic, short)
    [low] = short_summary["anomalies"]["volume"]
    assert low["kind"] == "low_volume" and low["baseline_windows"] == 3
    assert low["records"] < 0.2 * low["baseline_median"]
    empty_summary, _ = results(blob_service_client, topic, empty)
    assert [a["kind"] for a in empty_summary["anomalies"]["volume"]] == ["empty_window"]
    report = blob_service_client.get_blob_client("results", f"{topic}/{empty:%Y/%m/%d}/report.html") \
        .download_blob().readall().decode()
    assert "empty window" in report and "the window holds 0 record(s)" in report
    # Each day's anomaly notification lists its anomalies (the usual days have the generator's 14h burst).
    notified = {n["message"].split(" window ")[1][:10]: " | ".join(n["details"]["anomalies"])
                for n in map(orjson.loads, notes.read_text().splitlines()) if n["kind"] == "anomaly"}
    assert "of the median of the previous 3 windows" in notified[str(short)]
    assert "the window holds 0 record(s)" in notified[str(empty)]
    assert not [day for day in usual if "the window holds" in notified.get(str(day), "")]


def test_the_report_asset_event_feeds_the_downstream_example_dag(stack, airflow_db, kafka_topic, blob_service_client):
    import json
    import sqlite3

    topic = kafka_topic(partitions=3)
    produce_days(stack["kafka"], topic, [DAY], records=300)
    run_day(topic, DAY)
    summary, _ = results(blob_service_client, topic, DAY)

    # The report step's event on logproc://<topic>/report names this window and where its results are.
    with sqlite3.connect(airflow_db) as db:
        extra, = db.execute(
            "SELECT e.extra FROM asset_event e JOIN asset a ON a.id = e.asset_id WHERE a.uri = ? "
            "ORDER BY e.id DESC LIMIT 1", ("logproc://access-logs/report",)).fetchone()
    event = json.loads(extra)
    assert event["topic"] == topic
    assert (event["window_start"], event["window_end"]) == (f"{DAY}T00:00:00+00:00",
                                                            f"{DAY + dt.timedelta(days=1)}T00:00:00+00:00")
    assert event["summary_uri"].endswith(f"/results/{topic}/{DAY:%Y/%m/%d}/summary.json")
    assert event["headline"]["valid"] == summary["totals"]["valid"]

    # The downstream example DAG reads that event and the summary it points at.
    consumer = load_dag("logproc_report_consumer").test()
    assert consumer.state == "success"
    with sqlite3.connect(airflow_db) as db:
        value, = db.execute("SELECT value FROM xcom WHERE run_id = ? AND task_id = 'read_latest_report' "
                            "AND key = 'return_value'", (consumer.run_id,)).fetchone()
    read = json.loads(value)
    assert read["window_start"] == event["window_start"] and read["valid"] == summary["totals"]["valid"]


def test_staging_in_object_storage_gives_the_same_results(stack, kafka_topic, blob_service_client, monkeypatch):
    """Multi-worker deployments stage in object storage: consume, to_json and upload through Azurite."""
    from azure.core.exceptions import ResourceExistsError

    topic = kafka_topic(partitions=3)
    produce_days(stack["kafka"], topic, [DAY], records=400)
    run_day(topic, DAY)  # the session's file:// staging
    on_file, _ = results(blob_service_client, topic, DAY)

    with contextlib.suppress(ResourceExistsError):
        blob_service_client.create_container("staging")
    monkeypatch.setenv("LOGPROC_STAGING_BASE", "abfs://wasb_default@staging/logproc")
    run_day(topic, DAY)
    in_blob, _ = results(blob_service_client, topic, DAY)
    staged = {blob.name for blob in blob_service_client.get_container_client("staging")
              .list_blobs(name_starts_with=f"logproc/logproc_daily/{topic}/")}
    assert {f"logproc/logproc_daily/{topic}/{DAY:%Y/%m/%d}/{name}" for name in ("raw.ion", "raw.jsonl")} <= staged

    def without_staging_uris(summary: dict) -> dict:
        pipeline = {key: value for key, value in summary["pipeline"].items() if not key.endswith("_file")}
        return {**summary, "pipeline": pipeline}

    assert in_blob["pipeline"]["undecodable_records_file"].startswith("abfs://wasb_default@staging/")
    assert without_staging_uris(in_blob) == without_staging_uris(on_file)
