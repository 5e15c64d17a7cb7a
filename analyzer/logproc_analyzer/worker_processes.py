"""Worker processes that take a job as JSON on stdin and answer with a JSON report on stdout.

The consume step reads one partition per worker (``consume.parallel``) and Ion → JSON converts one
slice per worker (``consume.ion_split``). Workers are plain subprocesses running a module
(``python -m``), so they do not depend on how the parent was started (Airflow task runner, pytest,
...); nothing crosses the pipes but the job, file names and a small report.

No Airflow import here: the analyzer, which runs on Batch nodes, counts its CPUs with this module too.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from typing import Any

STDERR_TAIL_CHARS = 2000


def usable_cpus() -> int:
    """Return the CPUs this process may run on (its affinity, which containers and taskset narrow)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - not on Linux
        return max(1, os.cpu_count() or 1)


class WorkerWithoutReport(RuntimeError):
    """A worker process ended without writing its report (killed, or crashed before reporting)."""

    def __init__(self, returncode: int | None, stderr_tail: str) -> None:
        super().__init__(f"the worker process exited with code {returncode} without a result; "
                         f"its stderr ends with: {stderr_tail}")


def start_worker(module: str, job: bytes, stderr_path: str) -> subprocess.Popen[bytes]:
    """Run ``python -m module`` with ``job`` on its stdin (closed at once); stderr goes to a file."""
    # A file, not a pipe: librdkafka may log a lot, and a pipe nobody reads until the end would fill
    # and block the worker.
    with open(stderr_path, "wb") as stderr:
        process = subprocess.Popen([sys.executable, "-m", module], stdin=subprocess.PIPE,
                                   stdout=subprocess.PIPE, stderr=stderr)
    assert process.stdin is not None
    process.stdin.write(job)
    process.stdin.close()
    return process


def read_report(process: subprocess.Popen[bytes], stderr_path: str) -> dict[str, Any]:
    """Read the worker's JSON report, once it has exited; WorkerWithoutReport (with its stderr tail) if none."""
    assert process.stdout is not None
    stdout = process.stdout.read()
    process.stdout.close()
    process.wait()
    try:
        report = json.loads(stdout)
    except ValueError:
        with open(stderr_path, "rb") as stderr:
            tail = stderr.read()[-STDERR_TAIL_CHARS:].decode(errors="replace")
        raise WorkerWithoutReport(process.returncode, tail) from None
    return report
