"""Issue 9 on the whole daily DAG (dag.test() on noida-db, Azurite and the local Batch service).

Faults and inputs a user meets: the Batch service throttling, failing and dropping connections while
the job runs; a day full of bad records; an empty day; connections holding secrets. Each test runs
the real pipeline and checks that every record is accounted for and that no secret leaks. The
figures quoted in RELIABILITY.md come from these runs.
"""

from __future__ import annotations

import base64
import datetime as dt
import importlib.util
import json
import os
import sqlite3
import sys
import uuid
from collections import Counter
from pathlib import Path

import orjson
import pytest

from logproc_local import sample_logs

pytestmark = pytest.mark.system

REPO = Path(__file__).resolve().parents[2]
# One day per test: the Batch job id is derived from the DAG, the task and the window (not the topic),
# so two tests on the same day would share one job on the session's Batch service.
DAY_BATCH_FAULTS, DAY_BAD_INPUT, DAY_EMPTY, DAY_SECRETS = (dt.date(2026, 3, d) for d in (10, 11, 12, 13))
RECORDS = 1_200
BAD_SHARE = 0.02
AZURITE_ACCOUNT_KEY = ("Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==")


def load_dag(name: str):
    spec = importlib.util.spec_from_file_location(f"dagfile_{name}_{uuid.uuid4().hex[:6]}",
                                                  REPO / "dags" / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.dag


@pytest.fixture(scope="module")
def monkeypatch_module():
    with pytest.MonkeyPatch.context() as patch:
        yield patch


@pytest.fixture(scope="module")
def stack(kafka_broker, azurite, batch_service, airflow_db, monkeypatch_module):
    monkeypatch_module.setenv("LOGPROC_ANALYZER_COMMAND", str(Path(sys.executable).parent / "logproc-analyze"))
    return {"kafka": kafka_broker, "azurite": azurite, "batch": batch_service}


def window_ms(day: dt.date) -> tuple[int, int]:
    start = int(dt.datetime.combine(day, dt.time(), tzinfo=dt.UTC).timestamp() * 1000)
    return start, start + 86_400_000


def run_day(topic: str, day: dt.date, expect: str = "success", **conf):
    dag = load_dag("logproc_daily")
    for task in dag.tasks:  # a retry (if any) after 1 s, not the production minute
        task.retry_delay = dt.timedelta(seconds=1)
        task.retry_exponential_backoff = False
    run = dag.test(
        logical_date=dt.datetime.combine(day + dt.timedelta(days=1), dt.time(), tzinfo=dt.UTC),
        run_conf={"topic": topic, "parts": 3, "idle_timeout_minutes": 0.02, **conf},
    )
    assert run.state == expect, f"logproc_daily for {day}: {run.state}"
    return run


def summary_of(blob_service_client, topic: str, day: dt.date) -> dict:
    blob = blob_service_client.get_blob_client("results", f"{topic}/{day:%Y/%m/%d}/summary.json")
    return orjson.loads(blob.download_blob().readall())


def blobs_of(blob_service_client, topic: str, day: dt.date) -> dict[str, bytes]:
    found = {}
    for container in ("logs", "results", "archive"):
        client = blob_service_client.get_container_client(container)
        for blob in client.list_blobs(name_starts_with=f"{topic}/{day:%Y/%m/%d}"):
            found[f"{container}/{blob.name}"] = client.get_blob_client(blob.name).download_blob().readall()
    return found


def batch_jobs(service, topic_part: str) -> list[str]:
    client = service.client()
    try:
        return [job.id for job in client.list_jobs() if topic_part in job.id]
    finally:
        client.close()


def expected(records: list[sample_logs.SampleRecord]) -> dict[str, int]:
    good = [r for r in records if not r.is_bad]
    bad = [r for r in records if r.is_bad]
    undecodable = sum(1 for r in bad if not r.value.startswith(b"{") or b"broken json" in r.value)
    return {"valid": len(good), "undecodable": undecodable, "invalid": len(bad) - undecodable}


# --- item 3: the Batch service throttles, fails and drops connections while the DAG runs ---------------

def test_batch_service_429_500_503_bursts_and_dropped_connections(stack, kafka_topic, blob_service_client,
                                                                   batch_reset):
    topic = kafka_topic(partitions=3)
    records = list(sample_logs.generate(DAY_BATCH_FAULTS, RECORDS, seed=11, bad_share=BAD_SHARE))
    sample_logs.produce(records, topic, {"bootstrap.servers": stack["kafka"].bootstrap_servers}, partitions=3)
    service = stack["batch"]
    # Bursts of each kind on the paths the operator and the trigger use; the SDK and the trigger's
    # transient-error budget must absorb them all.
    service.faults.add(status=429, count=2, operation="Jobs_CreateJob")
    service.faults.add(status=503, count=2, operation="Tasks_CreateTaskCollection")
    service.faults.add(drop="after", count=1, operation="Tasks_CreateTaskCollection")
    service.faults.add(status=500, count=3, operation="Jobs_GetJobTaskCounts")
    service.faults.add(drop=True, count=2, operation="Jobs_GetJobTaskCounts")
    service.faults.add(status=429, count=2, operation="Tasks_ListTasks")
    seq = service.request_log.last_seq()

    run = run_day(topic, DAY_BATCH_FAULTS)

    entries = service.request_log.entries(since=seq)
    statuses = Counter(str(e.get("status")) for e in entries)
    print(f"batch requests during the run: {len(entries)}; statuses {dict(statuses)}")
    injected = [e for e in entries if e.get("status") in (429, 500, 503) or e.get("fault")]
    assert injected, "no fault was injected: the operation names do not match the service's"
    summary = summary_of(blob_service_client, topic, DAY_BATCH_FAULTS)
    want = expected(records)
    assert summary["totals"]["valid"] == want["valid"]
    assert summary["pipeline"]["undecodable_records"] == want["undecodable"]
    assert summary["pipeline"]["invalid_records"] == want["invalid"]
    mine = batch_jobs(service, DAY_BATCH_FAULTS.strftime("%Y%m%d"))
    assert len(mine) == 1, f"one job per window, found {mine}"
    # Every burst was ridden out inside one attempt of each task: no Airflow retry was needed.
    tries = {ti.task_id: ti.try_number for ti in run.get_task_instances()}
    assert tries["analyze"] == 1, f"the analyze task needed {tries['analyze']} attempts"
    client = service.client()
    try:
        tasks = list(client.list_tasks(mine[0]))
    finally:
        client.close()
    assert len(tasks) == 3, f"one task per part, no duplicates: {[t.id for t in tasks]}"


# --- item 7: bad input through the whole pipeline -------------------------------------------------------

def _producer(kafka_broker):
    from confluent_kafka import Producer

    return Producer({"bootstrap.servers": kafka_broker.bootstrap_servers, "message.max.bytes": 16_000_000,
                     "linger.ms": 5})


def test_bad_input_matrix_is_kept_aside_counted_and_reported(stack, kafka_topic, blob_service_client):
    # The broker refuses values over 1 MB unless the topic allows more (as Kafka does).
    topic = kafka_topic(partitions=3, config={"max.message.bytes": "16000000"})
    # The generator's bad records: malformed JSON, non-UTF-8 bytes, records missing required fields.
    records = list(sample_logs.generate(DAY_BAD_INPUT, RECORDS, seed=12, bad_share=BAD_SHARE))
    sample_logs.produce(records, topic, {"bootstrap.servers": stack["kafka"].bootstrap_servers}, partitions=3)
    start_ms, end_ms = window_ms(DAY_BAD_INPUT)
    inside = start_ms + 5 * 3_600_000
    # A 5 MB value: a well-formed record with a 5 MB path.
    big_path = "/" + "x" * (5 * 1024 * 1024)
    extra = {
        "big": orjson.dumps({"timestamp": inside, "client_ip": "10.9.9.9", "method": "GET", "path": big_path,
                             "status": 200, "bytes": 1}),
        # Kafka time inside the window, the log's own timestamp a week later.
        "skewed": orjson.dumps({"timestamp": end_ms + 7 * 86_400_000, "client_ip": "10.9.9.8", "method": "GET",
                                "path": "/skewed", "status": 200, "bytes": 1}),
        # Empty value, and a JSON value that is not an object.
        "empty": b"",
        "array": b"[1, 2, 3]",
    }
    producer = _producer(stack["kafka"])
    failures: list[str] = []

    def delivered(error, _message) -> None:
        if error is not None:
            failures.append(str(error))

    for name, value in extra.items():
        producer.produce(topic, value=value, key=name.encode(), partition=0, timestamp=inside, on_delivery=delivered)
    # Records just outside the window (Kafka time): not this day's, must not be counted.
    producer.produce(topic, value=extra["skewed"], key=b"before", partition=1, timestamp=start_ms - 1,
                     on_delivery=delivered)
    producer.produce(topic, value=extra["skewed"], key=b"after", partition=1, timestamp=end_ms,
                     on_delivery=delivered)
    assert producer.flush(30) == 0 and failures == []

    run_day(topic, DAY_BAD_INPUT)

    summary = summary_of(blob_service_client, topic, DAY_BAD_INPUT)
    pipeline = summary["pipeline"]
    want = expected(records)
    in_window = len(records) + len(extra)
    print("bad-input run:", json.dumps({"produced_in_window": in_window, "pipeline": pipeline,
                                        "totals": summary["totals"]}, default=str))
    # Nothing dropped silently: every record of the window is valid, invalid or undecodable.
    assert pipeline["consumed_records"] + pipeline["undecodable_records"] == in_window
    assert summary["totals"]["valid"] + summary["totals"]["invalid"] + pipeline["invalid_records"] == (
        pipeline["consumed_records"])
    # The empty value is undecodable; the JSON array is not a record (invalid).
    assert pipeline["undecodable_records"] == want["undecodable"] + 1
    assert pipeline["invalid_records"] == want["invalid"] + 1
    # The 5 MB record and the one whose own time lies a week later are analysed, not lost; the latter
    # is counted apart from the day's time series, with its skew (the analysis knows its window).
    assert summary["totals"]["valid"] == want["valid"] + 2
    after = summary["window"]["after"]
    assert after["records"] >= 1 and after["max_skew_seconds"] >= 6 * 86_400
    assert summary["period"]["last_minute"] < (DAY_BAD_INPUT + dt.timedelta(days=1)).isoformat()
    # The kept-aside files exist and hold exactly the counted records.
    for key in ("undecodable_records_file", "invalid_records_file"):
        uri = pipeline.get(key)
        assert uri, f"{key} missing from the summary: {pipeline}"
    report = blob_service_client.get_blob_client(
        "results", f"{topic}/{DAY_BAD_INPUT:%Y/%m/%d}/report.html").download_blob().readall().decode()
    assert str(pipeline["undecodable_records"]) in report and str(pipeline["invalid_records"]) in report


def test_an_empty_window_gives_an_empty_report_not_a_failure(stack, kafka_topic, blob_service_client):
    topic = kafka_topic(partitions=3)
    # Records the day before and after only.
    for day in (DAY_EMPTY - dt.timedelta(days=1), DAY_EMPTY + dt.timedelta(days=1)):
        sample_logs.produce(sample_logs.generate(day, 200, seed=13), topic,
                            {"bootstrap.servers": stack["kafka"].bootstrap_servers}, partitions=3)
    run_day(topic, DAY_EMPTY)
    summary = summary_of(blob_service_client, topic, DAY_EMPTY)
    assert summary["totals"]["valid"] == 0
    assert summary["pipeline"]["consumed_records"] == 0


# --- item 8: secrets never reach logs, XCom, rendered fields, reports or manifests ----------------------

def without_report_links(notifications: bytes) -> bytes:
    """Drop the one SAS a notification may carry, after checking it: read-only, one blob, a report.html."""
    from urllib.parse import parse_qs, urlsplit

    for line in notifications.splitlines():
        link = orjson.loads(line).get("details", {}).get("report_link")
        if link:
            url = urlsplit(link)
            fields = {k: v[0] for k, v in parse_qs(url.query).items()}
            assert (fields["sp"], fields["sr"]) == ("r", "b") and url.path.endswith("/report.html"), url.path
            notifications = notifications.replace(link.encode(), b"<report link>")
    return notifications


def test_secrets_in_connections_appear_nowhere(stack, kafka_topic, blob_service_client, batch_service_factory,
                                               session_dir, capfd, caplog, monkeypatch):
    marker = uuid.uuid4().hex[:10]
    kafka_password = f"kafka-sasl-pw-{marker}"
    kafka_key_password = f"kafka-ssl-key-pw-{marker}"
    batch_key = base64.b64encode(f"batch-account-key-{marker}-0123456789".encode()).decode()
    private_batch = batch_service_factory(account_key=batch_key, task_slots=4)
    assert private_batch.account_key == batch_key
    monkeypatch.setenv("AIRFLOW_CONN_AZURE_BATCH_DEFAULT", json.dumps(private_batch.airflow_connection()))
    kafka_extra = {**stack["kafka"].connection_extra(), "sasl.password": kafka_password,
                   "ssl.key.password": kafka_key_password}
    monkeypatch.setenv("AIRFLOW_CONN_KAFKA_DEFAULT", json.dumps({"conn_type": "kafka", "extra": kafka_extra}))
    topic = kafka_topic(partitions=3)
    records = list(sample_logs.generate(DAY_SECRETS, 600, seed=14, bad_share=BAD_SHARE))
    sample_logs.produce(records, topic, {"bootstrap.servers": stack["kafka"].bootstrap_servers}, partitions=3)
    capfd.readouterr()

    run = run_day(topic, DAY_SECRETS, pool_id=private_batch.pool_id)

    out, err = capfd.readouterr()
    secrets = {
        "kafka sasl.password": kafka_password,
        "kafka ssl.key.password": kafka_key_password,
        "batch account key": batch_key,
        "batch account key (decoded)": base64.b64decode(batch_key).decode(),
        "azurite account key": AZURITE_ACCOUNT_KEY,
    }
    # dag.test() runs the tasks in this process: their logs are this output (and the log records
    # pytest captured), not files under $AIRFLOW_HOME/logs (scanned too, in case).
    task_output = out + err + caplog.text
    assert "Batch job" in task_output and "merged 3 partials" in task_output, "the task logs were not captured"
    places: dict[str, bytes] = {"task logs (captured output)": task_output.encode()}
    home = Path(os.environ["AIRFLOW_HOME"])
    for path in (home / "logs").rglob("*"):
        if path.is_file():
            places[f"log {path.relative_to(home)}"] = path.read_bytes()
    notifications = home / "logproc-notifications.jsonl"
    if notifications.exists():
        places["notifications"] = without_report_links(notifications.read_bytes())
    for path in (session_dir / "staging").rglob("*"):
        if path.is_file() and topic in str(path):
            places[f"staging {path.name}"] = path.read_bytes()
    for name, data in blobs_of(blob_service_client, topic, DAY_SECRETS).items():
        places[f"blob {name}"] = data
    with sqlite3.connect(home / "airflow.db") as db:
        for table, column in (("xcom", "value"), ("rendered_task_instance_fields", "rendered_fields"),
                              ("rendered_task_instance_fields", "k8s_pod_yaml")):
            rows = db.execute(f"SELECT task_id, {column} FROM {table} WHERE run_id = ?",
                              (run.run_id,)).fetchall()
            for task_id, value in rows:
                places[f"{table}.{column} {task_id}"] = str(value).encode()
        places["task_instance rows"] = str(db.execute(
            "SELECT * FROM task_instance WHERE run_id = ?", (run.run_id,)).fetchall()).encode()
        places["log table"] = str(db.execute("SELECT * FROM log WHERE run_id = ?", (run.run_id,)).fetchall()).encode()
    assert any(k.startswith("xcom") for k in places) and any(k.startswith("rendered") for k in places)
    assert any("manifest.json" in k for k in places) and any("summary.json" in k for k in places)
    leaks = [(label, where) for where, data in places.items() for label, secret in secrets.items()
             if secret.encode() in data]
    # SAS signatures handed to Batch tasks are secrets too.
    leaks += [("SAS signature", where) for where, data in places.items() if b"sig=" in data]
    print(f"secret scan: {len(places)} places, {sum(len(d) for d in places.values())} bytes, "
          f"{len(secrets) + 1} secrets, leaks {leaks}")
    assert leaks == []
    summary = summary_of(blob_service_client, topic, DAY_SECRETS)
    assert summary["totals"]["valid"] == expected(records)["valid"]
