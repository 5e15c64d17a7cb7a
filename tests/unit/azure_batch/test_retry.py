"""Backoff and Retry-After for transient Batch errors."""

from __future__ import annotations

import logging
from types import SimpleNamespace

import pytest
from azure.core.exceptions import HttpResponseError, ServiceRequestError, ServiceResponseError

from airflow_provider_logproc.azure_batch.retry import (
    backoff_delay,
    call_with_retries,
    retry_after_seconds,
    retry_delay,
)


def test_backoff_doubles_up_to_a_cap() -> None:
    assert [backoff_delay(attempt) for attempt in range(1, 8)] == [1, 2, 4, 8, 16, 30, 30]
    with pytest.raises(ValueError, match="from 1"):
        backoff_delay(0)


def test_retry_after() -> None:
    assert retry_after_seconds("3") == 3.0
    assert retry_after_seconds(None) is None
    assert retry_after_seconds("Wed, 21 Oct 2015 07:28:00 GMT") is None




class Calls:
    """A call that fails with the given errors, one per call, then returns "done"."""

    def __init__(self, *errors: BaseException) -> None:
        self.errors = list(errors)
        self.count = 0

    def __call__(self) -> str:
        self.count += 1
        if self.errors:
            raise self.errors.pop(0)
        return "done"


def http_error(status: int, retry_after: str | None = None) -> HttpResponseError:
    response = SimpleNamespace(status_code=status, headers={"Retry-After": retry_after} if retry_after else {},
                               reason="", text=lambda: "")
    error = HttpResponseError(message=f"HTTP {status}", response=response)  # type: ignore[arg-type]
    error.status_code = status
    return error


def test_transient_errors_are_retried_with_backoff_or_the_servers_retry_after() -> None:
    sleeps: list[float] = []
    call = Calls(http_error(503), ServiceRequestError("connection reset"), http_error(429, "7"))
    assert call_with_retries(call, what="adding tasks", log=logging.getLogger("test"), sleep=sleeps.append) == "done"
    assert call.count == 4
    assert sleeps == [2.0, 4.0, 8.0]  # 429's Retry-After of 7 s is shorter than the backoff of 8 s
    assert retry_delay(1, http_error(429, "25")) == 25.0  # a longer Retry-After wins
    assert retry_delay(1, http_error(429, "3600")) == 30.0  # but a retry never waits more than 30 s


def test_other_errors_and_the_last_transient_one_are_raised_as_they_are() -> None:
    refused = Calls(http_error(403))
    with pytest.raises(HttpResponseError, match="HTTP 403"):
        call_with_retries(refused, what="x", log=logging.getLogger("test"), sleep=lambda _: None)
    assert refused.count == 1
    busy = Calls(*[http_error(500)] * 5)
    with pytest.raises(HttpResponseError, match="HTTP 500"):
        call_with_retries(busy, what="x", log=logging.getLogger("test"), attempts=3, sleep=lambda _: None)
    assert busy.count == 3


def test_a_lost_answer_is_looked_for_before_calling_again() -> None:
    call = Calls(ServiceResponseError("answer lost"))
    found = call_with_retries(call, what="creating the job", log=logging.getLogger("test"), sleep=lambda _: None,
                              look_before_retry=lambda: "created by the lost call")
    assert (found, call.count) == ("created by the lost call", 1)
