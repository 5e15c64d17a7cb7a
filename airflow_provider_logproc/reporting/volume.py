"""Empty and short windows are anomalies: a day that reads nothing must not end quietly green.

The analyzer sees only the records it got; whether that is too few is a question about the window
against the days before it, which the report step can answer: it reads the previous windows'
``summary.json`` (same topic, same window length) and compares record counts.
"""

from __future__ import annotations

import statistics
from collections.abc import Mapping, Sequence
from typing import Any

VOLUME_CATEGORY = "volume"
DEFAULT_MIN_RECORDS = 1
DEFAULT_MIN_SHARE_OF_BASELINE = 0.2
# Fewer earlier windows than this say too little about a "usual" day.
MIN_BASELINE_WINDOWS = 3


def window_record_count(summary: Mapping[str, Any]) -> int:
    """Count the records the window held: what the consume step read when known, else the lines analysed."""
    consumed = (summary.get("pipeline") or {}).get("consumed_records")
    if isinstance(consumed, int):
        return consumed
    if isinstance(consumed, str) and consumed.isdigit():
        return int(consumed)
    return int((summary.get("totals") or {}).get("lines", 0))


def volume_anomalies(
    records: int,
    baseline: Sequence[int],
    *,
    min_records: int = DEFAULT_MIN_RECORDS,
    min_share: float = DEFAULT_MIN_SHARE_OF_BASELINE,
) -> list[dict[str, Any]]:
    """Return an ``empty_window`` / ``low_volume`` anomaly when the window holds too few records, else none.

    Too few is fewer than ``min_records``, or fewer than ``min_share`` of the median of ``baseline``
    (the previous windows' counts, needing at least :data:`MIN_BASELINE_WINDOWS` of them).
    """
    if records < min_records:
        kind = "empty_window" if records == 0 else "low_volume"
        return [{"kind": kind, "records": records, "expected_at_least": min_records,
                 "message": f"the window holds {records} record(s), fewer than the {min_records} expected at least"}]
    if len(baseline) >= MIN_BASELINE_WINDOWS:
        median = statistics.median(baseline)
        if median > 0 and records < min_share * median:
            return [{"kind": "low_volume", "records": records, "baseline_median": median,
                     "baseline_windows": len(baseline),
                     "message": f"the window holds {records} records, {records / median:.0%} of the median of "
                                f"the previous {len(baseline)} windows ({median:g}); below {min_share:.0%}"}]
    return []


def add_volume_anomalies(summary: dict[str, Any], anomalies: list[dict[str, Any]]) -> None:
    """Record them in the summary next to the analyzer's (``anomalies.volume``), even when empty."""
    summary.setdefault("anomalies", {})[VOLUME_CATEGORY] = anomalies
