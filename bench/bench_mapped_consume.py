"""Issue 17: a day's consume as one task vs mapped over 2 and 4 partition groups (each group its own process).

    .venv/bin/python bench/bench_mapped_consume.py                      # 1M records, 5 rounds
    .venv/bin/python bench/bench_mapped_consume.py --records 4000000    # the issue's 4M-record day
    .venv/bin/python bench/bench_mapped_consume.py --staging abfs       # parts staged in Azurite

Starts the local stack (noida-db broker; Azurite too with ``--staging abfs``), produces ``--records``
records of one day once onto a 4-partition topic (round robin, timestamps spread over the day), then
runs, on that topic in the same run:

* ``single``   — the daily DAG's ``consume`` task: ``KafkaBatchConsumeOperator`` with the arguments
                 ``pipeline._consume_step`` gives it (every partition, one output ``raw.ion``);
* ``mapped-2`` / ``mapped-4`` — the mapped DAG's ``consume_part`` tasks: the groups come from
                 ``kafka.groups.plan_partition_groups`` (what ``choose_source`` calls, with
                 ``consume_groups`` = 2 or 4), and each group's task is the same operator with the
                 arguments of ``pipeline_mapped.add_mapped_consume`` (``partitions=<group>``,
                 ``output_uri=.../groups/part-NNN.ion``).

Every task runs in its own child process, as on separate workers. The children of one mode start
together, import Airflow and build their operator, say they are ready, and are released at once:
the consume stage's wall time is from the first ``execute`` start to the last ``execute`` end (the
task start-up — imports, warm-up — is reported apart, as ``startup``: on separate workers it runs in
parallel; here it would only add the machine's contention). Staging: ``file://`` under a temporary
directory (default), or ``abfs://wasb_default@staging/...`` on Azurite (``--staging abfs``).

Per task: peak RSS = the child's VmHWM (from /proc/self/status) plus RUSAGE_CHILDREN's ru_maxrss
of its own worker processes (none on 2 cores: ``choose_workers`` reads in the task's process below
4 usable CPUs); CPU time = user + system of the child and its workers during ``execute``. The modes
alternate round by round (single, mapped-2, mapped-4, single, ...), so a slow spell of this shared
machine hits every mode alike; printed: medians with [min-max] over the rounds, and the per-round
ratios to the single task of the same round.

Targets (issue 17): peak RSS per mapped task <= single / groups + a constant; consume-stage wall
<= 1.1x the single task's on this 2-core machine.

``bare-single`` / ``bare-mapped-N`` run confluent-kafka alone on the same partitions (values to a
file): the client's own share of the peak against this broker.

Measured (5 Dec 2026, 4M records, 5 rounds; README "A large day's consume across workers"): wall
0.94x the single task with 2 groups, 1.06x and 1.20x (two runs) with 4; peak RSS per task 0.92x and
0.83x of the single task's, not 1/groups: the operator reads one partition at a time, so a task's
peak is the process before reading (~250 MB) plus one partition's fetch answer, and noida-db answers
with the rest of the partition, beyond fetch.max.bytes (the bare loop on one partition: 923 MB).

Model for more workers: each group's task reads only its partitions, so its time is about (its
share of the records) x (the single task's per-record CPU, ~2 us here) + a per-task overhead (~0.6 s
of CPU per extra task measured here, plus the task's start: 1.1-1.7 s for imports and warm-up alone,
Airflow's task runner more). On N workers with G groups over P partitions, with the broker keeping
up, the consume stage ~ single / min(G, N, P) + per-task overhead. On this machine N is 2 cores
shared with the broker, so the stage stays ~ the single task's: what mapping divides here is the
part each worker stages (1/groups of the day) and the work, not the time.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import logging
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

from bench_consume import DAY, cpu_seconds, peak_rss_mb, produce  # noqa: E402

PARTITIONS = 4
TOPIC = "access-logs-mapped"
STAGING_CONTAINER = "staging"
# The daily DAG's default max_lateness ("{{ params.max_lateness_minutes * 60 }}" with the param's 0).
MAX_LATENESS = "0"


class _TaskInstance:
    def __init__(self) -> None:
        self.xcom: dict[str, Any] = {}

    def xcom_push(self, key: str, value: Any) -> None:
        self.xcom[key] = value


def window() -> tuple[dt.datetime, dt.datetime]:
    since = dt.datetime.combine(DAY, dt.time(), tzinfo=dt.UTC)
    return since, since + dt.timedelta(days=1)


# --- child: one task ------------------------------------------------------------------------------


class BareRead:
    """The client's own share: confluent-kafka alone reading the task's partitions (values to a file).

    Same connection config as the operator's (the local broker's extra), the same partitions, from
    ``offsets_for_times(since)`` to the high watermark, ``consume(num_messages=10000)``.
    """

    def __init__(self, topic: str, partitions: list[list[Any]] | None, output: Path) -> None:
        self.topic, self.partitions, self.output = topic, partitions, output

    def execute(self, context: Any) -> None:
        from confluent_kafka import Consumer, TopicPartition

        from airflow_provider_logproc.kafka.config import connection_config

        since, _until = window()
        consumer = Consumer({**connection_config("kafka_default"), "enable.auto.commit": False})
        numbers = [p for _t, p in self.partitions] if self.partitions else list(range(PARTITIONS))
        starts = consumer.offsets_for_times([TopicPartition(self.topic, p, int(since.timestamp() * 1000))
                                             for p in numbers], timeout=10)
        highs = {p: consumer.get_watermark_offsets(TopicPartition(self.topic, p), timeout=10)[1] for p in numbers}
        consumer.assign([tp for tp in starts if tp.offset >= 0])
        remaining = {tp.partition for tp in starts if 0 <= tp.offset < highs[tp.partition]}
        count = 0
        with open(self.output, "wb") as out:
            while remaining:
                # Any: fetched records always have a value and an offset (the stubs say Optional).
                messages: list[Any] = consumer.consume(num_messages=10_000, timeout=1)
                for message in messages:
                    if message.error():
                        raise RuntimeError(message.error())
                    out.write(message.value() + b"\n")
                    count += 1
                    if message.offset() >= highs[message.partition()] - 1:
                        remaining.discard(message.partition())
        consumer.close()
        context["ti"].xcom_push("record_count", count)
        context["ti"].xcom_push("dead_letter_count", 0)


def child_main(args: dict[str, Any]) -> None:
    """Build the task's operator, say ready, wait for the go, run ``execute``; print what it measured."""
    started_up = time.monotonic()
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from airflow_warmup import warm_up_airflow

    from airflow_provider_logproc.operators.kafka import KafkaBatchConsumeOperator

    warm_up_airflow()
    since, until = window()
    operator: Any
    if args.get("bare_output"):
        operator = BareRead(args["topic"], args["partitions"], Path(args["bare_output"]))
    elif args["partitions"] is None:
        # pipeline._consume_step("consume", f"{window_dir}/raw.ion", max_lateness=max_lateness)
        operator = KafkaBatchConsumeOperator(task_id="consume", topics=args["topic"], output_uri=args["output_uri"],
                                             max_bad_share=0.05, max_lateness=MAX_LATENESS)
    else:
        # pipeline_mapped.add_mapped_consume: KafkaBatchConsumeOperator.partial(...).expand(partitions=plan)
        operator = KafkaBatchConsumeOperator(task_id="consume_part", topics=args["topic"],
                                             output_uri=args["output_uri"], max_bad_share=0.05,
                                             max_lateness=MAX_LATENESS, partitions=args["partitions"])
    ti = _TaskInstance()
    # The window comes from the run's data interval, as in the DAG (since/until are not given).
    context: Any = {"ti": ti, "data_interval_start": since, "data_interval_end": until}
    startup = time.monotonic() - started_up
    startup_rss_mb = peak_rss_mb()  # what the task holds before it reads anything (Airflow imported)
    print("ready", flush=True)
    if sys.stdin.readline().strip() != "go":
        raise SystemExit("no go")
    cpu_before = cpu_seconds()
    start = time.monotonic()  # CLOCK_MONOTONIC: one clock for every process of the machine
    operator.execute(context)
    end = time.monotonic()
    if args.get("bare_output"):
        written = Path(args["bare_output"]).stat().st_size
    else:
        from airflow_provider_logproc import staging

        written = staging.as_path(args["output_uri"]).stat().st_size  # the task's part: what its worker stages
    print(json.dumps({"bytes": written, "start": start, "end": end, "cpu_seconds": cpu_seconds() - cpu_before,
                      "rss_mb": peak_rss_mb(), "startup_rss_mb": startup_rss_mb, "startup_s": startup,
                      "records": int(ti.xcom["record_count"]), "dead_letters": int(ti.xcom["dead_letter_count"])}),
          flush=True)


