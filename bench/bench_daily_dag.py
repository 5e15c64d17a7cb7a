"""Issue 8: one day through `airflow dags test logproc_daily` vs the sum of the steps' bare baselines.

    .venv/bin/python bench/bench_daily_dag.py                    # 200k records
    .venv/bin/python bench/bench_daily_dag.py --records 1000000  # the issue's 1M-record day

Same local stack, same data, same run. The baselines are what a hand-written script would do for each
step, with nothing around it:

- consume: a bare confluent-kafka loop (assign every partition at offsets_for_times(start),
  ``consume(num_messages=10000)``) writing the values of the window's records as NDJSON;
- Ion → JSON: amazon-ion's C reader (bare value model) + orjson over the DAG's own raw.ion;
- upload: ``BlobClient.upload_blob(max_concurrency=4)`` of the DAG's raw.jsonl to the same Azurite;
- analyze: ``logproc-analyze`` alone on raw.jsonl (both cores).

The DAG's time is the wall time of the whole ``airflow dags test`` command (process start, parsing,
the window sensor, archiving, Batch scheduling and the report included), and per task from the
metadata DB. Target: DAG <= 1.5x the sum of the baselines.

Staging in object storage (issue 17): ``--staging abfs`` runs the DAG with
``LOGPROC_STAGING_BASE=abfs://wasb_default@staging/logproc`` (Azurite, as a multi-worker deployment
stages), ``--staging both`` alternates file and abfs runs of the same day on the same stack
(``--repeat`` rounds, default 5) and prints medians [min-max] per mode and the per-round ratio
abfs / file (target <= 1.3x). Before every run the staging files and blobs, the run's containers
and the Batch jobs are cleared, so each run consumes, uploads, archives and analyses the whole day
(an upload skips identical blobs, and a Batch job of the same content would be attached to). CPU
time is printed next to wall time: the ``airflow dags test`` process's (tasks run in it) and the
stack servers' (broker, Azurite, the Batch service with the analyzer it runs). Note: with
``consume_groups`` auto (0), a window of 1,000,000 offsets or more is consumed by the mapped tasks;
``--consume-groups 1`` forces the single task.

    .venv/bin/python bench/bench_daily_dag.py --records 1000000 --staging both --repeat 5
"""

from __future__ import annotations

import argparse
import datetime as dt
import logging
import os
import resource
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import orjson

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

from logproc_local import sample_logs  # noqa: E402
from logproc_local.demo import _create_topic, airflow_environment  # noqa: E402
from logproc_local.stack import LocalStack  # noqa: E402

TOPIC = "access-logs"
DAY = dt.date(2026, 6, 10)
BIN = Path(sys.executable).parent


def day_bounds_ms(day: dt.date) -> tuple[int, int]:
    start = dt.datetime.combine(day, dt.time(), tzinfo=dt.UTC)
    return int(start.timestamp() * 1000), int((start + dt.timedelta(days=1)).timestamp() * 1000)


def bare_consume(bootstrap: str, output: Path) -> tuple[float, int]:
    from confluent_kafka import Consumer, TopicPartition

    start_ms, end_ms = day_bounds_ms(DAY)
    started = time.perf_counter()
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "bench-bare", "enable.auto.commit": False,
                         "receive.message.max.bytes": 536_870_912})
    partitions = sorted(consumer.list_topics(TOPIC, timeout=10).topics[TOPIC].partitions)
    starts = consumer.offsets_for_times([TopicPartition(TOPIC, p, start_ms) for p in partitions], timeout=10)
    highs = {p: consumer.get_watermark_offsets(TopicPartition(TOPIC, p), timeout=10)[1] for p in partitions}
    consumer.assign([tp for tp in starts if tp.offset >= 0])
    remaining = {tp.partition for tp in starts if 0 <= tp.offset < highs[tp.partition]}
    written = 0
    with open(output, "wb") as out:
        while remaining:
            # Any: fetched records always have a value, timestamp and offset (the stubs say Optional).
            messages: list[Any] = consumer.consume(num_messages=10_000, timeout=1)
            for message in messages:
                if message.error():
                    continue
                if start_ms <= message.timestamp()[1] < end_ms:
                    out.write(message.value() + b"\n")
                    written += 1
                if message.offset() >= highs[message.partition()] - 1:
                    remaining.discard(message.partition())
    consumer.close()
    return time.perf_counter() - started, written


