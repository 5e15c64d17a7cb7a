"""Benchmark: consume a Kafka window to Ion vs a bare confluent-kafka loop, and vs the official operator.

Starts its own broker (noida-db via LocalKafkaBroker), produces ``--records`` JSON log records
(~200-byte values, 3 partitions) with timestamps spread over one day, then runs, each in a fresh
child process on the same topic in the same run:

* ``bare``      — confluent-kafka: assign all partitions, ``consume(num_messages=10000)`` until the
                  high watermarks, write each value + newline (NDJSON). The baseline.
* ``ion-text``  — KafkaBatchConsumeOperator (window = that day), Ion text envelopes (the default),
                  default ``workers`` (one process per partition up to the CPU count).
* ``ion-text-1``— the same with ``workers=1``: everything in one process.
* ``ion-binary``— the same with ``ion_encoding="binary"`` (amazon-ion C extension).
* ``official``  — Airflow's ConsumeFromTopicOperator with a per-message apply_function writing the
                  same NDJSON file.

The modes run in turn, round after round (A B C … A B C …), so a slow spell of this shared machine
hits every mode alike. Printed per mode: the median time of ``--repeat`` rounds (≥ 5) with its min-max,
and the median of the per-round ratios to the bare loop of the same round, with their range; each
child's peak RSS. ``--pin-broker`` puts the broker on CPU 0 and the consumers on the other CPUs (where
there are at least two), as if the broker ran on another machine; the figures say which layout they are.
With ``--rss-records`` (e.g. ``1000000,4000000``) it repeats the runs at those sizes and prints peak RSS per size. Note:
against noida-db even the bare loop's RSS grows with the partition size (the broker answers fetches
beyond the requested maximum bytes and librdkafka holds the answer); compare each operator figure
with the bare loop's at the same size. The ``-traced`` modes (one process, tracemalloc on, slower)
also report the peak of Python's own allocations, which leaves librdkafka's buffers out: the
reading loop's own share. Each child also reports the CPU time (user + system, its worker processes
included) of the timed section only, which a busy shared machine moves less than the wall time.
``--other-python`` compares with another checkout (its venv's interpreter): a mode ending in
``@other`` runs there, in the same rounds against the same broker.

    .venv/bin/python bench/bench_consume.py --records 1000000 --repeat 5 [--pin-broker]
    .venv/bin/python bench/bench_consume.py --modes bare,ion-text-1,ion-text-1@other \
        --other-python ../before/.venv/bin/python
    .venv/bin/python bench/bench_consume.py --records 200000 --rss-records 200000,800000
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from airflow_warmup import warm_up_airflow

DAY = dt.date(2024, 6, 1)
PARTITIONS = 3
POOL_SIZE = 50_000
# noida-db answers a fetch with everything it has, beyond fetch.max.bytes: with millions of records
# per partition the answer outgrows librdkafka's default 100 MB limit. Real Kafka caps its answers.
LOCAL_BROKER_CONSUMER_CONFIG: dict[str, Any] = {"receive.message.max.bytes": 1_000_000_000}


def produce(bootstrap: str, topic: str, count: int, partitions: int = PARTITIONS) -> None:
    """``count`` records of DAY on ``partitions`` partitions (round robin): a pool of realistic records
    reused, timestamps spread over the day."""
    from confluent_kafka import Producer
    from confluent_kafka.admin import AdminClient, NewTopic

    from logproc_local import sample_logs

    admin = AdminClient({"bootstrap.servers": bootstrap})
    for future in admin.create_topics([NewTopic(topic, partitions, 1, config={"retention.ms": "-1"})]).values():
        future.result(timeout=30)
    pool = list(sample_logs.generate(DAY, min(count, POOL_SIZE), seed=42))
    day_start = int(dt.datetime.combine(DAY, dt.time(), tzinfo=dt.UTC).timestamp() * 1000)
    step = 86_400_000 / count
    producer = Producer({"bootstrap.servers": bootstrap, "linger.ms": 20, "batch.num.messages": 10_000,
                         "compression.type": "lz4", "queue.buffering.max.messages": 1_000_000})
    for i in range(count):
        record = pool[i % len(pool)]
        while True:
            try:
                producer.produce(topic, value=record.value, key=record.key, partition=i % partitions,
                                 timestamp=day_start + int(i * step))
                break
            except BufferError:
                producer.poll(0.05)
        if i % 10_000 == 0:
            producer.poll(0)
    if producer.flush(120):
        raise RuntimeError("records not delivered")


# --- children ------------------------------------------------------------------------------------


def child_bare(bootstrap: str, topic: str, output: str) -> tuple[int, float, float]:
    from confluent_kafka import Consumer, TopicPartition

    started, cpu_started = time.perf_counter(), cpu_seconds()
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"bare-{uuid.uuid4().hex}",
                         "enable.auto.commit": False, **LOCAL_BROKER_CONSUMER_CONFIG})
    highs = {p: consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1] for p in range(PARTITIONS)}
    consumer.assign([TopicPartition(topic, p, 0) for p in range(PARTITIONS)])
    remaining = {p for p, high in highs.items() if high > 0}
    count = 0
    last_data = time.monotonic()
    with open(output, "wb") as out:
        while remaining:
            # Any: fetched records always have a value, partition and offset (the stubs say Optional).
            messages: list[Any] = consumer.consume(num_messages=10_000, timeout=1.0)
            if messages:
                last_data = time.monotonic()
            elif time.monotonic() - last_data > 60:
                raise RuntimeError(f"no records for 60 s with partitions {sorted(remaining)} unfinished")
            for message in messages:
                if message.error():
                    raise RuntimeError(message.error())
                out.write(message.value())
                out.write(b"\n")
                count += 1
                if message.offset() + 1 >= highs[message.partition()]:
                    remaining.discard(message.partition())
    consumer.close()
    return count, time.perf_counter() - started, cpu_seconds() - cpu_started


class _TaskInstance:
    def __init__(self) -> None:
        self.xcom: dict[str, Any] = {}

    def xcom_push(self, key: str, value: Any) -> None:
        self.xcom[key] = value


def child_operator(bootstrap: str, topic: str, output: str, encoding: str,
                   workers: int | None) -> tuple[int, float, float]:
    from airflow_provider_logproc.operators.kafka import KafkaBatchConsumeOperator

    warm_up_airflow()

    os.environ["AIRFLOW_CONN_KAFKA_DEFAULT"] = json.dumps(
        {"conn_type": "kafka", "extra": {"bootstrap.servers": bootstrap, "group.id": "bench",
                                         **LOCAL_BROKER_CONSUMER_CONFIG}})
    since = dt.datetime.combine(DAY, dt.time(), tzinfo=dt.UTC)
    operator = KafkaBatchConsumeOperator(task_id="consume", topics=topic, since=since,
                                         until=since + dt.timedelta(days=1), output_uri=f"file://{output}",
                                         ion_encoding=encoding, workers=workers)
    ti = _TaskInstance()
    # The Airflow import is neither timed nor counted in CPU time (a worker has it loaded already);
    # the connection lookup and the fsync are.
    started, cpu_started = time.perf_counter(), cpu_seconds()
    operator.execute({"ti": ti})  # type: ignore[typeddict-item]
    return int(ti.xcom["record_count"]), time.perf_counter() - started, cpu_seconds() - cpu_started


_out_file: Any = None


def write_value(message: Any) -> None:
    _out_file.write(message.value())
    _out_file.write(b"\n")


def child_official(bootstrap: str, topic: str, output: str, count: int) -> tuple[int, float, float]:
    global _out_file
    from airflow.providers.apache.kafka.operators.consume import ConsumeFromTopicOperator

    os.environ["AIRFLOW_CONN_KAFKA_BENCH_OFFICIAL"] = json.dumps({"conn_type": "kafka", "extra": {
        "bootstrap.servers": bootstrap, "group.id": f"official-{uuid.uuid4().hex}",
        "auto.offset.reset": "earliest", "enable.auto.commit": False, "session.timeout.ms": 6000,
        **LOCAL_BROKER_CONSUMER_CONFIG}})
    operator = ConsumeFromTopicOperator(task_id="official", topics=[topic], kafka_config_id="kafka_bench_official",
                                        apply_function=write_value, max_messages=count, max_batch_size=10_000,
                                        poll_timeout=5, commit_cadence="never")
    warm_up_airflow()
    started, cpu_started = time.perf_counter(), cpu_seconds()
    with open(output, "wb") as _out_file:
        operator.execute({})
    seconds, cpu = time.perf_counter() - started, cpu_seconds() - cpu_started
    with open(output, "rb") as produced:
        return sum(1 for _ in produced), seconds, cpu


def peak_rss_mb() -> float:
    """This process's peak RSS plus its children's (worker processes).

    VmHWM, not ru_maxrss: Linux carries ru_maxrss over exec from the parent that forked us.
    Children's peaks come from RUSAGE_CHILDREN (they are started by exec'ing a fresh Python from a
    small parent, so their figure is their own); the sum is an upper bound of what ran at once.
    """
    own_kb = 0
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                own_kb = int(line.split()[1])
    children_kb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return (own_kb + children_kb) / 1024


def pin_process(pid: int, cpus: set[int]) -> None:
    """Every thread of ``pid`` onto ``cpus`` (a process's threads keep their own affinity)."""
    for task in Path(f"/proc/{pid}/task").iterdir():
        os.sched_setaffinity(int(task.name), cpus)


def layout(pin_broker: bool, broker_pid: int | None) -> str:
    """Pin the broker apart when asked and possible; say which layout the figures are for."""
    cpus = sorted(os.sched_getaffinity(0))
    if not pin_broker:
        return f"broker and consumers share {len(cpus)} CPU(s)"
    if len(cpus) < 2 or broker_pid is None:
        return f"broker NOT pinned apart: {len(cpus)} CPU(s) usable; broker and consumers share them"
    pin_process(broker_pid, {cpus[0]})
    os.sched_setaffinity(0, set(cpus[1:]))  # children inherit it
    return f"broker pinned to CPU {cpus[0]}, consumers on CPU(s) {cpus[1:]}"


def summarize_rounds(rounds: list[dict[str, dict[str, Any]]], records: int) -> None:
    """Median time and min-max per mode, and the median of per-round ratios to the same round's bare loop."""
    modes = list(rounds[0])
    print(f"\nconsume {records} records, {len(rounds)} alternating rounds (median [min-max]); ratio = bare time / "
          f"mode time in the same round (higher is better; target >= 0.8):")
    for mode in modes:
        seconds = [round_[mode]["seconds"] for round_ in rounds]
        line = (f"  {mode:<11} {statistics.median(seconds):6.2f} s [{min(seconds):.2f}-{max(seconds):.2f}]  "
                f"{records / statistics.median(seconds):9.0f} rec/s  peak rss "
                f"{statistics.median(r[mode]['rss_mb'] for r in rounds):7.1f} MB")
        if "bare" in rounds[0]:
            ratios = [round_["bare"]["seconds"] / round_[mode]["seconds"] for round_ in rounds]
            line += f"  ratio {statistics.median(ratios):.2f}x [{min(ratios):.2f}-{max(ratios):.2f}]"
        cpu = [round_[mode]["cpu_seconds"] for round_ in rounds]
        line += f"  cpu {statistics.median(cpu):.2f} s [{min(cpu):.2f}-{max(cpu):.2f}]"
        print(line)


OTHER_SUFFIX = "@other"


def cpu_seconds() -> float:
    """CPU time (user + system) of this process and its finished children: less moved by a busy machine."""
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def run_child(mode: str, other_python: str | None = None, **kwargs: Any) -> dict[str, Any]:
    python = sys.executable
    if mode.endswith(OTHER_SUFFIX):
        if other_python is None:
            raise SystemExit(f"mode {mode} needs --other-python")
        python, mode = other_python, mode.removesuffix(OTHER_SUFFIX)
    command = [python, __file__, "--child", mode, "--child-args", json.dumps(kwargs)]
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise RuntimeError(f"{mode} failed:\n{result.stderr[-3000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def child_main(mode: str, args: dict[str, Any]) -> None:
    traced = mode.endswith("-traced")
    if traced:
        # Python's own allocations only (Message objects, our buffers and spools' pages are not all
        # of it, but librdkafka's fetch buffers are not in it): what the loop itself holds.
        import tracemalloc

        mode = mode.removesuffix("-traced")
        tracemalloc.start()
    if mode == "bare":
        count, seconds, cpu = child_bare(args["bootstrap"], args["topic"], args["output"])
    elif mode.startswith("ion-"):
        # ion-text, ion-binary: default workers; ion-text-1: one process (workers=1)
        parts = mode.split("-")
        workers = int(parts[2]) if len(parts) > 2 else None
        count, seconds, cpu = child_operator(args["bootstrap"], args["topic"], args["output"], parts[1], workers)
    elif mode == "official":
        count, seconds, cpu = child_official(args["bootstrap"], args["topic"], args["output"], args["count"])
    else:
        raise SystemExit(f"unknown child mode {mode}")
    rss_mb = peak_rss_mb()
    traced_mb = tracemalloc.get_traced_memory()[1] / 2**20 if traced else None
    print(json.dumps({"mode": mode, "records": count, "seconds": seconds, "cpu_seconds": cpu, "rss_mb": rss_mb,
                      "traced_mb": traced_mb, "bytes": Path(args["output"]).stat().st_size}))


# --- main ----------------------------------------------------------------------------------------


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--records", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=5,
                        help="alternating rounds (every mode once per round); medians and ranges are reported")
    parser.add_argument("--pin-broker", action="store_true",
                        help="broker on CPU 0, consumers on the other CPUs (needs 2 or more)")
    parser.add_argument("--modes", default="bare,ion-text,ion-text-1,ion-binary,official",
                        help="ion-text-1 = workers=1 (one process); ion-text/ion-binary = default workers")
    parser.add_argument("--rss-records", default="", help="comma-separated sizes for the peak-RSS check")
    parser.add_argument("--rss-modes", default="bare,ion-text,ion-text-1,bare-traced,ion-text-1-traced",
                        help="modes for the peak-RSS check; bare shows the client's own share; a mode "
                             "ending in -traced also reports the peak of Python's own allocations")
    parser.add_argument("--other-python",
                        help="interpreter of another checkout's venv: a mode ending in @other (e.g. ion-text-1@other) "
                             "runs its child there, against the same broker in the same rounds (a before/after)")
    parser.add_argument("--child")
    parser.add_argument("--child-args")
    args = parser.parse_args()
    if args.child:
        child_main(args.child, json.loads(args.child_args))
        return 0

    from logproc_local.kafka_broker import LocalKafkaBroker

    work = Path(tempfile.mkdtemp(prefix="bench-consume-"))
    broker = LocalKafkaBroker(work / "kafka-data").start()
    try:
        bootstrap = broker.bootstrap_servers
        print(layout(args.pin_broker, broker.process.pid))
        topic = f"bench-{args.records}"
        started = time.perf_counter()
        produce(bootstrap, topic, args.records)
        print(f"produced {args.records} records to {PARTITIONS} partitions in {time.perf_counter() - started:.1f} s")
        rounds: list[dict[str, dict[str, Any]]] = []
        modes = [m for m in args.modes.split(",") if m]
        for _ in range(args.repeat):
            rounds.append({})
            for mode in modes:
                output = work / f"{mode}.out"
                result = run_child(mode, args.other_python, bootstrap=bootstrap, topic=topic, output=str(output),
                                   count=args.records)
                output.unlink()
                if result["records"] != args.records:
                    raise RuntimeError(f"{mode} read {result['records']} records, expected {args.records}")
                rate = result["records"] / result["seconds"]
                print(f"  {mode:<11} {result['seconds']:7.2f} s  {rate:10.0f} rec/s  "
                      f"cpu {result['cpu_seconds']:6.2f} s  rss {result['rss_mb']:7.1f} MB  "
                      f"output {result['bytes'] / 1e6:8.1f} MB")
                rounds[-1][mode] = result
        if rounds:
            summarize_rounds(rounds, args.records)
        for size in [int(s) for s in args.rss_records.split(",") if s]:
            topic = f"bench-rss-{size}"
            produce(bootstrap, topic, size)
            for mode in [m for m in args.rss_modes.split(",") if m]:
                output = work / f"{mode}-rss.out"
                result = run_child(mode, args.other_python, bootstrap=bootstrap, topic=topic, output=str(output),
                                   count=size)
                output.unlink()
                traced = "" if result.get("traced_mb") is None else \
                    f", peak of Python's own allocations {result['traced_mb']:.1f} MB (tracemalloc)"
                print(f"peak RSS {mode:<11} at {size:>9} records: {result['rss_mb']:7.1f} MB "
                      f"({result['records'] / result['seconds']:.0f} rec/s{traced})")
    finally:
        broker.stop()
        subprocess.run(["rm", "-rf", str(work)], check=False)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
