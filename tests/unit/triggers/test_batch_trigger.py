"""AzureBatchJobTrigger without a server: serialization and which errors are worth retrying."""

from __future__ import annotations

import importlib
import time

import pytest
from azure.core.exceptions import (
    ClientAuthenticationError,
    HttpResponseError,
    ResourceNotFoundError,
    ServiceRequestError,
    ServiceResponseError,
)

from airflow_provider_logproc.triggers.batch import AzureBatchJobTrigger, is_transient


def test_serialize_round_trip_keeps_the_absolute_deadline() -> None:
    trigger = AzureBatchJobTrigger(
        "job-1", "batch_conn", deadline=1_900_000_000.5, poll_interval=2, transient_error_budget=60
    )
    classpath, kwargs = trigger.serialize()
    module_name, class_name = classpath.rsplit(".", 1)
    rebuilt = getattr(importlib.import_module(module_name), class_name)(**kwargs)
    assert rebuilt.serialize() == (classpath, kwargs)
    assert kwargs == {
        "job_id": "job-1",
        "azure_batch_conn_id": "batch_conn",
        "deadline": 1_900_000_000.5,
        "poll_interval": 2.0,
        "transient_error_budget": 60.0,
        "max_backoff": 30.0,
        "stall_check_every": 20,
    }


class _Response:
    def __init__(self, status: int) -> None:
        self.status_code = status
        self.reason = "x"
        self.headers: dict[str, str] = {}

    def text(self) -> str:
        return ""


def _http(status: int) -> HttpResponseError:
    error = HttpResponseError(message="x", response=_Response(status))  # type: ignore[arg-type]
    error.status_code = status
    return error


@pytest.mark.parametrize("status", [429, 500, 502, 503, 504, 408])
def test_throttling_and_server_errors_are_transient(status: int) -> None:
    assert is_transient(_http(status))


@pytest.mark.parametrize("status", [400, 403, 409])
def test_client_errors_are_not(status: int) -> None:
    assert not is_transient(_http(status))


def test_connection_errors_are_transient_auth_and_missing_job_are_not() -> None:
    assert is_transient(ServiceRequestError("connection refused"))
    assert is_transient(ServiceResponseError("connection reset"))
    assert is_transient(ConnectionResetError())
    assert is_transient(TimeoutError())
    assert not is_transient(ClientAuthenticationError("403"))
    assert not is_transient(ResourceNotFoundError("JobNotFound"))
    assert not is_transient(ValueError("bug"))


def test_polls_start_a_second_apart_and_slow_down_to_the_poll_interval() -> None:
    trigger = AzureBatchJobTrigger("job-1", "batch_conn", deadline=time.time() + 3600, poll_interval=30)
    assert [round(trigger._next_poll_delay(waited)) for waited in (0, 5, 20, 100, 1000)] == [1, 1, 2, 10, 30]
    short = AzureBatchJobTrigger("job-1", "batch_conn", deadline=time.time() + 3600, poll_interval=0.2)
    assert short._next_poll_delay(0) == 0.2  # never more than asked for
    ending = AzureBatchJobTrigger("job-1", "batch_conn", deadline=time.time() + 0.5, poll_interval=30)
    assert ending._next_poll_delay(600) <= 0.5  # nor past the deadline
