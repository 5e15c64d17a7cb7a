"""Task collections: chunks of at most 100 and per-task add statuses."""

from __future__ import annotations

from airflow_provider_logproc.azure_batch.task_collection import chunked, classify_add_results


def test_chunks_of_at_most_100() -> None:
    sizes = [len(chunk) for chunk in chunked(list(range(250)))]
    assert sizes == [100, 100, 50]


def test_add_results_task_exists_is_fine_server_errors_retry_client_errors_reject() -> None:
    outcome = classify_add_results(
        [
            {"taskId": "a", "status": "success"},
            {"taskId": "b", "status": "clientError", "error": {"code": "TaskExists", "message": {"value": "exists"}}},
            {"taskId": "c", "status": "serverError", "error": {"code": "ServerBusy"}},
            {
                "taskId": "d",
                "status": "clientError",
                "error": {"code": "InvalidPropertyValue", "message": {"value": "bad"}},
            },
        ]
    )
    assert outcome.added == ["a"]
    assert outcome.already_there == ["b"]
    assert outcome.retry == ["c"]
    assert outcome.rejected == [("d", "InvalidPropertyValue", "bad")]


# -- waiting and results ----------------------------------------------------------------------------


