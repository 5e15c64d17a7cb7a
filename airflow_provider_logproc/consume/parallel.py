"""Reading a window's partitions in parallel worker processes.

Encoding records (JSON validation, Ion envelopes) costs more CPU per record than fetching them,
and it holds the GIL, so one process cannot keep up with the broker. Partitions are independent:
each worker process reads one partition (assign, exactly as the sequential loop does) into a
local spool file, and the parent appends the spools in (topic, partition) order. The output is
byte-identical to the sequential read's; nothing is shipped between processes but file names.

Workers are plain subprocesses running this module (``python -m``), given their job as JSON on
stdin, so they do not depend on how the parent was started (Airflow task runner, pytest, ...).
The librdkafka config travels on the pipe, never through argv, the environment or logs.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from airflow_provider_logproc.consume.dead_letters import DeadLetters
from airflow_provider_logproc.consume.encoders import make_encoder
from airflow_provider_logproc.consume.loop import (
    Log,
    ReadLimits,
    StalledReadError,
    read_window,
    warn_if_emptied_by_retention,
)
from airflow_provider_logproc.consume.partition_stats import PartitionStats
from airflow_provider_logproc.kafka.window import (
    PartitionPlan,
    RetentionGapError,
    TimeWindow,
    WindowError,
)
from logproc_analyzer.worker_processes import WorkerWithoutReport, read_report, start_worker

log = logging.getLogger(__name__)

WORKER_MODULE = "airflow_provider_logproc.consume.parallel"  # this module, run by its workers

# Below this many offsets to read, starting processes costs more than it saves.
MIN_RECORDS_FOR_WORKERS = 100_000
_ERRORS: dict[str, type[Exception]] = {
    "RetentionGapError": RetentionGapError,
    "StalledReadError": StalledReadError,
    "WindowError": WindowError,
}


class PartitionReadError(RuntimeError):
    """A worker process failed to read its partition."""


def config_is_portable(config: dict[str, Any]) -> bool:
    """Whether the consumer config can be handed to another process (no callbacks, plain values)."""
    return all(isinstance(value, str | int | float | bool) for value in config.values())


def choose_workers(requested: int | None, plans: Sequence[PartitionPlan], config: dict[str, Any]) -> int:
    """How many worker processes to use; 1 means read in this process."""
    busy = [plan for plan in plans if not plan.is_empty]
    if requested is not None:
        if requested < 1:
            raise ValueError(f"workers must be at least 1, got {requested}")
        wanted = min(requested, len(busy))
    else:
        to_read = sum(plan.high - plan.start for plan in busy)
        # A worker keeps about two CPUs busy: its Python loop and librdkafka's fetch and decompress
        # threads. Measured on 2 cores (bench/bench_consume.py, medians of 5 alternating rounds at 1M
        # records), one process beats one per partition whether the broker shares the CPUs (0.68x vs
        # 0.66x of the bare loop) or is pinned apart (0.74x vs 0.51x). So: one process up to 3 usable
        # CPUs, then one worker per two CPUs, at most one per partition. (Usable: this process's CPU
        # affinity, which containers and taskset narrow; os.cpu_count() ignores it.)
        usable = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
        wanted = min(usable // 2, len(busy)) if to_read >= MIN_RECORDS_FOR_WORKERS else 1
    if wanted > 1 and not config_is_portable(config):
        log.info("the Kafka config holds callbacks: reading partitions in this process")
        return 1
    return max(wanted, 1)


@dataclass
class PartitionJob:
    config: dict[str, Any]
    plan: PartitionPlan
    window: TimeWindow
    ion_encoding: str
    key_deserializer: str
    value_deserializer: str
    on_retention_gap: str
    limits: ReadLimits
    ion_path: str
    dead_letter_path: str

    def to_json(self) -> bytes:
        data = asdict(self)
        return json.dumps(data).encode()

    @classmethod
    def from_json(cls, raw: bytes) -> PartitionJob:
        data = json.loads(raw)
        data["plan"] = PartitionPlan(**data["plan"])
        data["window"] = TimeWindow(**data["window"])
        data["limits"] = ReadLimits(**data["limits"])
        return cls(**data)


@dataclass
class PartitionOutcome:
    stats: dict[str, Any]
    dead_letter_count: int
    dead_letter_examples: list[str]
    warnings: list[str] = field(default_factory=list)
    seconds: float = 0.0


class _RecordingLog:
    """Collects a worker's warnings so the parent can put them in the task log."""

    def __init__(self) -> None:
        self.warnings: list[str] = []

    def info(self, msg: Any, /, *args: Any, **kwargs: Any) -> None:
        return None

    def warning(self, msg: Any, /, *args: Any, **kwargs: Any) -> None:
        self.warnings.append(str(msg) % args if args else str(msg))


def run_job(job: PartitionJob) -> PartitionOutcome:
    """Read one partition into the job's spool files (runs inside the worker process)."""
    from confluent_kafka import Consumer

    started = time.monotonic()
    recorder = _RecordingLog()
    encoder = make_encoder(job.ion_encoding, job.key_deserializer, job.value_deserializer)
    dead_letters = DeadLetters(job.dead_letter_path)
    consumer = Consumer(job.config)
    try:
        with open(job.ion_path, "wb") as out:
            [stats] = read_window(consumer, [job.plan], job.window, encoder, out.write, dead_letters,
                                  on_retention_gap=job.on_retention_gap, limits=job.limits,
                                  logger=recorder, write_preamble=False)
        dead_letters.flush()
    finally:
        consumer.close()
        dead_letters.close()
    return PartitionOutcome(stats.as_dict(), dead_letters.count, dead_letters.examples, recorder.warnings,
                            time.monotonic() - started)