def bare_ion_to_json(source: Path, output: Path) -> float:
    from amazon.ion import simpleion
    from amazon.ion.simpleion import IonPyValueModel

    model = IonPyValueModel.MAY_BE_BARE | IonPyValueModel.SYMBOL_AS_TEXT | IonPyValueModel.STRUCT_AS_STD_DICT
    started = time.perf_counter()
    with open(source, "rb") as handle, open(output, "wb") as out:
        for value in simpleion.load(handle, single_value=False, parse_eagerly=False, value_model=model):
            out.write(orjson.dumps(value.get("value") if isinstance(value, dict) else value, default=str) + b"\n")
    return time.perf_counter() - started


def bare_upload(connection_string: str, source: Path) -> float:
    from azure.storage.blob import BlobServiceClient

    client = BlobServiceClient.from_connection_string(connection_string)
    container = client.get_container_client("bench-bare")
    if not container.exists():
        container.create_container()
    started = time.perf_counter()
    with open(source, "rb") as data:
        container.get_blob_client("raw.jsonl").upload_blob(data, overwrite=True, max_concurrency=4)
    return time.perf_counter() - started


def bare_analyze(source: Path, output: Path) -> float:
    started = time.perf_counter()
    subprocess.run([str(BIN / "logproc-analyze"), str(source), "-o", str(output)], check=True,
                   stderr=subprocess.DEVNULL)
    return time.perf_counter() - started


STAGING_CONTAINER = "staging"
ABFS_STAGING = f"abfs://wasb_default@{STAGING_CONTAINER}/logproc"
# What a run leaves in Azurite: cleared before each run, so every run uploads, archives and analyses
# the whole day (an upload skips identical blobs; the Batch job of the same content is attached to).
RUN_CONTAINERS = ("logs", "results", "archive", STAGING_CONTAINER)


def stack_cpu_seconds(stack: LocalStack) -> float:
    """CPU time (user + system, reaped children included) of the stack's servers' process groups.

    The analyzer runs as a child of the local Batch service, the broker and Azurite serve the tasks:
    their CPU is part of a run's cost, and less moved by a busy machine than wall time.
    """
    pgids = set()
    for server in (stack.broker, stack.azurite, stack.batch):
        pid = server.process.pid if server is not None else None
        if pid is not None:
            pgids.add(os.getpgid(pid))
    total_ticks = 0
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            raw = (entry / "stat").read_text()
        except OSError:
            continue
        fields = raw[raw.rfind(")") + 2:].split()  # the command name may hold spaces
        if int(fields[2]) in pgids:
            total_ticks += sum(int(f) for f in fields[11:15])  # utime stime cutime cstime
    return total_ticks / os.sysconf("SC_CLK_TCK")


def children_cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def clear_run_outputs(stack: LocalStack, staging_dir: Path) -> None:
    """Remove what an earlier run left: staging files and blobs, and the Batch jobs (see RUN_CONTAINERS)."""
    from azure.storage.blob import BlobServiceClient

    from airflow_provider_logproc.hooks.batch import AzureBatchJobHook

    logging.getLogger("azure").setLevel(logging.WARNING)  # the SDKs log every request at INFO
    assert stack.azurite is not None
    shutil.rmtree(staging_dir, ignore_errors=True)
    service = BlobServiceClient.from_connection_string(stack.azurite.connection_string)
    for container in RUN_CONTAINERS:
        client = service.get_container_client(container)
        if client.exists():
            for blob in client.list_blobs():
                client.delete_blob(blob.name)
        elif container == STAGING_CONTAINER:
            client.create_container()
    batch = AzureBatchJobHook("azure_batch_default").client
    for job in list(batch.list_jobs()):
        batch.begin_delete_job(job.id).result()


def task_spans(db: Path, dag_id: str) -> dict[str, float]:
    """Per task id that ran (skipped branches left out), first start to last end (mapped instances together)."""
    with sqlite3.connect(db) as conn:
        rows = conn.execute("SELECT task_id, MIN(start_date), MAX(end_date) FROM task_instance WHERE dag_id = ? "
                            "AND state = 'success' AND start_date IS NOT NULL AND end_date IS NOT NULL "
                            "GROUP BY task_id",
                            (dag_id,)).fetchall()
    return {task_id: (dt.datetime.fromisoformat(end) - dt.datetime.fromisoformat(start)).total_seconds()
            for task_id, start, end in rows}


