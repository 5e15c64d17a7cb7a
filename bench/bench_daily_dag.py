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
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import shutil
import sqlite3
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


def task_durations(db: Path, dag_id: str) -> dict[str, float]:
    with sqlite3.connect(db) as conn:
        rows = conn.execute(
            "SELECT task_id, start_date, end_date FROM task_instance WHERE dag_id = ? ORDER BY start_date",
            (dag_id,)).fetchall()
    out = {}
    for task_id, start, end in rows:
        if start and end:
            out[task_id] = (dt.datetime.fromisoformat(end) - dt.datetime.fromisoformat(start)).total_seconds()
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--records", type=int, default=200_000)
    parser.add_argument("--parts", type=int, default=4)
    parser.add_argument("--dir", type=Path, default=None, help="work dir (default: a temp dir, removed after)")
    args = parser.parse_args()

    base = (args.dir or Path(tempfile.mkdtemp(prefix="logproc-bench-dag-"))).resolve()
    shutil.rmtree(base, ignore_errors=True)
    (base / "airflow-home").mkdir(parents=True)
    stack = LocalStack(base)
    results: dict[str, Any] = {}
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
        subprocess.run([str(BIN / "airflow"), "db", "migrate"], env=env, check=True, stdout=subprocess.DEVNULL)

        conf = orjson.dumps({"idle_timeout_minutes": 0.02, "parts": args.parts}).decode()
        started = time.perf_counter()
        with open(base / "dags-test.log", "wb") as log:
            logical_date = (DAY + dt.timedelta(days=1)).isoformat()
            subprocess.run([str(BIN / "airflow"), "dags", "test", "logproc_daily", logical_date, "--conf", conf],
                           env=env, stdout=log, stderr=subprocess.STDOUT, check=True)
        results["dag"] = time.perf_counter() - started
        per_task = task_durations(base / "airflow-home" / "airflow.db", "logproc_daily")

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
