"""README command 1: the daily pipeline end to end on the local stack.

``make demo`` (or ``python -m logproc_local.demo``): starts the Kafka-protocol broker,
Azurite and the local Batch service, produces three days of sample logs to a topic, runs the daily DAG
for each day with ``airflow dags test``, and prints the headline numbers and where ``report.html`` is
(also copied to ``report/<day>/`` to open in a browser).
"""

from __future__ import annotations

import argparse
import datetime as dt
import logging
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import orjson

from logproc_local import sample_logs
from logproc_local.stack import LocalStack

DEMO_TOPIC = "access-logs"
REPO_ROOT = Path(__file__).resolve().parents[2]


def default_dags_folder() -> Path:
    """Return the checkout's ``dags/`` (editable install), else the example DAGs shipped in the provider wheel."""
    checkout_dags = REPO_ROOT / "dags"
    if (checkout_dags / "logproc_daily.py").is_file():
        return checkout_dags
    import airflow_provider_logproc

    return Path(airflow_provider_logproc.__file__).parent / "example_dags"


def default_work_root() -> Path:
    """Where the demo keeps its data: the checkout when run from one, else the current directory."""
    return REPO_ROOT if (REPO_ROOT / "dags").is_dir() else Path.cwd()


def _create_topic(bootstrap: str, topic: str, partitions: int) -> None:
    from confluent_kafka.admin import AdminClient, NewTopic

    admin = AdminClient({"bootstrap.servers": bootstrap})
    # Demo days lie in the past: retention off, or the broker would expire them at once.
    futures = admin.create_topics([NewTopic(topic, partitions, 1, config={"retention.ms": "-1"})])
    for future in futures.values():
        future.result(timeout=15)


def airflow_environment(home: Path, stack: LocalStack, staging: Path, dags_folder: Path) -> dict[str, str]:
    """Environment for ``airflow`` commands against the local stack (a private AIRFLOW_HOME)."""
    bin_dir = Path(sys.executable).parent
    return {
        **os.environ,
        **stack.airflow_connections(),
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(dags_folder),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home / 'airflow.db'}",
        "LOGPROC_STAGING_BASE": staging.as_uri(),
        "LOGPROC_TOPIC": DEMO_TOPIC,
        "LOGPROC_SENSOR_POKE_INTERVAL": "1",
        # The local pool's "node image" is this Python environment: the analyzer's console script.
        "LOGPROC_ANALYZER_COMMAND": str(bin_dir / "logproc-analyze"),
        "PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}",
    }


def run_day(env: dict[str, str], day: dt.date, log_dir: Path, consume_groups: int = 0) -> float:
    """``airflow dags test`` for the window [day, day+1): its logical date is the window's end.

    ``consume_groups``: the DAG param (0: auto, which keeps a demo-sized day in one task).
    """
    logical_date = (day + dt.timedelta(days=1)).isoformat()
    conf = orjson.dumps({"idle_timeout_minutes": 0.05, "parts": 3, "consume_groups": consume_groups}).decode()
    log_file = log_dir / f"dags-test-{day}.log"
    started = time.monotonic()
    with open(log_file, "wb") as log:
        result = subprocess.run(
            [str(Path(sys.executable).parent / "airflow"), "dags", "test", "logproc_daily", logical_date,
             "--conf", conf],
            env=env, stdout=log, stderr=subprocess.STDOUT, check=False,
        )
    elapsed = time.monotonic() - started
    if result.returncode != 0:
        tail = "\n".join(log_file.read_text(errors="replace").splitlines()[-40:])
        raise SystemExit(f"the daily DAG failed for {day} (exit {result.returncode}); log: {log_file}\n{tail}")
    return elapsed


def run_backfill(env: dict[str, str], days: list[dt.date], log_dir: Path) -> float:
    """Airflow 2's ``airflow dags backfill`` over ``days``: it runs the tasks itself, no scheduler needed.

    A backfill's logical date D covers the window [D, D+1), so the days are the dates themselves.
    (Airflow 3's ``airflow backfill create`` only queues runs for a scheduler: see README, Backfill.)
    """
    conf = orjson.dumps({"idle_timeout_minutes": 0.05, "parts": 3}).decode()
    log_file = log_dir / f"backfill-{days[0]}-{days[-1]}.log"
    started = time.monotonic()
    with open(log_file, "wb") as log:
        result = subprocess.run(
            [str(Path(sys.executable).parent / "airflow"), "dags", "backfill", "logproc_daily",
             "--start-date", days[0].isoformat(), "--end-date", days[-1].isoformat(), "--conf", conf],
            env=env, stdout=log, stderr=subprocess.STDOUT, check=False,
        )
    elapsed = time.monotonic() - started
    if result.returncode != 0:
        tail = "\n".join(log_file.read_text(errors="replace").splitlines()[-40:])
        raise SystemExit(f"the backfill of {days[0]} to {days[-1]} failed (exit {result.returncode}); "
                         f"log: {log_file}\n{tail}")
    return elapsed


