"""Issue 9, item 10: one big day through the whole daily pipeline on the local stack.

    .venv/bin/python bench/bench_load_day.py                      # 200k records (a minute or two)
    .venv/bin/python bench/bench_load_day.py --records 10000000   # the 10M-record (~2 GB) day

Starts its own broker, Azurite and local Batch service under --dir, produces ``--records`` sample
records for one day (plus a few on the days around it), runs ``airflow dags test logproc_daily`` for
that day in a subprocess, and prints per step: wall time (the task instance's start/end in the
metadata DB) and peak RSS.

How RSS is measured: a sampler (psutil, every 0.2 s) sums the resident set of the ``airflow dags
test`` process and all its descendants (consume workers included) and attributes each sample to the
task(s) the metadata DB shows as running at that moment; for ``analyze`` it also samples the local
Batch service's descendants (the ``logproc-analyze`` processes of the Batch tasks) and reports them
as a separate column. Peaks shorter than 0.2 s can be missed. Not a CI test: a benchmark.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import os
import shutil
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import orjson
import psutil

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

from logproc_local import sample_logs  # noqa: E402
from logproc_local.demo import _create_topic, airflow_environment  # noqa: E402
from logproc_local.stack import LocalStack  # noqa: E402

TOPIC = "access-logs"
DAY = dt.date(2026, 5, 20)


def _rss(procs: list[psutil.Process]) -> int:
    total = 0
    for proc in procs:
        with contextlib.suppress(psutil.NoSuchProcess):
            total += proc.memory_info().rss
    return total


def tree_rss(pid: int) -> int:
    """Resident bytes of a process and all its descendants (0 once it is gone)."""
    try:
        root = psutil.Process(pid)
        return _rss([root, *root.children(recursive=True)])
    except psutil.NoSuchProcess:
        return 0


def children_rss(pid: int) -> int:
    """Resident bytes of a process's descendants only (the Batch tasks of the local service)."""
    try:
        return _rss(psutil.Process(pid).children(recursive=True))
    except psutil.NoSuchProcess:
        return 0


class Sampler(threading.Thread):
    def __init__(self, db: Path, airflow_pid: int, batch_pid: int | None, interval: float = 0.2) -> None:
        super().__init__(daemon=True)
        self.db, self.airflow_pid, self.batch_pid, self.interval = db, airflow_pid, batch_pid, interval
        self.peaks: dict[str, dict[str, int]] = {}
        self.done = threading.Event()

    def running_tasks(self) -> list[str]:
        if not self.db.exists():
            return []
        try:
            with sqlite3.connect(f"file:{self.db}?mode=ro", uri=True, timeout=1) as conn:
                return [row[0] for row in conn.execute(
                    "SELECT task_id FROM task_instance WHERE state IN ('running', 'deferred')")]
        except sqlite3.Error:
            return []

    def run(self) -> None:
        while not self.done.is_set():
            tasks = self.running_tasks()
            airflow = tree_rss(self.airflow_pid)
            batch = children_rss(self.batch_pid) if self.batch_pid else 0
            for task in tasks:
                peak = self.peaks.setdefault(task, {"airflow_rss": 0, "batch_tasks_rss": 0})
                peak["airflow_rss"] = max(peak["airflow_rss"], airflow)
                peak["batch_tasks_rss"] = max(peak["batch_tasks_rss"], batch)
            time.sleep(self.interval)


def task_times(db: Path) -> list[dict[str, Any]]:
    with sqlite3.connect(db) as conn:
        rows = conn.execute("SELECT task_id, state, start_date, end_date, try_number FROM task_instance "
                            "ORDER BY start_date").fetchall()
    result = []
    for task_id, state, start, end, tries in rows:
        seconds = None
        if start and end:
            seconds = (dt.datetime.fromisoformat(str(end)) - dt.datetime.fromisoformat(str(start))).total_seconds()
        result.append({"task_id": task_id, "state": state, "seconds": seconds, "tries": tries})
    return result


def produce_day(bootstrap: str, records: int, partitions: int) -> float:
    started = time.monotonic()
    _create_topic(bootstrap, TOPIC, partitions)
    for day, count in ((DAY - dt.timedelta(days=1), 1_000), (DAY, records), (DAY + dt.timedelta(days=1), 1_000)):
        sample_logs.produce(sample_logs.generate(day, count, seed=7, bad_share=0.001), TOPIC,
                            {"bootstrap.servers": bootstrap}, partitions=partitions)
    time.sleep(2.5)  # the broker persists its data dir about once a second
    return time.monotonic() - started


