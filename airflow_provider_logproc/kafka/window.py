"""Planning an exact time window over Kafka partitions (pure logic, no client calls).

For each partition the consumer looks up, once at the start, the low and high watermarks and
``offsets_for_times(since)``. The plan reads ``[start, high)``: ``start`` is the first offset whose
timestamp is ≥ ``since`` and ``high`` is frozen at planning time, so records produced during the
read do not leak into the window and the same window read twice gives the same records.
A partition also stops early at the first record whose timestamp is ≥ ``until + max_lateness``
(records are only roughly in time order; ``max_lateness`` says how late a record may arrive after
the window's end and still be found).
"""

from __future__ import annotations

import calendar
import datetime as dt
from dataclasses import dataclass


class RetentionGapError(RuntimeError):
    """The window starts before the oldest record the broker still keeps: records are missing."""


class WindowError(ValueError):
    """A window that cannot be read as given (bad bounds, unknown topic, ...)."""


def to_epoch_ms(moment: dt.datetime) -> int:
    if moment.tzinfo is None:
        raise WindowError(f"naive datetime {moment.isoformat()}: give window bounds a time zone")
    # Integer arithmetic (exact), and no datetime subtraction: pendulum's differs from the stdlib's.
    return calendar.timegm(moment.utctimetuple()) * 1000 + moment.microsecond // 1000


@dataclass(frozen=True, slots=True)
class TimeWindow:
    """``[since_ms, until_ms)`` in epoch milliseconds; partitions stop at ``stop_ms``."""

    since_ms: int
    until_ms: int
    stop_ms: int

    @classmethod
    def from_datetimes(cls, since: dt.datetime, until: dt.datetime, max_lateness: dt.timedelta) -> TimeWindow:
        if max_lateness < dt.timedelta(0):
            raise WindowError(f"max_lateness must not be negative, got {max_lateness}")
        since_ms, until_ms = to_epoch_ms(since), to_epoch_ms(until)
        if until_ms < since_ms:
            raise WindowError(f"window ends before it starts: since={since.isoformat()} until={until.isoformat()}")
        return cls(since_ms, until_ms, until_ms + max_lateness // dt.timedelta(milliseconds=1))

    def contains(self, timestamp_ms: int) -> bool:
        return self.since_ms <= timestamp_ms < self.until_ms


@dataclass(frozen=True, slots=True)
class PartitionPlan:
    """What to read from one partition: offsets ``[start, high)``."""

    topic: str
    partition: int
    low: int
    high: int
    start: int

    @property
    def is_empty(self) -> bool:
        return self.start >= self.high

    @property
    def starts_at_retention_edge(self) -> bool:
        """The first record to read is the oldest one kept, and older ones were deleted.

        Then whether records of the window were lost depends on that record's timestamp: if it is
        later than ``since``, the deleted records may have been inside the window.
        """
        return self.low > 0 and self.start == self.low and not self.is_empty


def plan_partition(topic: str, partition: int, low: int, high: int, offset_for_since: int) -> PartitionPlan:
    """Combine watermarks and the ``offsets_for_times(since)`` answer into a plan.

    ``offset_for_since`` is negative when no record has a timestamp ≥ since (Kafka answers -1):
    then nothing is to be read.
    """
    if low < 0 or high < low:
        raise WindowError(f"{topic}[{partition}]: inconsistent watermarks low={low} high={high}")
    start = high if offset_for_since < 0 else max(low, min(offset_for_since, high))
    return PartitionPlan(topic, partition, low, high, start)


def retention_gap_message(plan: PartitionPlan, first_timestamp_ms: int, window: TimeWindow) -> str | None:
    """Return a message when the first record read shows that part of the window was already deleted."""
    if not plan.starts_at_retention_edge or first_timestamp_ms <= window.since_ms:
        return None
    oldest = dt.datetime.fromtimestamp(first_timestamp_ms / 1000, dt.UTC).isoformat()
    since = dt.datetime.fromtimestamp(window.since_ms / 1000, dt.UTC).isoformat()
    return (
        f"window starts before retention: {plan.topic}[{plan.partition}] keeps records from offset "
        f"{plan.low} on (offsets 0..{plan.low - 1} were deleted) and its oldest kept record is from {oldest}, "
        f"later than the window start {since}; records of the window may be missing. "
        "Re-read a window inside the topic's retention, or pass on_retention_gap='warn' to accept the gap."
    )
