"""Batch ids: deterministic per window, always valid, never two raw values on one id."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from airflow_provider_logproc.azure_batch.errors import BatchSpecError
from airflow_provider_logproc.azure_batch.ids import BATCH_ID_MAX_LENGTH, derive_job_id, sanitize_batch_id

VALID_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
DAY = datetime(2026, 3, 1, tzinfo=UTC)


# -- ids ------------------------------------------------------------------------------------------


def test_job_id_is_deterministic_per_window() -> None:
    first = derive_job_id("logproc_daily", "analyze", DAY, DAY + timedelta(days=1))
    assert first == derive_job_id("logproc_daily", "analyze", DAY, DAY + timedelta(days=1))
    assert first == "logproc_daily-analyze-20260301-20260302"
    other_day = derive_job_id("logproc_daily", "analyze", DAY + timedelta(days=1), DAY + timedelta(days=2))
    assert other_day != first


def test_job_id_keeps_sub_day_windows_apart() -> None:
    hour = derive_job_id("d", "t", DAY + timedelta(hours=1), DAY + timedelta(hours=2))
    assert hour == "d-t-20260301T010000-20260301T020000"


def test_job_id_without_interval_uses_run_id_and_is_valid() -> None:
    job_id = derive_job_id("d", "t", None, None, run_id="manual__2026-03-01T00:00:00+00:00")
    assert VALID_ID.match(job_id)
    with pytest.raises(BatchSpecError, match="job_id"):
        derive_job_id("d", "t", None, None)


def test_long_ids_are_hash_shortened_without_collisions() -> None:
    long_dag = "a" * 80
    one = derive_job_id(long_dag, "task-one", DAY, DAY + timedelta(days=1))
    two = derive_job_id(long_dag, "task-two", DAY, DAY + timedelta(days=1))
    assert len(one) <= BATCH_ID_MAX_LENGTH and VALID_ID.match(one)
    assert one != two


@given(st.text(min_size=1, max_size=200))
def test_sanitized_ids_are_always_valid(raw: str) -> None:
    assert VALID_ID.match(sanitize_batch_id(raw))


def test_sanitize_changes_nothing_valid_and_separates_what_it_changes() -> None:
    assert sanitize_batch_id("already_valid-1") == "already_valid-1"
    assert sanitize_batch_id("a.b") != sanitize_batch_id("a/b")


# -- command lines --------------------------------------------------------------------------------


