"""`airflow backfill create` on a running Airflow (scheduler, api-server, dag-processor, triggerer).

A backfill only queues runs: the scheduler runs them, tasks talk to the api-server's execution API,
and deferred tasks wait in the triggerer. Backfilling logical date D covers [D, D+1). Re-processing the
same days gives the same objects, byte for byte.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from logproc_local import sample_logs
from logproc_local.processes import ManagedProcess, free_port, port_open

pytestmark = pytest.mark.system

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
DAYS = [dt.date(2026, 1, 12), dt.date(2026, 1, 13)]
TOPIC_PARTITIONS = 2
FIRST_DAY_DELAY_S = 15


@pytest.fixture
def airflow_deployment(tmp_path, kafka_broker, azurite, batch_service, kafka_topic):
    """A private Airflow with its own metadata DB, all components running, the local stack connected."""
    topic = kafka_topic(partitions=TOPIC_PARTITIONS)
    home = tmp_path / "airflow-home"
    home.mkdir()
    api_port = free_port()
    # The first day's analysis finishes well after the second's: the second day's report would then
    # reach the results before the first day's summary exists, unless it waits for the first's report.
    analyzer = tmp_path / "slow-first-day-analyzer"
    analyzer.write_text(f'#!/bin/sh\ncase " $* " in *" --since {DAYS[0].isoformat()}T"*) '
                        f'sleep {FIRST_DAY_DELAY_S};; esac\nexec "{BIN / "logproc-analyze"}" "$@"\n')
    analyzer.chmod(0o755)
    env = {
        **os.environ,
        "AIRFLOW_HOME": str(home),
        # SQLite serialises writers and sqlite3 waits 5 s for the lock: `backfill create` re-processing two
        # days failed with "database is locked" clearing the second while the scheduler wrote, after the
        # first day's run was committed (2 of 4 runs here). 60 s outlasts the scheduler's writes.
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home / 'airflow.db'}?timeout=60",
        "AIRFLOW__CORE__DAGS_FOLDER": str(REPO / "dags"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
        # The default parallelism of 32 forks 33 scheduler processes on this 2-core machine.
        "AIRFLOW__CORE__PARALLELISM": "2",
        "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"http://127.0.0.1:{api_port}/execution/",
        "AIRFLOW__API_AUTH__JWT_SECRET": "test-only-jwt-secret",
        "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "5",
        "AIRFLOW__SCHEDULER__SCHEDULER_HEARTBEAT_SEC": "1",
        # Only the backfill's runs. Unpausing would otherwise add the scheduled run of the latest day
        # (two just after midnight UTC: the DAG was parsed the day before), whose window sensor pokes
        # in its worker slot for the 10-minute idle timeout; two of them held both slots and the
        # backfill waited past the test's timeout (seen in CI at 00:00 UTC).
        "AIRFLOW__SCHEDULER__USE_JOB_SCHEDULE": "False",
        "LOGPROC_TOPIC": topic,
        "LOGPROC_ANALYZER_COMMAND": str(analyzer),
        "LOGPROC_STAGING_BASE": (tmp_path / "staging").as_uri(),
        "LOGPROC_SENSOR_POKE_INTERVAL": "1",
    }
    subprocess.run([str(BIN / "airflow"), "db", "migrate"], env=env, check=True, capture_output=True)
    components = [
        ManagedProcess("api-server", [str(BIN / "airflow"), "api-server", "--host", "127.0.0.1", "--port",
                                      str(api_port), "--workers", "1"], tmp_path / "api-server.log", env),
        ManagedProcess("scheduler", [str(BIN / "airflow"), "scheduler", "--skip-serve-logs"],
                       tmp_path / "scheduler.log", env),
        ManagedProcess("dag-processor", [str(BIN / "airflow"), "dag-processor"], tmp_path / "dag-processor.log", env),
        ManagedProcess("triggerer", [str(BIN / "airflow"), "triggerer", "--skip-serve-logs"],
                       tmp_path / "triggerer.log", env),
    ]
    try:
        for component in components:
            component.start()
        components[0].wait_ready(lambda: port_open("127.0.0.1", api_port), timeout=120)
        yield {"env": env, "home": home, "topic": topic, "logs": tmp_path}
    finally:
        for component in components:
            component.stop(timeout=15)


def airflow(env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    """Run an airflow command; retry while SQLite is locked by the running components (test DB only)."""
    for _attempt in range(6):
        result = subprocess.run([str(BIN / "airflow"), *args], env=env, capture_output=True, text=True,
                                check=False, timeout=300)
        if result.returncode == 0 or "database is locked" not in result.stderr:
            return result
        time.sleep(2)
    return result


def wait_for_dag(env: dict[str, str], dag_id: str, timeout: float = 180) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = airflow(env, "dags", "list", "--output", "json")
        if result.returncode == 0 and dag_id in result.stdout:
            return
        time.sleep(3)
    raise AssertionError(f"{dag_id} was not parsed within {timeout}s")


def backfill_runs(db: Path) -> list[tuple[str, str, dt.datetime | None]]:
    with sqlite3.connect(db) as conn:
        rows = conn.execute(
            "SELECT logical_date, state, end_date FROM dag_run WHERE dag_id = 'logproc_daily' "
            "AND run_type = 'backfill' ORDER BY logical_date").fetchall()
    return [(logical, state, dt.datetime.fromisoformat(end).replace(tzinfo=dt.UTC) if end else None)
            for logical, state, end in rows]


def other_run_types(db: Path) -> list[str]:
    with sqlite3.connect(db) as conn:
        return [row[0] for row in conn.execute(
            "SELECT DISTINCT run_type FROM dag_run WHERE run_type != 'backfill'")]


def wait_for_backfill(deployment: dict, expected: int, after: dt.datetime, timeout: float = 300) -> list:
    """Wait until ``expected`` backfill runs have all finished after ``after``."""
    deadline = time.monotonic() + timeout
    runs: list = []
    while time.monotonic() < deadline:
        runs = backfill_runs(deployment["home"] / "airflow.db")
        finished = [r for r in runs if r[1] in ("success", "failed") and r[2] is not None and r[2] > after]
        if len(runs) >= expected and len(finished) == len(runs):
            return runs
        time.sleep(3)
    logs = "\n".join((deployment["logs"] / f"{name}.log").read_text(errors="replace")[-3000:]
                     for name in ("scheduler", "triggerer"))
    raise AssertionError(f"backfill did not finish in {timeout}s: {runs}\n{logs}")


def wait_for_backfill_completed(db: Path, timeout: float = 180) -> None:
    """The scheduler marks a finished backfill complete only every ~30 s."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with sqlite3.connect(db) as conn:
            open_backfills = conn.execute(
                "SELECT count(*) FROM backfill WHERE dag_id = 'logproc_daily' AND completed_at IS NULL").fetchone()[0]
        if open_backfills == 0:
            return
        time.sleep(3)
    raise AssertionError(f"the backfill was not marked complete within {timeout}s")


