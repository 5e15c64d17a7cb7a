"""Batch job and task ids: valid, deterministic, and never two raw values on one id."""

from __future__ import annotations

import hashlib
import re
from datetime import UTC, datetime

from airflow_provider_logproc.azure_batch.errors import BatchSpecError

BATCH_ID_MAX_LENGTH = 64
_INVALID_ID_CHARS = re.compile(r"[^A-Za-z0-9_-]+")


def sanitize_batch_id(raw: str, max_length: int = BATCH_ID_MAX_LENGTH) -> str:
    """Make ``raw`` a valid Batch id: letters, digits, hyphen, underscore, at most ``max_length``.

    Other characters become ``-``. An id that had to be changed or shortened gets a hash of the raw
    value appended, so two different raw values never collapse onto one id.
    """
    cleaned = _INVALID_ID_CHARS.sub("-", raw).strip("-")
    if cleaned == raw and len(cleaned) <= max_length and cleaned:
        return cleaned
    digest = hashlib.sha256(raw.encode()).hexdigest()[:10]
    head = cleaned[: max_length - len(digest) - 1].rstrip("-")
    return f"{head}-{digest}" if head else digest


def derive_job_id(
    dag_id: str,
    task_id: str,
    data_interval_start: datetime | None,
    data_interval_end: datetime | None,
    *,
    run_id: str | None = None,
) -> str:
    """Return the job id of one (dag, task, data interval): the same window always gives the same id.

    Without a data interval (e.g. a manual run of an asset-triggered DAG) the run id stands in.
    """
    if data_interval_start is not None and data_interval_end is not None:
        window = f"{_compact_utc(data_interval_start)}-{_compact_utc(data_interval_end)}"
    elif run_id:
        window = run_id
    else:
        raise BatchSpecError("job_id: no data interval and no run id to derive a job id from; pass job_id")
    return sanitize_batch_id(f"{dag_id}-{task_id}-{window}")


def _compact_utc(moment: datetime) -> str:
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    moment = moment.astimezone(UTC)
    if moment.hour == moment.minute == moment.second == 0:
        return moment.strftime("%Y%m%d")
    return moment.strftime("%Y%m%dT%H%M%S")


def validate_batch_id(value: str, what: str) -> str:
    if not value or len(value) > BATCH_ID_MAX_LENGTH or _INVALID_ID_CHARS.search(value):
        raise BatchSpecError(
            f"{what}={value!r} is not a valid Batch id (letters, digits, '-' and '_', 1 to "
            f"{BATCH_ID_MAX_LENGTH} characters)"
        )
    return value