def du(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--records", type=int, default=200_000, help="records in the day (default 200k)")
    parser.add_argument("--parts", type=int, default=8, help="Batch tasks (parts) for the day")
    parser.add_argument("--partitions", type=int, default=3,
                        help="topic partitions (noida-db 0.2.3 cannot serve the start of a ~700 MB partition: "
                             "use 6 for 10M records)")
    parser.add_argument("--dir", type=Path, default=REPO_ROOT / ".local" / "bench-load-day",
                        help="working dir (recreated; needs ~7x the day's size free)")
    parser.add_argument("--keep", action="store_true", help="keep the working dir afterwards")
    args = parser.parse_args(argv)

    base = args.dir.resolve()
    shutil.rmtree(base, ignore_errors=True)
    home = base / "airflow-home"
    home.mkdir(parents=True)
    stack = LocalStack(base)
    figures: dict[str, Any] = {"records": args.records, "parts": args.parts, "partitions": args.partitions,
                               "cpus": os.cpu_count()}
    try:
        stack.start(batch=True)
        assert stack.broker is not None and stack.batch is not None and stack.azurite is not None
        figures["produce_seconds"] = round(
            produce_day(stack.broker.bootstrap_servers, args.records, args.partitions), 1)
        print(f"produced {args.records} records in {figures['produce_seconds']} s", flush=True)
        env = airflow_environment(home, stack, base / "staging", REPO_ROOT / "dags")
        env["LOGPROC_TOPIC"] = TOPIC
        subprocess.run([str(Path(sys.executable).parent / "airflow"), "db", "migrate"], env=env, check=True,
                       stdout=subprocess.DEVNULL)
        conf = json.dumps({"idle_timeout_minutes": 0.05, "parts": args.parts})
        log_file = base / "dags-test.log"
        started = time.monotonic()
        with open(log_file, "wb") as log:
            proc = subprocess.Popen(
                [str(Path(sys.executable).parent / "airflow"), "dags", "test", "logproc_daily",
                 (DAY + dt.timedelta(days=1)).isoformat(), "--conf", conf],
                env=env, stdout=log, stderr=subprocess.STDOUT)
            sampler = Sampler(home / "airflow.db", proc.pid, getattr(stack.batch, "pid", None))
            sampler.start()
            _, status, usage = os.wait4(proc.pid, 0)
            proc.returncode = os.waitstatus_to_exitcode(status)
            sampler.done.set()
            sampler.join()
        figures["dag_wall_seconds"] = round(time.monotonic() - started, 1)
        figures["airflow_process_maxrss_mb"] = round(usage.ru_maxrss / 1024, 1)
        figures["airflow_process_cpu_seconds"] = round(usage.ru_utime + usage.ru_stime, 1)
        figures["exit_code"] = proc.returncode
        steps = task_times(home / "airflow.db")
        for step in steps:
            peak = sampler.peaks.get(step["task_id"], {})
            step["peak_rss_mb"] = round(peak.get("airflow_rss", 0) / 2**20, 1)
            if step["task_id"] == "analyze":
                step["batch_tasks_peak_rss_mb"] = round(peak.get("batch_tasks_rss", 0) / 2**20, 1)
        figures["steps"] = steps
        if proc.returncode == 0:
            from azure.storage.blob import BlobServiceClient

            client = BlobServiceClient.from_connection_string(stack.azurite.connection_string)
            summary = orjson.loads(client.get_blob_client(
                "results", f"{TOPIC}/{DAY:%Y/%m/%d}/summary.json").download_blob().readall())
            figures["summary_totals"] = summary.get("totals")
            figures["summary_pipeline"] = {k: v for k, v in (summary.get("pipeline") or {}).items()
                                           if not str(k).endswith("_file")}
        figures["working_dir_bytes"] = du(base)
    finally:
        stack.stop()
        if not args.keep:
            shutil.rmtree(base, ignore_errors=True)

    print(json.dumps(figures, indent=2, default=str))
    print(f"\n{'step':<22}{'state':<10}{'seconds':>10}{'peak RSS MB':>14}")
    for step in figures.get("steps", []):
        extra = f"  (+ Batch tasks {step['batch_tasks_peak_rss_mb']} MB)" if "batch_tasks_peak_rss_mb" in step else ""
        seconds = f"{step['seconds']:.1f}" if step["seconds"] is not None else "-"
        print(f"{step['task_id']:<22}{step['state']!s:<10}{seconds:>10}{step['peak_rss_mb']:>14}{extra}")
    print(f"whole DAG run: {figures.get('dag_wall_seconds')} s; exit {figures.get('exit_code')}")
    return 0 if figures.get("exit_code") == 0 else 1


if __name__ == "__main__":
    raise SystemExit(main())