def worker_main() -> int:
    """Entry point of a worker process: job JSON on stdin, outcome JSON on stdout."""
    job = PartitionJob.from_json(sys.stdin.buffer.read())
    try:
        outcome = run_job(job)
    except Exception as error:  # reported to the parent, which raises it in the task
        sys.stdout.write(json.dumps({"error_type": type(error).__name__, "message": str(error)}))
        return 1
    sys.stdout.write(json.dumps({"outcome": asdict(outcome)}))
    return 0


def read_window_in_workers(
    config: dict[str, Any],
    plans: Sequence[PartitionPlan],
    window: TimeWindow,
    *,
    workers: int,
    ion_encoding: str,
    key_deserializer: str,
    value_deserializer: str,
    on_retention_gap: str,
    limits: ReadLimits,
    write: Callable[[bytes], Any],
    dead_letters: DeadLetters,
    logger: Log = log,
    progress_interval_s: float = 10.0,
) -> list[PartitionStats]:
    """Read every planned partition in up to ``workers`` processes; write the spools in order."""
    write(make_encoder(ion_encoding, key_deserializer, value_deserializer).preamble())
    results: dict[tuple[str, int], PartitionStats] = {}
    for plan in plans:
        warn_if_emptied_by_retention(plan, logger)
    with tempfile.TemporaryDirectory(prefix="logproc-partitions-") as spool_dir:
        jobs = [
            PartitionJob(config, plan, window, ion_encoding, key_deserializer, value_deserializer, on_retention_gap,
                         limits, os.path.join(spool_dir, f"{index}.ion"), os.path.join(spool_dir, f"{index}.dead"))
            for index, plan in enumerate(plans) if not plan.is_empty
        ]
        outcomes = _run_jobs(jobs, workers, logger, progress_interval_s)
        for job in jobs:  # (topic, partition) order, as planned
            outcome = outcomes[(job.plan.topic, job.plan.partition)]
            with open(job.ion_path, "rb") as spool:
                while chunk := spool.read(1 << 20):
                    write(chunk)
            if outcome.dead_letter_count:
                dead_letters.absorb(job.dead_letter_path, outcome.dead_letter_count, outcome.dead_letter_examples)
            for warning in outcome.warnings:
                logger.warning("%s", warning)
            stats = outcome.stats
            results[(job.plan.topic, job.plan.partition)] = PartitionStats(
                stats["topic"], stats["partition"], stats["count"], stats["first_offset"], stats["last_offset"],
                stats["dead_letter_count"], stats["outside_window_count"])
    return [results.get((plan.topic, plan.partition)) or PartitionStats(plan.topic, plan.partition)
            for plan in plans]


def _run_jobs(jobs: list[PartitionJob], workers: int, logger: Log,
              progress_interval_s: float) -> dict[tuple[str, int], PartitionOutcome]:
    pending = list(jobs)
    running: dict[subprocess.Popen[bytes], PartitionJob] = {}
    outcomes: dict[tuple[str, int], PartitionOutcome] = {}
    started = time.monotonic()
    next_report = started + progress_interval_s
    try:
        while pending or running:
            while pending and len(running) < workers:
                job = pending.pop(0)
                running[start_worker(WORKER_MODULE, job.to_json(), job.ion_path + ".stderr")] = job
            finished = [process for process in running if process.poll() is not None]
            if not finished:
                time.sleep(0.02)
                if time.monotonic() >= next_report:
                    next_report = time.monotonic() + progress_interval_s
                    logger.info("reading partitions: %d done, %d running, %d waiting (%.0f s)", len(outcomes),
                                len(running), len(pending), time.monotonic() - started)
                continue
            for process in finished:
                job = running.pop(process)
                outcome = _collect(process, job)
                outcomes[(job.plan.topic, job.plan.partition)] = outcome
                count = outcome.stats["count"]
                logger.info("%s[%d]: %d records in %.1f s (%.0f records/s)", job.plan.topic, job.plan.partition,
                            count, outcome.seconds, count / outcome.seconds if outcome.seconds else 0)
    finally:
        for process in running:  # a failure elsewhere: stop the rest
            process.kill()
            process.wait()
    return outcomes


def _collect(process: subprocess.Popen[bytes], job: PartitionJob) -> PartitionOutcome:
    where = f"{job.plan.topic}[{job.plan.partition}]"
    try:
        report = read_report(process, job.ion_path + ".stderr")
    except WorkerWithoutReport as error:
        raise PartitionReadError(f"{where}: {error}") from None
    if "error_type" in report:
        error_class = _ERRORS.get(report["error_type"], PartitionReadError)
        raise error_class(report["message"] if error_class is not PartitionReadError
                          else f"{where}: {report['error_type']}: {report['message']}")
    return PartitionOutcome(**report["outcome"])


if __name__ == "__main__":
    raise SystemExit(worker_main())
