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
