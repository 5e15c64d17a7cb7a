"""Adding tasks in collections: chunks of at most 100, and the per-task statuses of a response."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeVar

MAX_TASKS_PER_COLLECTION = 100
T = TypeVar("T")


def chunked(items: Sequence[T], size: int = MAX_TASKS_PER_COLLECTION) -> Iterator[Sequence[T]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]



@dataclass
class CollectionOutcome:
    added: list[str] = field(default_factory=list)
    already_there: list[str] = field(default_factory=list)
    retry: list[str] = field(default_factory=list)
    rejected: list[tuple[str, str, str]] = field(default_factory=list)  # (task id, code, message)


def classify_add_results(results: Iterable[Mapping[str, Any]]) -> CollectionOutcome:
    """Sort the per-task statuses of one addtaskcollection response.

    ``TaskExists`` counts as added (a retried operator re-adds what an earlier attempt added);
    server errors are retried; other client errors reject the task.
    """
    outcome = CollectionOutcome()
    for result in results:
        task_id = str(result.get("taskId"))
        status = str(result.get("status", "")).lower()
        error = result.get("error") or {}
        code = str(error.get("code") or "")
        message = error.get("message")
        if isinstance(message, Mapping):
            message = message.get("value")
        if status == "success":
            outcome.added.append(task_id)
        elif code == "TaskExists":
            outcome.already_there.append(task_id)
        elif status == "servererror":
            outcome.retry.append(task_id)
        else:
            outcome.rejected.append((task_id, code or status or "unknown", str(message or "")))
    return outcome