def backfill_ids(db: Path) -> set[int]:
    with sqlite3.connect(db) as conn:
        return {row[0] for row in conn.execute("SELECT id FROM backfill WHERE dag_id = 'logproc_daily'")}


def backfill_run_count(db: Path, backfill_id: int) -> int:
    with sqlite3.connect(db) as conn:
        return conn.execute("SELECT count(*) FROM backfill_dag_run WHERE backfill_id = ?", (backfill_id,)).fetchone()[0]


def remove_orphan_backfill(db: Path, backfill_id: int) -> None:
    """What Airflow's ``_cleanup_partial_backfill`` does after a lock error on Postgres or MySQL."""
    with sqlite3.connect(db, timeout=30) as conn:
        conn.execute("DELETE FROM backfill_dag_run WHERE backfill_id = ?", (backfill_id,))
        conn.execute("DELETE FROM dag_run WHERE backfill_id = ?", (backfill_id,))
        conn.execute("DELETE FROM backfill WHERE id = ?", (backfill_id,))


def create_backfill(deployment: dict, *args: str, days: int, timeout: float = 120) -> None:
    """``airflow backfill create`` of ``days`` days, retried only when SQLite was locked.

    Airflow commits the backfill row first and then creates its runs. When the second step fails on
    a lock, it removes the orphan row on Postgres and MySQL but not on SQLite (test DB only), and the
    orphan has no runs: waiting for it never ends (seen in CI), and a retry fails with
    AlreadyRunningBackfill (seen before). So a failed try's orphan is removed as Airflow would, then
    the command runs again. A new backfill counts as done when it holds all its days; one holding only
    some (its runs already queued: nothing to remove safely) fails the test, saying so.
    """
    db = deployment["home"] / "airflow.db"
    before = backfill_ids(db)
    deadline = time.monotonic() + timeout
    while True:
        result = subprocess.run([str(BIN / "airflow"), "backfill", "create", *args], env=deployment["env"],
                                capture_output=True, text=True, check=False, timeout=300)
        created = {i: backfill_run_count(db, i) for i in backfill_ids(db) - before}
        if created and all(count == days for count in created.values()):
            return
        if any(created.values()):
            raise AssertionError(f"airflow backfill create (exit {result.returncode}) created {created} runs of "
                                 f"{days} days:\n{result.stderr[-2000:]}")
        if "database is locked" not in result.stderr or time.monotonic() > deadline:
            with sqlite3.connect(db) as conn:
                rows = conn.execute("SELECT id, created_at, completed_at FROM backfill").fetchall()
            raise AssertionError(f"airflow backfill create failed; backfills {rows}:\n{result.stderr[-2000:]}")
        for orphan in created:
            remove_orphan_backfill(db, orphan)
        time.sleep(2)


