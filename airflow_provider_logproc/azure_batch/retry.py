"""Which Batch errors are worth waiting for, how long to wait, and one retry loop for the sync calls.

The SDK does not retry a POST whose answer was lost (creating a job, adding a task collection), and
failing the Airflow task would wait a whole retry delay for a burst of throttling that lasts seconds:
the hook retries those calls here. The trigger has its own budgeted loop (async, deadline-bound) on
the same rules: :func:`is_transient`, :func:`backoff_delay`, :func:`retry_after`.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections.abc import Callable
from typing import Any, TypeVar

TRANSIENT_STATUS_CODES = frozenset({408, 429, 500, 502, 503, 504})
MAX_ATTEMPTS = 5
T = TypeVar("T")


def is_transient(error: BaseException) -> bool:
    """Throttling, server errors and broken connections pass; anything else will not get better by waiting."""
    from azure.core.exceptions import (
        ClientAuthenticationError,
        HttpResponseError,
        ResourceNotFoundError,
        ServiceRequestError,
        ServiceResponseError,
    )

    if isinstance(error, ClientAuthenticationError | ResourceNotFoundError):
        return False
    if isinstance(error, HttpResponseError):
        status = error.status_code if error.status_code is not None else getattr(error.response, "status_code", None)
        if status is None:
            return isinstance(error, ServiceRequestError | ServiceResponseError)
        return status in TRANSIENT_STATUS_CODES
    return isinstance(
        error, ServiceRequestError | ServiceResponseError | ConnectionError | asyncio.TimeoutError | OSError
    )


def backoff_delay(attempt: int, *, initial: float = 1.0, factor: float = 2.0, maximum: float = 30.0) -> float:
    """Delay before retry number ``attempt`` (1-based) of a transient error: 1, 2, 4, … capped at ``maximum``."""
    if attempt < 1:
        raise ValueError("attempt counts from 1")
    return min(maximum, initial * factor ** (attempt - 1))


def retry_after_seconds(header: str | None) -> float | None:
    """Return the server's ``Retry-After`` in seconds (only the delta-seconds form, which Batch uses)."""
    if not header:
        return None
    try:
        value = float(header)
    except ValueError:
        return None
    return value if value >= 0 and math.isfinite(value) else None


def retry_after(error: BaseException) -> float | None:
    """Return the ``Retry-After`` of the response an error carries, if any."""
    response = getattr(error, "response", None)
    headers = getattr(response, "headers", None)
    return retry_after_seconds(headers.get("Retry-After")) if headers else None


def retry_delay(attempt: int, error: BaseException | None = None, *, maximum: float = 10.0) -> float:
    """Wait before retry ``attempt`` of a sync call: 2, 4, 8, 10 s, or longer if the service asks (≤ 30 s)."""
    asked = retry_after(error) if error is not None else None
    return max(backoff_delay(attempt, initial=2.0, maximum=maximum), min(asked or 0.0, 30.0))


def call_with_retries(
    call: Callable[[], T],
    *,
    what: str,
    log: Any,
    attempts: int = MAX_ATTEMPTS,
    look_before_retry: Callable[[], T | None] | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> T:
    """``call()``, retried on transient errors (:func:`is_transient`) up to ``attempts`` times.

    ``look_before_retry`` runs after a transient error and before the retry: where a lost answer may
    hide a success, it returns the result to use instead of calling again (or None to call again).
    Non-transient errors, and the last transient one, are raised as they are.
    """
    for attempt in range(1, attempts + 1):
        try:
            return call()
        except Exception as error:
            if not is_transient(error) or attempt == attempts:
                raise
            log.warning("%s failed (%s): trying again (attempt %d of %d)", what, type(error).__name__, attempt + 1,
                        attempts)
            if look_before_retry is not None:
                found = look_before_retry()
                if found is not None:
                    return found
            sleep(retry_delay(attempt, error))
    raise AssertionError("unreachable")  # the loop returns or raises