# --- parent ---------------------------------------------------------------------------------------


def run_mode(tasks: list[dict[str, Any]], env: dict[str, str]) -> dict[str, Any]:
    """Start one child per task, release them together once all are ready; return the stage's figures."""
    children = [subprocess.Popen([sys.executable, __file__, "--child", json.dumps(task)], env=env, text=True,
                                 stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
                for task in tasks]
    try:
        for child in children:
            assert child.stdout is not None
            line = child.stdout.readline().strip()
            if line != "ready":
                raise RuntimeError(f"task did not start: {line!r}\n{child.communicate()[1][-3000:]}")
        for child in children:
            assert child.stdin is not None
            child.stdin.write("go\n")
            child.stdin.flush()
        results = []
        for child in children:
            out, err = child.communicate()
            if child.returncode != 0:
                raise RuntimeError(f"task failed (exit {child.returncode}):\n{err[-3000:]}")
            results.append(json.loads(out.strip().splitlines()[-1]))
    finally:
        for child in children:
            if child.poll() is None:
                child.kill()
                child.wait()
    return {
        "seconds": max(r["end"] for r in results) - min(r["start"] for r in results),
        "cpu_seconds": sum(r["cpu_seconds"] for r in results),
        "rss_mb": max(r["rss_mb"] for r in results),  # the largest task's peak
        "startup_s": max(r["startup_s"] for r in results),
        "startup_rss_mb": max(r["startup_rss_mb"] for r in results),
        # What reading added to a task's peak (the largest of the mode's tasks).
        "growth_mb": max(r["rss_mb"] - r["startup_rss_mb"] for r in results),
        "records": sum(r["records"] for r in results),
        "bytes": max(r["bytes"] for r in results),  # the largest part one task staged
        "dead_letters": sum(r["dead_letters"] for r in results),
        "tasks": results,
    }


def describe(values: list[float], unit: str, digits: int = 2) -> str:
    return f"{statistics.median(values):.{digits}f} {unit} [{min(values):.{digits}f}-{max(values):.{digits}f}]"


def summarize(rounds: list[dict[str, dict[str, Any]]], records: int, staging_label: str) -> None:
    modes = list(rounds[0])
    print(f"\nconsume stage, {records:,} records on {PARTITIONS} partitions, staging {staging_label}, "
          f"{len(rounds)} alternating rounds, median [min-max]; ratios to the single task (bare: to bare-single) "
          "of the same round:")
    for mode in modes:
        seconds = [r[mode]["seconds"] for r in rounds]
        cpu = [r[mode]["cpu_seconds"] for r in rounds]
        rss = [r[mode]["rss_mb"] for r in rounds]
        startup = [r[mode]["startup_s"] for r in rounds]
        startup_rss = [r[mode]["startup_rss_mb"] for r in rounds]
        line = (f"  {mode:<14} wall {describe(seconds, 's')}  cpu (all tasks) {describe(cpu, 's')}  "
                f"peak RSS per task (largest) {describe(rss, 'MB', 0)}, of it before reading "
                f"{describe(startup_rss, 'MB', 0)}  startup {describe(startup, 's')}  "
                f"staged per task (largest) {statistics.median(r[mode]['bytes'] for r in rounds) / 1e6:.0f} MB")
        print(line)
        reference = "bare-single" if mode.startswith("bare-") else "single"
        if mode != reference and reference in rounds[0]:
            groups = int(mode.rsplit("-", 1)[1])
            wall_ratio = [r[mode]["seconds"] / r[reference]["seconds"] for r in rounds]
            rss_ratio = [r[mode]["rss_mb"] / r[reference]["rss_mb"] for r in rounds]
            cpu_ratio = [r[mode]["cpu_seconds"] / r[reference]["cpu_seconds"] for r in rounds]
            # The constant: what a mapped task holds beyond its 1/groups share of the single task's peak.
            constant = [r[mode]["rss_mb"] - r[reference]["rss_mb"] / groups for r in rounds]
            growth_ratio = [r[mode]["growth_mb"] / r[reference]["growth_mb"] for r in rounds]
            wall_met = statistics.median(wall_ratio) <= 1.1
            print(f"  {'':<14} wall / {reference} {describe(wall_ratio, 'x')} (target <= 1.1x: "
                  f"{'met' if wall_met else 'NOT met'});  cpu / {reference} {describe(cpu_ratio, 'x')};  "
                  f"peak RSS / {reference} {describe(rss_ratio, 'x')} = 1/{groups} + "
                  f"{describe(constant, 'MB', 0)};  growth while reading / {reference}'s {describe(growth_ratio, 'x')}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--records", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=5, help="alternating rounds (every mode once per round)")
    parser.add_argument("--modes", default="single,mapped-2,mapped-4",
                        help="also bare-single, bare-mapped-2, bare-mapped-4: confluent-kafka alone on the same "
                             "partitions (the client's own share of the peak RSS against this broker)")
    parser.add_argument("--staging", choices=("file", "abfs"), default="file")
    parser.add_argument("--child")
    args = parser.parse_args()
    if args.child:
        child_main(json.loads(args.child))
        return 0

    from logproc_local.stack import LocalStack

    base = Path(tempfile.mkdtemp(prefix="bench-mapped-consume-"))
    stack = LocalStack(base).start(kafka=True, blob=args.staging == "abfs")
    try:
        assert stack.broker is not None
        env = {**os.environ, **stack.airflow_connections(), "PYTHONWARNINGS": "ignore"}
        os.environ.update(stack.airflow_connections())  # for plan_partition_groups in this process
        if args.staging == "abfs":
            assert stack.azurite is not None
            from azure.storage.blob import BlobServiceClient

            logging.getLogger("azure").setLevel(logging.WARNING)  # the SDK logs every request at INFO
            BlobServiceClient.from_connection_string(stack.azurite.connection_string).create_container(
                STAGING_CONTAINER)
            staging_base = f"abfs://wasb_default@{STAGING_CONTAINER}/logproc"
        else:
            staging_base = (base / "staging").as_uri()
        window_dir = f"{staging_base}/logproc_daily/{TOPIC}/{DAY:%Y/%m/%d}"
        started = time.perf_counter()
        produce(stack.broker.bootstrap_servers, TOPIC, args.records, partitions=PARTITIONS)
        print(f"produced {args.records:,} records to {PARTITIONS} partitions in {time.perf_counter() - started:.1f} s; "
              f"{len(os.sched_getaffinity(0))} CPUs shared by the broker and the tasks")

        from airflow_provider_logproc.kafka.groups import plan_partition_groups

        plans: dict[str, list[dict[str, Any]]] = {}
        for mode in [m for m in args.modes.split(",") if m]:
            bare = mode.startswith("bare-")
            if mode.removeprefix("bare-") == "single":
                plans[mode] = [{"topic": TOPIC, "partitions": None, "output_uri": f"{window_dir}/raw.ion",
                                "bare_output": str(base / "bare-single.out") if bare else None}]
                continue
            groups = plan_partition_groups([TOPIC], *window(), int(mode.rsplit("-", 1)[1]))
            plans[mode] = [{"topic": TOPIC, "partitions": group,
                            "output_uri": f"{window_dir}/groups/part-{index:03d}.ion",
                            "bare_output": str(base / f"bare-{index}.out") if bare else None}
                           for index, group in enumerate(groups)]
            print(f"{mode}: groups {[[p for _t, p in group] for group in groups]}")

        rounds: list[dict[str, dict[str, Any]]] = []
        for round_number in range(1, args.repeat + 1):
            rounds.append({})
            for mode, tasks in plans.items():
                result = run_mode(tasks, env)
                if result["records"] + result["dead_letters"] != args.records:
                    raise RuntimeError(f"{mode} read {result['records']} records and {result['dead_letters']} "
                                       f"dead letters, expected {args.records}")
                per_task = ", ".join(f"{t['end'] - t['start']:.1f} s/{t['rss_mb']:.0f} MB" for t in result["tasks"])
                print(f"round {round_number} {mode:<14} stage {result['seconds']:6.2f} s  "
                      f"cpu {result['cpu_seconds']:6.2f} s  largest peak RSS {result['rss_mb']:6.0f} MB  "
                      f"tasks: {per_task}", flush=True)
                rounds[-1][mode] = result
                if args.staging == "file":
                    shutil.rmtree(base / "staging", ignore_errors=True)
                for bare_output in base.glob("bare-*.out"):
                    bare_output.unlink()
        if rounds:
            summarize(rounds, args.records, f"{args.staging}:// ({staging_base})")
    finally:
        stack.stop()
        shutil.rmtree(base, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
