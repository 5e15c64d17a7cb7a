"""Window planning: offsets, stop points and the retention check (pure logic)."""

from __future__ import annotations

import datetime as dt

import pendulum
import pytest

from airflow_provider_logproc.kafka.window import (
    TimeWindow,
    WindowError,
    plan_partition,
    retention_gap_message,
    to_epoch_ms,
)

SINCE = dt.datetime(2024, 3, 2, tzinfo=dt.UTC)
UNTIL = dt.datetime(2024, 3, 3, tzinfo=dt.UTC)
WINDOW = TimeWindow.from_datetimes(SINCE, UNTIL, dt.timedelta(minutes=5))


def test_epoch_ms_is_exact_and_accepts_pendulum():
    assert to_epoch_ms(dt.datetime(1970, 1, 1, 0, 0, 1, 999_999, tzinfo=dt.UTC)) == 1999
    assert to_epoch_ms(pendulum.datetime(2024, 3, 2, tz="UTC")) == to_epoch_ms(SINCE) == 1_709_337_600_000
    assert to_epoch_ms(dt.datetime(2024, 3, 2, 1, tzinfo=dt.timezone(dt.timedelta(hours=1)))) == 1_709_337_600_000
    with pytest.raises(WindowError, match="naive"):
        to_epoch_ms(dt.datetime(2024, 3, 2))


def test_window_bounds_and_lateness():
    assert WINDOW.since_ms == 1_709_337_600_000
    assert WINDOW.until_ms == WINDOW.since_ms + 86_400_000
    assert WINDOW.stop_ms == WINDOW.until_ms + 300_000
    assert WINDOW.contains(WINDOW.since_ms) and not WINDOW.contains(WINDOW.until_ms)
    assert TimeWindow.from_datetimes(SINCE, SINCE, dt.timedelta(0)).since_ms == WINDOW.since_ms  # empty is fine
    with pytest.raises(WindowError, match="ends before it starts"):
        TimeWindow.from_datetimes(UNTIL, SINCE, dt.timedelta(0))
    with pytest.raises(WindowError, match="negative"):
        TimeWindow.from_datetimes(SINCE, UNTIL, dt.timedelta(seconds=-1))


@pytest.mark.parametrize(
    ("low", "high", "answer", "start", "empty"),
    [
        (0, 100, 40, 40, False),  # usual: start where the window begins
        (0, 100, -1, 100, True),  # nothing at or after since: nothing to read
        (0, 0, -1, 0, True),  # idle partition
        (50, 100, 10, 50, False),  # the answer is below low (deleted meanwhile): clamp
        (0, 100, 150, 100, True),  # an answer above high (records arrived after planning): clamp
    ],
)
def test_plan_partition(low, high, answer, start, empty):
    plan = plan_partition("t", 0, low, high, answer)
    assert (plan.start, plan.is_empty) == (start, empty)


def test_bad_watermarks_are_an_error():
    with pytest.raises(WindowError, match=r"t\[2\]: inconsistent watermarks"):
        plan_partition("t", 2, 10, 5, 0)


def test_retention_gap_only_when_the_oldest_kept_record_is_later_than_since():
    at_edge = plan_partition("logs", 1, 500, 900, 500)
    assert at_edge.starts_at_retention_edge
    message = retention_gap_message(at_edge, WINDOW.since_ms + 3_600_000, WINDOW)
    assert message is not None
    assert "logs[1]" in message and "from offset 500" in message and "2024-03-02T01:00:00+00:00" in message
    assert "on_retention_gap='warn'" in message
    # The oldest kept record is exactly at (or before) since: nothing of the window was deleted.
    assert retention_gap_message(at_edge, WINDOW.since_ms, WINDOW) is None
    # Nothing was ever deleted (low == 0): the topic simply starts later.
    assert retention_gap_message(plan_partition("logs", 1, 0, 900, 0), WINDOW.since_ms + 10, WINDOW) is None
    # The window starts after the oldest kept record: it is inside retention.
    assert retention_gap_message(plan_partition("logs", 1, 500, 900, 700), WINDOW.since_ms + 10, WINDOW) is None
