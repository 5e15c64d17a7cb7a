"""Task counts and the result rules: failed tasks named with exit codes; log tails."""

from __future__ import annotations

import pytest
from azure.batch import models as batch_models

from airflow_provider_logproc.azure_batch.outcome import counts_state, evaluate_tasks, tail_text


@pytest.mark.parametrize(
    ("counts", "state"),
    [
        ({"active": 0, "running": 0, "completed": 0, "succeeded": 0, "failed": 0}, "running"),
        ({"active": 3, "running": 0, "completed": 2, "succeeded": 2, "failed": 0}, "running"),
        ({"active": 0, "running": 1, "completed": 4, "succeeded": 4, "failed": 0}, "running"),
        ({"active": 0, "running": 0, "completed": 5, "succeeded": 5, "failed": 0}, "success"),
        ({"active": 0, "running": 0, "completed": 5, "succeeded": 4, "failed": 1}, "failed"),
    ],
)
def test_counts_state(counts: dict[str, int], state: str) -> None:
    assert counts_state(counts) == state


def test_result_rules_name_failed_tasks_and_exit_codes() -> None:
    outcome = evaluate_tasks(
        "job-1",
        [
            {"id": "b", "state": "completed", "executionInfo": {"exitCode": 0, "result": "success"}},
            {
                "id": "a",
                "state": "completed",
                "executionInfo": {
                    "exitCode": 3,
                    "result": "failure",
                    "failureInfo": {"code": "FailureExitCode", "message": "exit 3"},
                },
            },
            {
                "id": "c",
                "state": "completed",
                "executionInfo": {"result": "failure", "failureInfo": {"code": "TaskEnded", "message": "wall clock"}},
            },
        ],
    )
    assert [task.id for task in outcome.tasks] == ["a", "b", "c"]
    assert [task.id for task in outcome.failed] == ["a", "c"]
    message = outcome.failure_message()
    assert "2 of 3 task(s) failed" in message
    assert "a (exit code 3, FailureExitCode exit 3)" in message
    assert "c (exit code none, TaskEnded wall clock)" in message
    assert outcome.tasks[1].as_xcom() == {"id": "b", "state": "completed", "exit_code": 0}


def test_result_rules_count_unfinished_tasks_and_read_sdk_models() -> None:
    tasks = [
        batch_models.BatchTask({"id": "x", "state": "active"}),
        batch_models.BatchTask(
            {"id": "y", "state": "completed", "executionInfo": {"exitCode": 0, "result": "success"}}
        ),
    ]
    outcome = evaluate_tasks("job", tasks)
    assert [task.id for task in outcome.unfinished] == ["x"]
    assert not outcome.failed and not outcome.succeeded


def test_tail_starts_at_a_line() -> None:
    data = b"".join(f"line {index}\n".encode() for index in range(1000))
    tail = tail_text(data, 100)
    assert tail.startswith("line ") and tail.endswith("line 999\n") and len(tail) <= 100
