"""The daily DAG with every task in its own process, as tasks on separate workers run (issue 17, item 1).

Each task runs as ``airflow tasks test logproc_daily <task> <run id>`` in a subprocess with its own
private TMPDIR and HOME: no task can see a file another wrote on its local disk. They share what
separate workers share: the metadata DB (XComs), Kafka, Blob Storage (staging on Azurite) and the
Batch service. The summary must equal the single-process ``dag.test()`` run's for the same day.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

import pytest

from logproc_local import sample_logs
from tests.system import test_daily_pipeline as daily
from tests.system.test_daily_pipeline import BAD_SHARE, DAY, REPO, expected_counts, results, run_day

pytestmark = pytest.mark.system

BIN = Path(sys.executable).parent
STAGING = "abfs://wasb_default@staging/logproc"
# The tasks of the single-task path, in the DAG's order (the branch chooses consume: Kafka holds the day).
SINGLE_TASK_PATH = [
    "wait_for_window",
    "choose_source",
    "consume",
    "archive_raw",
    "to_json",
    "upload_parts",
    "analyze",
    "report",
]
stack = daily.stack
monkeypatch_module = daily.monkeypatch_module


def run_task_alone(task_id: str, run_id: str, conf: dict, worker: Path) -> None:
    """Run one task in a fresh process whose temporary folder and home are its own."""
    for folder in ("tmp", "home"):
        (worker / folder).mkdir(parents=True)
    env = {**os.environ, "TMPDIR": str(worker / "tmp"), "HOME": str(worker / "home"), "LOGPROC_STAGING_BASE": STAGING}
    result = subprocess.run(
        [str(BIN / "airflow"), "tasks", "test", "logproc_daily", task_id, run_id, "--task-params", json.dumps(conf)],
        env=env,
        cwd=worker,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    (worker / "task.log").write_text(result.stdout + result.stderr)
    assert result.returncode == 0, f"{task_id} failed:\n{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    # Nothing a later task needs was left on this worker's disk: staging is in Blob Storage.
    assert not [p for p in (worker / "tmp").rglob("*") if p.suffix in (".ion", ".jsonl")], task_id


def xcom_texts(run_id: str) -> list[str]:
    """Every XCom value the run's tasks pushed, as stored in the metadata DB."""
    from airflow.utils.session import create_session
    from sqlalchemy import text

    with create_session() as session:
        rows = session.execute(text("SELECT value FROM xcom WHERE run_id = :run_id"), {"run_id": run_id}).all()
    return [str(value) for (value,) in rows]


def test_each_task_in_its_own_process_with_its_own_disk_gives_the_single_process_summary(
    stack, kafka_topic, blob_service_client, monkeypatch, tmp_path
):
    from azure.core.exceptions import ResourceExistsError

    with contextlib.suppress(ResourceExistsError):
        blob_service_client.create_container("staging")
    monkeypatch.setenv("LOGPROC_STAGING_BASE", STAGING)
    topic = kafka_topic(partitions=3)
    records = list(sample_logs.generate(DAY, 900, seed=9, bad_share=BAD_SHARE))
    sample_logs.produce(
        [*records, *sample_logs.generate(DAY + dt.timedelta(days=1), 20, seed=9)],
        topic,
        {"bootstrap.servers": stack["kafka"].bootstrap_servers},
        partitions=3,
    )
    conf = {"topic": topic, "parts": 3, "idle_timeout_minutes": 0.02, "consume_groups": 1}

    run_day(topic, DAY, consume_groups=1)  # one process: dag.test()
    in_one_process, _ = results(blob_service_client, topic, DAY)
    blob_service_client.get_container_client("results").delete_blob(f"{topic}/{DAY:%Y/%m/%d}/summary.json")

    # A run of the same window (a second after midnight: its own logical date, the same data interval).
    # Airflow 3 infers a manual run's data interval from its run_after, not its logical date, and the
    # CLI's `dags trigger` has no --run-after: the run is created through the same function with both.
    from airflow.api.common.trigger_dag import trigger_dag
    from airflow.utils.types import DagRunTriggeredByType

    env = {**os.environ, "AIRFLOW__CORE__DAGS_FOLDER": str(REPO / "dags")}
    subprocess.run([str(BIN / "airflow"), "dags", "reserialize"], env=env, check=True, capture_output=True)
    run_id = f"separate-workers-{uuid.uuid4().hex[:8]}"
    after_the_day = dt.datetime.combine(DAY + dt.timedelta(days=1), dt.time(0, 0, 1), tzinfo=dt.UTC)
    run = trigger_dag(
        "logproc_daily",
        run_id=run_id,
        conf=conf,
        logical_date=after_the_day,
        run_after=after_the_day,
        triggered_by=DagRunTriggeredByType.TEST,
    )
    assert run is not None and run.data_interval_start is not None and run.data_interval_start.date() == DAY, run
    for index, task_id in enumerate(SINGLE_TASK_PATH):
        run_task_alone(task_id, run_id, conf, tmp_path / f"worker-{index}-{task_id}")

    # What crossed from task to task (XCom) names objects in Blob Storage, never a worker's disk.
    handed_over = xcom_texts(run_id)
    assert handed_over and STAGING.split("@")[1] in " ".join(handed_over)
    assert not [text for text in handed_over if "file:" in text or "/tmp" in text or str(tmp_path) in text]

    on_separate_workers, _ = results(blob_service_client, topic, DAY)
    assert on_separate_workers == in_one_process
    assert on_separate_workers["totals"]["valid"] == expected_counts(records)["valid"]
    assert on_separate_workers["pipeline"]["undecodable_records_file"].startswith(f"{STAGING}/")
