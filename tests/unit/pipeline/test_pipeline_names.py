from __future__ import annotations

import datetime as dt

import pytest

from airflow_provider_logproc.archive import window_retained
from airflow_provider_logproc.pipeline import analyzer_command, window_path

UTC = dt.UTC


def test_a_whole_utc_day_is_named_by_its_date():
    assert window_path(dt.datetime(2026, 3, 1, tzinfo=UTC), dt.datetime(2026, 3, 2, tzinfo=UTC)) == "2026/03/01"


def test_other_windows_carry_their_times_so_they_never_collide():
    hourly = window_path(dt.datetime(2026, 3, 1, 5, tzinfo=UTC), dt.datetime(2026, 3, 1, 6, tzinfo=UTC))
    assert hourly == "2026/03/01/050000-060000"
    # A day in another zone is not a UTC day: its UTC times are spelled out.
    plus2 = dt.timezone(dt.timedelta(hours=2))
    assert window_path(dt.datetime(2026, 3, 1, tzinfo=plus2), dt.datetime(2026, 3, 2, tzinfo=plus2)) == (
        "2026/02/28/220000-220000")


@pytest.mark.parametrize(
    ("earliest", "held"),
    [
        ({0: None, 1: None}, True),  # nothing deleted anywhere
        ({0: None, 1: 1_000}, True),  # earliest retained record before the window
        ({0: None, 1: 2_000_000_000_000}, False),  # retention removed the window's start
        ({0: -1}, False),  # everything removed from a partition
    ],
)
def test_window_retained(earliest, held):
    assert window_retained(earliest, dt.datetime(2026, 3, 1, tzinfo=UTC)) is held


def test_analyzer_command_is_split_without_a_shell(monkeypatch):
    monkeypatch.setenv("LOGPROC_ANALYZER_COMMAND", "/opt/py/bin/python -m 'my analyzer'")
    assert analyzer_command() == ["/opt/py/bin/python", "-m", "my analyzer"]


def test_batch_job_id_depends_on_topic_window_and_content():
    from airflow_provider_logproc.pipeline import batch_job_id

    start, end = dt.datetime(2026, 3, 1, tzinfo=UTC), dt.datetime(2026, 3, 2, tzinfo=UTC)
    base = batch_job_id("access-logs", start, end, "scheduled__x", "0123456789abcdef")
    assert base == "logproc-access-logs-20260301-01234567"
    assert batch_job_id("access-logs", start, end, "manual__y", "0123456789abcdef") == base  # same work, same job
    assert batch_job_id("other.topic", start, end, "r", "0123456789abcdef") != base
    assert batch_job_id("access-logs", start, end, "r", "fedcba9876543210") != base
    event = batch_job_id("t", None, None, "asset_triggered__2026-03-01T10:00:00+00:00", "ab")
    assert len(event) <= 64
    assert all(c.isalnum() or c in "-_" for c in event)


def test_previous_window_prefixes_step_back_by_the_window_length() -> None:
    import datetime as dt

    from airflow_provider_logproc.pipeline import previous_window_prefixes

    start = dt.datetime(2026, 3, 1, tzinfo=dt.UTC)
    assert previous_window_prefixes("logs", start, start + dt.timedelta(days=1), 3) == [
        "logs/2026/02/28", "logs/2026/02/27", "logs/2026/02/26"]
    hour = dt.datetime(2026, 3, 1, 1, tzinfo=dt.UTC)
    assert previous_window_prefixes("logs", hour, hour + dt.timedelta(hours=1), 2) == [
        "logs/2026/03/01/000000-010000", "logs/2026/02/28/230000-000000"]


def test_a_local_staging_folder_with_a_distributed_executor_is_warned_about() -> None:
    from airflow_provider_logproc.pipeline import unshared_staging_warning

    message = unshared_staging_warning("file:///tmp/logproc-staging", "CeleryExecutor")
    assert message is not None and "tasks run with CeleryExecutor" in message and "abfs://wasb_default@" in message
    assert "KubernetesExecutor" in (unshared_staging_warning(
        "/srv/staging", "LocalExecutor,airflow.providers.cncf.kubernetes.executors.KubernetesExecutor") or "")
    assert unshared_staging_warning("file:///tmp/logproc-staging", "LocalExecutor") is None
    assert unshared_staging_warning("abfs://wasb_default@staging/logproc", "CeleryExecutor") is None
