"""The event-driven DAG: new records on the topic wake the watcher; the run consumes what arrived.

``dag.test()`` does not run asset watchers, so the watcher's trigger is driven directly against the
broker (as the triggerer would), then the DAG runs as the asset event would start it.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import importlib.util
import sys
from pathlib import Path

import orjson
import pytest

from logproc_local import sample_logs

pytestmark = pytest.mark.system

REPO = Path(__file__).resolve().parents[2]
DAY = dt.date(2026, 4, 2)


def load_module(name: str):
    spec = importlib.util.spec_from_file_location(f"dagfile_{name}", REPO / "dags" / f"{name}.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


async def first_event(trigger, timeout: float = 60.0):
    async def first():
        async for event in trigger.run():
            return event
        return None

    return await asyncio.wait_for(first(), timeout)


def test_new_logs_wake_the_watcher_and_a_run_consumes_exactly_what_arrived(
    kafka_broker, kafka_topic, azurite, batch_service, airflow_db, blob_service_client, monkeypatch
):
    topic = kafka_topic(partitions=2)
    monkeypatch.setenv("LOGPROC_TOPIC", topic)
    monkeypatch.setenv("LOGPROC_ANALYZER_COMMAND", str(Path(sys.executable).parent / "logproc-analyze"))
    module = load_module("logproc_on_new_logs")
    records = list(sample_logs.generate(DAY, 600, seed=9, bad_share=0.01))

    # The watcher runs before the logs arrive (its group starts at the end of the topic, as a
    # triggerer's would); its trigger fires on the first message, with where it was, not what.
    async def watch_then_produce():
        watching = asyncio.create_task(first_event(module.new_logs.watchers[0].trigger))
        await asyncio.sleep(8)  # let the watcher's consumer join its group
        await asyncio.to_thread(sample_logs.produce, records, topic,
                                {"bootstrap.servers": kafka_broker.bootstrap_servers}, partitions=2)
        return await watching

    event = asyncio.run(watch_then_produce())
    assert event is not None
    assert event.payload["topic"] == topic
    assert set(event.payload) == {"topic", "partition", "offset", "timestamp_ms"}

    conf = {"topic": topic, "parts": 2, "max_duration_seconds": 15}
    run = module.dag.test(run_conf=conf)
    assert run.state == "success"
    report = run.get_task_instance("report").xcom_pull(task_ids="report")
    name = report["summary_uri"].split("/results/", 1)[1]
    summary = orjson.loads(blob_service_client.get_blob_client("results", name).download_blob().readall())
    good = sum(1 for r in records if not r.is_bad)
    assert summary["totals"]["valid"] == good
    pipeline = summary["pipeline"]
    assert pipeline["consumed_records"] + pipeline["undecodable_records"] == len(records)

    # The offsets were committed after the durable write: the next run finds nothing new.
    again = module.dag.test(run_conf=conf)
    assert again.state == "success"
    assert again.get_task_instance("consume_new").xcom_pull(task_ids="consume_new", key="record_count") == 0
