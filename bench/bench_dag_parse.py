"""Benchmark: how long parsing each DAG file takes, next to a trivial one-task DAG (issue 8: <= 200 ms).

Each measurement is a fresh child interpreter that imports Airflow first (``airflow.sdk``,
``airflow.timetables.interval``: the DAG processor has them loaded already, and every DAG file
pays for them alike), then times ``runpy.run_path`` of one DAG file: the DAG file's own imports
(this provider's modules and whatever they pull in) plus building the DAG. The baseline is a
trivial one-task DAG file parsed the same way, side by side. Prints the median over ``--runs``
children, the ratio to the baseline and the child's count of newly imported modules.

With ``--dags-report`` it also runs ``airflow dags report`` against the repository's dags folder
with a temporary AIRFLOW_HOME, which prints the DagBag's own per-file duration.

    .venv/bin/python bench/bench_dag_parse.py --runs 7 --dags-report
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
DAG_FILES = sorted((REPO_ROOT / "dags").glob("*.py"))

BASELINE_DAG = textwrap.dedent('''
    import datetime as dt

    from airflow.sdk import DAG, task
    from airflow.timetables.interval import CronDataIntervalTimetable

    with DAG(
        dag_id="baseline_one_task",
        schedule=CronDataIntervalTimetable("@daily", timezone="UTC"),
        start_date=dt.datetime(2026, 1, 1, tzinfo=dt.UTC),
        catchup=False,
    ):
        @task
        def noop() -> None:
            pass

        noop()
''')

CHILD = textwrap.dedent('''
    import json, runpy, sys, time
    import airflow.sdk
    import airflow.timetables.interval
    before = len(sys.modules)
    started = time.perf_counter()
    runpy.run_path(sys.argv[1], run_name="bench_dag_parse")
    elapsed = time.perf_counter() - started
    print(json.dumps({"seconds": elapsed, "modules": len(sys.modules) - before}))
''')


def parse_once(dag_file: Path, env: dict[str, str]) -> dict[str, float]:
    result = subprocess.run([sys.executable, "-c", CHILD, str(dag_file)], env=env, cwd=REPO_ROOT,
                            capture_output=True, text=True, timeout=300, check=False)
    if result.returncode != 0:
        raise SystemExit(f"parsing {dag_file} failed:\n{result.stderr[-3000:]}")
    measured: dict[str, float] = json.loads(result.stdout.strip().splitlines()[-1])
    return measured


def median_parse(dag_file: Path, env: dict[str, str], runs: int) -> tuple[float, int]:
    samples = [parse_once(dag_file, env) for _ in range(runs)]
    return statistics.median(s["seconds"] for s in samples), int(samples[-1]["modules"])


def dags_report(env: dict[str, str]) -> str:
    airflow = Path(sys.executable).with_name("airflow")
    # The command refuses to run on an unmigrated metadata DB (the temporary home's sqlite file).
    migrate = subprocess.run([str(airflow), "db", "migrate"], env=env, cwd=REPO_ROOT,
                             capture_output=True, text=True, timeout=600, check=False)
    if migrate.returncode != 0:
        return f"airflow db migrate failed (exit {migrate.returncode}):\n{migrate.stderr[-2000:]}"
    result = subprocess.run([str(airflow), "dags", "report", "--output", "table"], env=env, cwd=REPO_ROOT,
                            capture_output=True, text=True, timeout=600, check=False)
    if result.returncode != 0:
        return f"airflow dags report failed (exit {result.returncode}):\n{result.stderr[-2000:]}"
    return result.stdout


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=7, help="fresh child processes per DAG file (median)")
    parser.add_argument("--dags-report", action="store_true", help="also run `airflow dags report`")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="bench-dag-parse-") as tmp:
        home = Path(tmp) / "airflow-home"
        home.mkdir()
        env = dict(os.environ)
        env.update({
            "AIRFLOW_HOME": str(home),
            "AIRFLOW__CORE__DAGS_FOLDER": str(REPO_ROOT / "dags"),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home / 'airflow.db'}",
        })
        baseline_file = Path(tmp) / "baseline_one_task.py"
        baseline_file.write_text(BASELINE_DAG)

        baseline, baseline_modules = median_parse(baseline_file, env, args.runs)
        print(f"parse time, median of {args.runs} fresh interpreters, Airflow pre-imported")
        print(f"{'file':<28}{'ms':>9}{'x baseline':>12}{'+ms vs baseline':>17}{'new modules':>13}")
        print(f"{'(baseline: one @task DAG)':<28}{baseline * 1000:>9.1f}{1.0:>12.2f}{0.0:>17.1f}{baseline_modules:>13}")
        for dag_file in DAG_FILES:
            seconds, modules = median_parse(dag_file, env, args.runs)
            print(f"{dag_file.name:<28}{seconds * 1000:>9.1f}{seconds / baseline:>12.2f}"
                  f"{(seconds - baseline) * 1000:>17.1f}{modules:>13}")
        # For comparison: the provider's KafkaMessageQueueTrigger, which logproc_on_new_logs.py does
        # not use (it builds AwaitMessageTrigger, which that wrapper hands over to): importing it
        # runs common.messaging's discovery of every provider's queues (Azure Service Bus, msal...).
        trigger_file = Path(tmp) / "kafka_message_queue_trigger_only.py"
        trigger_file.write_text("import airflow.providers.apache.kafka.triggers.msg_queue\n")
        seconds, modules = median_parse(trigger_file, env, args.runs)
        print(f"{'(KafkaMessageQueueTrigger':<28}{seconds * 1000:>9.1f}{seconds / baseline:>12.2f}"
              f"{(seconds - baseline) * 1000:>17.1f}{modules:>13}")
        print(" import alone, not used)")
        print("target (issue 8): each DAG file <= 200 ms")

        if args.dags_report:
            print("\nairflow dags report (DagBag's own timing, temporary AIRFLOW_HOME):")
            print(dags_report(env))


if __name__ == "__main__":
    main()