def day_digests(blob_service_client, topic: str) -> dict[str, str]:
    digests = {}
    for container in ("logs", "results", "archive"):
        client = blob_service_client.get_container_client(container)
        if not client.exists():
            continue
        for blob in client.list_blobs(name_starts_with=f"{topic}/"):
            data = client.get_blob_client(blob.name).download_blob().readall()
            digests[f"{container}/{blob.name}"] = hashlib.md5(data).hexdigest()
    return digests


# Two backfills of up to 300 s each: the waits raise with the scheduler's log before pytest-timeout
# stops the test without it.
@pytest.mark.timeout(900)
def test_backfill_create_runs_past_days_and_reprocessing_gives_the_same_objects(
    airflow_deployment, kafka_broker, blob_service_client
):
    env, topic = airflow_deployment["env"], airflow_deployment["topic"]
    produced = {day: list(sample_logs.generate(day, 400, seed=11, bad_share=0.01)) for day in DAYS}
    for day in [*DAYS, DAYS[-1] + dt.timedelta(days=1)]:
        records = produced.get(day) or list(sample_logs.generate(day, 50, seed=11))
        sample_logs.produce(records, topic, {"bootstrap.servers": kafka_broker.bootstrap_servers},
                            partitions=TOPIC_PARTITIONS)

    wait_for_dag(env, "logproc_daily")
    assert airflow(env, "dags", "unpause", "logproc_daily").returncode == 0
    conf = json.dumps({"idle_timeout_minutes": 0.05, "parts": 2})
    started = dt.datetime.now(dt.UTC)
    both_days = ("--dag-id", "logproc_daily", "--from-date", DAYS[0].isoformat(), "--to-date", DAYS[-1].isoformat(),
                 "--dag-run-conf", conf)
    create_backfill(airflow_deployment, *both_days, "--reprocess-behavior", "failed", days=len(DAYS))
    runs = wait_for_backfill(airflow_deployment, expected=len(DAYS), after=started)
    assert [state for _, state, _ in runs] == ["success"] * len(DAYS), runs
    assert other_run_types(airflow_deployment["home"] / "airflow.db") == []

    first = day_digests(blob_service_client, topic)
    for day in DAYS:
        summary = json.loads(blob_service_client.get_blob_client(
            "results", f"{topic}/{day:%Y/%m/%d}/summary.json").download_blob().readall())
        assert summary["totals"]["valid"] == sum(1 for r in produced[day] if not r.is_bad)
        # Each day compares with the day before when that day ran: the report waited for the previous
        # day's, whichever run of the backfill got there first (else re-processing could differ).
        assert ("previous_window" in summary) == (day != DAYS[0]), (day, summary.get("previous_window"))

    # Re-process the same days: new runs, the same objects.
    wait_for_backfill_completed(airflow_deployment["home"] / "airflow.db")  # one backfill per DAG at a time
    restarted = dt.datetime.now(dt.UTC)
    create_backfill(airflow_deployment, *both_days, "--reprocess-behavior", "completed", days=len(DAYS))
    runs = wait_for_backfill(airflow_deployment, expected=len(DAYS), after=restarted)
    assert [state for _, state, _ in runs] == ["success"] * len(DAYS), runs
    assert day_digests(blob_service_client, topic) == first