def run_dag(env: dict[str, str], conf: str, log_path: Path) -> float:
    started = time.perf_counter()
    with open(log_path, "wb") as log:
        logical_date = (DAY + dt.timedelta(days=1)).isoformat()
        result = subprocess.run([str(BIN / "airflow"), "dags", "test", "logproc_daily", logical_date, "--conf", conf],
                                env=env, stdout=log, stderr=subprocess.STDOUT, check=False)
    if result.returncode != 0:
        tail = "\n".join(log_path.read_text(errors="replace").splitlines()[-40:])
        raise SystemExit(f"airflow dags test failed (exit {result.returncode}); log {log_path}:\n{tail}")
    return time.perf_counter() - started


def median_range(values: list[float]) -> str:
    return f"{statistics.median(values):7.2f} [{min(values):.2f}-{max(values):.2f}]"


SUMMARY_TASKS = ("consume", "consume_part", "archive_raw", "archive_part", "to_json", "to_json_part", "upload_parts",
                 "upload_part", "collect_parts", "analyze", "report")


def summarize_staging(runs: dict[str, list[dict[str, Any]]], records: int) -> None:
    """Medians [min-max] per staging mode, and the per-round ratio abfs / file."""
    print(f"\ndaily DAG, {records:,} records, `airflow dags test` wall time and CPU, median [min-max] of "
          f"{max(len(v) for v in runs.values())} alternating rounds:")
    for mode, mode_runs in runs.items():
        print(f"  staging {mode:<5} DAG {median_range([r['dag'] for r in mode_runs])} s   "
              f"cpu airflow {median_range([r['cpu_airflow'] for r in mode_runs])} s   "
              f"cpu stack (broker, Azurite, Batch + analyzer) {median_range([r['cpu_stack'] for r in mode_runs])} s")
        tasks = [t for t in SUMMARY_TASKS if all(t in r["tasks"] for r in mode_runs)]
        print("    " + "  ".join(f"{t} {statistics.median(r['tasks'][t] for r in mode_runs):.2f}" for t in tasks))
    if "file" in runs and "abfs" in runs:
        pairs = list(zip(runs["file"], runs["abfs"], strict=False))
        ratios = [b["dag"] / a["dag"] for a, b in pairs]
        cpu_ratios = [(b["cpu_airflow"] + b["cpu_stack"]) / (a["cpu_airflow"] + a["cpu_stack"]) for a, b in pairs]
        met = statistics.median(ratios) <= 1.3
        print(f"  ratio abfs / file (same round): DAG {median_range(ratios)}x (target <= 1.3x: "
              f"{'met' if met else 'NOT met'});  CPU (airflow + stack) {median_range(cpu_ratios)}x")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--records", type=int, default=200_000)
    parser.add_argument("--parts", type=int, default=4)
    parser.add_argument("--staging", choices=("file", "abfs", "both"), default="file",
                        help="staging base of the DAG's tasks: file:// under the work dir, or abfs:// on Azurite; "
                             "both = alternating file and abfs runs of the same day (medians, ratio abfs/file)")
    parser.add_argument("--repeat", type=int, default=None,
                        help="runs per staging mode (default 1, 5 with --staging both)")
    parser.add_argument("--consume-groups", type=int, default=None,
                        help="the DAG's consume_groups param (default: the DAG's, 0 = auto)")
    parser.add_argument("--dir", type=Path, default=None, help="work dir (default: a temp dir, removed after)")
    args = parser.parse_args()
    modes = ["file", "abfs"] if args.staging == "both" else [args.staging]
    repeat = args.repeat or (5 if args.staging == "both" else 1)

    base = (args.dir or Path(tempfile.mkdtemp(prefix="logproc-bench-dag-"))).resolve()
    shutil.rmtree(base, ignore_errors=True)
    (base / "airflow-home").mkdir(parents=True)
    stack = LocalStack(base)
    results: dict[str, Any] = {}
    runs: dict[str, list[dict[str, Any]]] = {mode: [] for mode in modes}
    try:
        stack.start(batch=True)
        assert stack.broker is not None and stack.azurite is not None
        _create_topic(stack.broker.bootstrap_servers, TOPIC, 3)
        records = sample_logs.generate(DAY, args.records, seed=1, bad_share=0.0)
        sample_logs.produce(records, TOPIC, {"bootstrap.servers": stack.broker.bootstrap_servers}, partitions=3)
        # As on a live topic when the daily run starts: the next day's first records have arrived on
        # every partition, so the window sensor sees the day complete at its first look.
        sample_logs.produce(sample_logs.generate(DAY + dt.timedelta(days=1), 300, seed=2), TOPIC,
                            {"bootstrap.servers": stack.broker.bootstrap_servers}, partitions=3)
        env = airflow_environment(base / "airflow-home", stack, base / "staging", REPO_ROOT / "dags")
        os.environ.update(stack.airflow_connections())  # for clearing the Batch jobs from this process
        subprocess.run([str(BIN / "airflow"), "db", "migrate"], env=env, check=True, stdout=subprocess.DEVNULL)

        params: dict[str, Any] = {"idle_timeout_minutes": 0.02, "parts": args.parts}
        if args.consume_groups is not None:
            params["consume_groups"] = args.consume_groups
        conf = orjson.dumps(params).decode()
        per_task: dict[str, float] = {}
        for round_number in range(1, repeat + 1):
            for mode in modes:
                clear_run_outputs(stack, base / "staging")
                mode_env = {**env, "LOGPROC_STAGING_BASE": ABFS_STAGING} if mode == "abfs" else env
                cpu_airflow, cpu_stack = children_cpu_seconds(), stack_cpu_seconds(stack)
                seconds = run_dag(mode_env, conf, base / f"dags-test-{mode}-{round_number}.log")
                per_task = task_spans(base / "airflow-home" / "airflow.db", "logproc_daily")
                runs[mode].append({"dag": seconds, "cpu_airflow": children_cpu_seconds() - cpu_airflow,
                                   "cpu_stack": stack_cpu_seconds(stack) - cpu_stack, "tasks": per_task})
                path = "mapped consume" if "consume_part" in per_task else "single consume"
                print(f"round {round_number} staging {mode:<5} DAG {seconds:6.2f} s  cpu airflow "
                      f"{runs[mode][-1]['cpu_airflow']:6.2f} s  cpu stack {runs[mode][-1]['cpu_stack']:6.2f} s  "
                      f"({path})", flush=True)
        if len(modes) > 1 or repeat > 1:
            summarize_staging(runs, args.records)
        if modes[-1] != "file" or "consume" not in per_task:
            # The bare baselines read the last run's raw.ion and raw.jsonl from disk: a file run's,
            # of the single consume (a mapped run's parts are several files).
            print("(no bare baselines: they need the last run on file staging through the single consume)")
            return 0

        results["dag"] = runs["file"][-1]["dag"]
        staging = next((base / "staging").rglob("raw.ion"))
        raw_jsonl = next((base / "staging").rglob("raw.jsonl"))
        results["consume"], written = bare_consume(stack.broker.bootstrap_servers, base / "bare.ndjson")
        results["ion_to_json"] = bare_ion_to_json(staging, base / "bare-from-ion.ndjson")
        results["upload"] = bare_upload(stack.azurite.connection_string, raw_jsonl)
        results["analyze"] = bare_analyze(raw_jsonl, base / "bare-partial.json")
    finally:
        stack.stop()
        if args.dir is None:
            shutil.rmtree(base, ignore_errors=True)

    baseline = sum(results[k] for k in ("consume", "ion_to_json", "upload", "analyze"))
    print(f"records: {args.records:,} (window records read by the bare loop: {written:,}), parts: {args.parts}")
    print(f"{'step':<22}{'DAG task s':>12}{'bare s':>10}")
    rows = [("wait_for_window", None), ("choose_source", None), ("consume", "consume"), ("archive_raw", None),
            ("to_json", "ion_to_json"), ("upload_parts", "upload"), ("analyze", "analyze"), ("report", None)]
    for task_id, bare in rows:
        bare_text = f"{results[bare]:>10.2f}" if bare else f"{'':>10}"
        print(f"{task_id:<22}{per_task.get(task_id, float('nan')):>12.2f}{bare_text}")
    print(f"{'airflow dags test (whole command)':<34}{results['dag']:>8.2f} s")
    print(f"{'sum of bare baselines':<34}{baseline:>8.2f} s")
    ratio = results["dag"] / baseline
    print(f"ratio DAG / baselines: {ratio:.2f}x (target <= 1.5x): {'met' if ratio <= 1.5 else 'NOT met'}")
    tasks_only = sum(per_task.get(t, 0.0) for t, _ in rows)
    print(f"ratio of the tasks' own time / baselines: {tasks_only / baseline:.2f}x "
          f"(without process start, parsing and scheduling between tasks)")
    return 0


if __name__ == "__main__":
    os.environ.setdefault("PYTHONWARNINGS", "ignore")
    raise SystemExit(main())
