"""OpenLineage events of a daily run, written by the openlineage provider's own file transport.

The run is an ``airflow dags test`` subprocess (the provider reads its transport configuration once
per process) against the session's broker, Azurite and Batch service.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from logproc_local import sample_logs

pytestmark = pytest.mark.system
pytest.importorskip("airflow.providers.openlineage", reason="the openlineage extra is not installed")

REPO = Path(__file__).resolve().parents[2]
DAY = dt.date(2026, 4, 2)


def test_a_daily_run_emits_lineage_from_the_parts_to_the_report(kafka_broker, azurite, batch_service, airflow_db,
                                                                  kafka_topic, tmp_path):
    topic = kafka_topic(partitions=3)
    records = list(sample_logs.generate(DAY, 400, seed=9, bad_share=0.05))
    sample_logs.produce(records, topic, {"bootstrap.servers": kafka_broker.bootstrap_servers}, partitions=3)
    events_file = tmp_path / "openlineage.jsonl"
    env = {
        **os.environ,
        "AIRFLOW__OPENLINEAGE__TRANSPORT": json.dumps({"type": "file", "log_file_path": str(events_file),
                                                       "append": True}),
        "AIRFLOW__OPENLINEAGE__NAMESPACE": "logproc-tests",
        "LOGPROC_ANALYZER_COMMAND": str(Path(sys.executable).parent / "logproc-analyze"),
    }
    conf = json.dumps({"topic": topic, "parts": 2, "idle_timeout_minutes": 0.02})
    result = subprocess.run(
        [str(Path(sys.executable).parent / "airflow"), "dags", "test", "logproc_daily",
         (DAY + dt.timedelta(days=1)).isoformat(), "--conf", conf],
        env=env, cwd=REPO, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]

    events = [json.loads(line) for line in events_file.read_text().splitlines() if line.strip()]
    complete = {event["job"]["name"]: event for event in events if event["eventType"] == "COMPLETE"}
    day_path = f"{topic}/{DAY:%Y/%m/%d}"

    consume = complete["logproc_daily.consume"]
    [read] = consume["inputs"]
    assert (read["namespace"], read["name"]) == (f"kafka://{kafka_broker.bootstrap_servers}", topic)
    assert read["inputFacets"]["dataQualityMetrics"]["rowCount"] == len(records)
    [decodes] = read["facets"]["dataQualityAssertions"]["assertions"]
    dead = {d["name"].rsplit("/", 1)[-1]: d for d in consume["outputs"]}
    dead_letters = dead["raw.dead-letter.jsonl"]["outputFacets"]["outputStatistics"]["rowCount"]
    assert decodes["success"] is False and decodes["actual"] == str(dead_letters) and dead_letters > 0
    assert dead["raw.ion"]["outputFacets"]["outputStatistics"]["rowCount"] == len(records) - dead_letters

    upload = complete["logproc_daily.upload_parts"]
    assert [d["name"].rsplit("/", 1)[-1] for d in upload["inputs"]] == ["raw.jsonl"]
    parts = {d["name"]: d["outputFacets"]["outputStatistics"]["rowCount"] for d in upload["outputs"]}
    assert set(parts) == {f"{day_path}/part-{index:05d}.jsonl" for index in range(2)}

    analyze = complete["logproc_daily.analyze"]
    assert {(d["namespace"], d["name"]) for d in analyze["inputs"]} == {
        ("wasbs://logs@devstoreaccount1", f"{day_path}/part-{index:05d}.jsonl") for index in range(2)}
    assert {d["name"].rsplit("/", 1)[-1] for d in analyze["outputs"]} == {"partial.msgpack"}
    assert all(d["namespace"] == "wasbs://results@devstoreaccount1" for d in analyze["outputs"])

    report = complete["logproc_daily.report"]
    assert {d["name"] for d in report["inputs"]} == {d["name"] for d in analyze["outputs"]}
    outputs = {d["name"]: d for d in report["outputs"]}
    assert set(outputs) == {f"{day_path}/summary.json", f"{day_path}/report.html"}
    # The lines analysed: what the parts held.
    assert outputs[f"{day_path}/summary.json"]["outputFacets"]["outputStatistics"]["rowCount"] == sum(parts.values())