def fetch_results(stack: LocalStack, day: dt.date, out_dir: Path) -> dict[str, Any]:
    from azure.storage.blob import BlobServiceClient

    logging.getLogger("azure").setLevel(logging.WARNING)  # importing Airflow may have reset it
    assert stack.azurite is not None
    client = BlobServiceClient.from_connection_string(stack.azurite.connection_string)
    prefix = f"{DEMO_TOPIC}/{day:%Y/%m/%d}"
    out_dir.mkdir(parents=True, exist_ok=True)
    summary = client.get_blob_client("results", f"{prefix}/summary.json").download_blob().readall()
    (out_dir / "summary.json").write_bytes(summary)
    report = client.get_blob_client("results", f"{prefix}/report.html").download_blob().readall()
    (out_dir / "report.html").write_bytes(report)
    report_url = f"{stack.azurite.blob_endpoint}/results/{prefix}/report.html"
    return {"summary": orjson.loads(summary), "report_url": report_url}


def headline(summary: dict[str, Any]) -> str:
    from airflow_provider_logproc.operators.report import headline as counters

    numbers = counters(summary)
    pipeline = summary.get("pipeline") or {}
    kept_aside = (pipeline.get("undecodable_records") or 0) + (pipeline.get("invalid_records") or 0)
    messages = [a["message"] for items in summary["anomalies"].values() for a in items]
    text = (f"{numbers['valid']} records analysed, {kept_aside} bad records kept aside, "
            f"{numbers['unique_ips']} client IPs, {numbers['client_errors']} 4xx, {numbers['server_errors']} 5xx, "
            f"{numbers['anomalies']} anomalies")
    return text + "".join(f"\n    anomaly: {message}" for message in messages)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="logproc-demo", description=__doc__)
    parser.add_argument("--dir", type=Path, default=default_work_root() / ".local" / "demo",
                        help="where the stack and Airflow keep their data (recreated on every run)")
    parser.add_argument("--first-day", type=dt.date.fromisoformat, default=dt.date(2026, 11, 20))
    parser.add_argument("--days", type=int, default=3)
    parser.add_argument("--records", type=int, default=20_000, help="records per day")
    parser.add_argument("--report-dir", type=Path, default=default_work_root() / "report")
    parser.add_argument("--dags-folder", type=Path, default=None,
                        help="the folder holding logproc_daily.py (default: the checkout's dags/, else the "
                             "example DAGs installed with the provider)")
    parser.add_argument("--backfill", action="store_true",
                        help="Airflow 2 only: run the days with one `airflow dags backfill` instead of an "
                             "`airflow dags test` per day")
    parser.add_argument("--consume-groups", type=int, default=0,
                        help="the DAG param consume_groups: 0 (auto), 1 (one consume task) or the number of "
                             "mapped consume tasks (at most the topic's 3 partitions)")
    args = parser.parse_args(argv)
    if args.backfill:
        from airflow_provider_logproc.version_compat import AIRFLOW_V_3_0_PLUS

        if AIRFLOW_V_3_0_PLUS:
            parser.error("--backfill is for Airflow 2: Airflow 3's `airflow backfill create` queues runs for a "
                         "scheduler (README, Backfill)")

    # The demo prints its own summary; the Azure SDK's per-request logging would drown it.
    logging.getLogger("azure").setLevel(logging.WARNING)
    base = args.dir.resolve()
    shutil.rmtree(base, ignore_errors=True)  # a demo run starts from nothing: same input, same output
    (base / "airflow-home").mkdir(parents=True)
    stack = LocalStack(base)
    try:
        stack.start(batch=True)
        assert stack.broker is not None
        _create_topic(stack.broker.bootstrap_servers, DEMO_TOPIC, 3)
        days = [args.first_day + dt.timedelta(days=i) for i in range(args.days)]
        for day in days:
            produced = sample_logs.produce(
                sample_logs.generate(day, args.records, seed=42, bad_share=0.002),
                DEMO_TOPIC, {"bootstrap.servers": stack.broker.bootstrap_servers}, partitions=3)
            print(f"produced {produced} records of {day} to topic {DEMO_TOPIC!r}", flush=True)
        env = airflow_environment(base / "airflow-home", stack, base / "staging",
                                  (args.dags_folder or default_dags_folder()).resolve())
        airflow = str(Path(sys.executable).parent / "airflow")
        subprocess.run([airflow, "db", "migrate"], env=env, check=True, stdout=subprocess.DEVNULL)
        # What a deployment's DAG processor does: parse the DAG files into the metadata DB, which
        # also registers the report asset (Airflow 3.0 refuses outlets on an unregistered asset).
        subprocess.run([airflow, "dags", "reserialize"], env=env, check=True, stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL)
        if args.backfill:
            print(f"backfill of {days[0]} to {days[-1]} ran in {run_backfill(env, days, base):.0f}s")
        for day in days:
            seconds = 0.0 if args.backfill else run_day(env, day, base, args.consume_groups)
            results = fetch_results(stack, day, args.report_dir / day.isoformat())
            ran = "backfilled" if args.backfill else f"pipeline ran in {seconds:.0f}s"
            print(f"{day}: {ran}; {headline(results['summary'])}")
            print(f"    report in Blob: {results['report_url']}")
            print(f"    local copy:     {(args.report_dir / day.isoformat() / 'report.html').resolve()}", flush=True)
    finally:
        stack.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
