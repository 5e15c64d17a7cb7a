"""A Batch job's outcome: task counts while waiting, then each task's state and exit code.

The result rules the operator and the sensor share: a job succeeded when every task completed with
success; a failed task is named with its exit code and failure info.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

# Task counts as the trigger reports them.
COUNT_NAMES = ("active", "running", "completed", "succeeded", "failed")



def counts_state(counts: Mapping[str, int]) -> str:
    """Return ``running`` until nothing is active or running; then ``failed`` if any task failed, else ``success``.

    A job whose counts are all zero has no tasks yet (a sensor may look before tasks are added):
    still ``running``.
    """
    if counts.get("active", 0) or counts.get("running", 0) or not counts.get("completed", 0):
        return "running"
    return "failed" if counts.get("failed", 0) else "success"


def task_counts(result: Any) -> dict[str, int]:
    """Return the counts of a ``taskcounts`` answer (sync or async client) as a plain mapping."""
    counts = result.task_counts
    return {name: int(getattr(counts, name, 0) or 0) for name in COUNT_NAMES}


def format_counts(counts: Mapping[str, int]) -> str:
    return ", ".join(f"{name} {counts.get(name, 0)}" for name in COUNT_NAMES)


@dataclass(frozen=True)
class TaskOutcome:
    id: str
    state: str
    exit_code: int | None
    result: str | None  # "success" / "failure" / None while not finished
    failure: str | None = None  # failureInfo code and message (e.g. a wall-clock kill)

    @property
    def failed(self) -> bool:
        if self.state != "completed":
            return False
        if self.result is not None:
            return self.result == "failure"
        return self.exit_code not in (0, None) or self.failure is not None

    def as_xcom(self) -> dict[str, Any]:
        return {"id": self.id, "state": self.state, "exit_code": self.exit_code}


@dataclass(frozen=True)
class JobOutcome:
    job_id: str
    tasks: list[TaskOutcome]

    @property
    def failed(self) -> list[TaskOutcome]:
        return [task for task in self.tasks if task.failed]

    @property
    def unfinished(self) -> list[TaskOutcome]:
        return [task for task in self.tasks if task.state != "completed"]

    @property
    def succeeded(self) -> bool:
        return bool(self.tasks) and not self.failed and not self.unfinished

    def failure_message(self, limit: int = 20) -> str:
        failed = self.failed
        shown = ", ".join(
            f"{task.id} (exit code {task.exit_code if task.exit_code is not None else 'none'}"
            + (f", {task.failure}" if task.failure else "")
            + ")"
            for task in failed[:limit]
        )
        more = f" and {len(failed) - limit} more" if len(failed) > limit else ""
        return f"Batch job {self.job_id}: {len(failed)} of {len(self.tasks)} task(s) failed: {shown}{more}"


def task_outcome(task: Mapping[str, Any]) -> TaskOutcome:
    """Reduce a task as the list API returns it (REST JSON) to what the result rules need."""
    info = task.get("executionInfo") or {}
    failure = info.get("failureInfo") or None
    failure_text = None
    if failure:
        failure_text = " ".join(str(part) for part in (failure.get("code"), failure.get("message")) if part)
    exit_code = info.get("exitCode")
    return TaskOutcome(
        id=str(task.get("id")),
        state=str(task.get("state") or "unknown"),
        exit_code=int(exit_code) if exit_code is not None else None,
        result=info.get("result"),
        failure=failure_text or None,
    )


def evaluate_tasks(job_id: str, tasks: Iterable[Mapping[str, Any]]) -> JobOutcome:
    return JobOutcome(job_id, sorted((task_outcome(task) for task in tasks), key=lambda outcome: outcome.id))


def tail_text(data: bytes, max_bytes: int = 2048) -> str:
    """Return the last ``max_bytes`` of a log as text, starting at a line boundary when one is near."""
    tail = data[-max_bytes:]
    if len(data) > max_bytes and b"\n" in tail[:200]:
        tail = tail[tail.index(b"\n") + 1 :]
    return tail.decode("utf-8", errors="replace")
