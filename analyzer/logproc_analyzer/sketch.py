"""A mergeable latency histogram on fixed log-spaced buckets (the DDSketch bucket scheme).

Bucket ``i`` holds the values in ``(gamma**(i-1), gamma**i]`` with ``gamma = (1+a)/(1-a)``; a quantile
is answered with ``2*gamma**i/(gamma+1)`` for the bucket that holds the requested rank, which is within
a relative error ``a`` (``RELATIVE_ACCURACY``, 0.5 %) of the exact order statistic. The buckets are
fixed, so merging two histograms is adding their counts: the merge of partials is exactly the
histogram of the whole input, whatever the split. Values at or below ``MIN_VALUE`` (0.001 ms) count in
a zero bucket and are reported as 0.

Memory is bounded by the number of buckets: about 2 300 between 1 microsecond and one day.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Any

RELATIVE_ACCURACY = 0.005
GAMMA = (1 + RELATIVE_ACCURACY) / (1 - RELATIVE_ACCURACY)
_INV_LOG_GAMMA = 1 / math.log(GAMMA)
MIN_VALUE = 0.001


def bucket_index(value: float) -> int | None:
    """Return the bucket of a positive value, or None for the zero bucket."""
    if value <= MIN_VALUE:
        return None
    return math.ceil(math.log(value) * _INV_LOG_GAMMA)


def bucket_value(index: int) -> float:
    """Return the representative of a bucket: within RELATIVE_ACCURACY of every value in it."""
    return 2 * GAMMA ** index / (GAMMA + 1)


class LatencyHistogram:
    """Counts of latencies (milliseconds) per log-spaced bucket; exact count, sum, min and max."""

    __slots__ = ("buckets", "count", "max", "min", "total_us", "zero")

    def __init__(self) -> None:
        self.buckets: dict[int, int] = {}
        self.zero = 0
        self.count = 0
        # The sum in whole microseconds: integer addition is exact in any order, so the mean of a
        # merge equals the mean of the whole input.
        self.total_us = 0
        self.min: float | None = None
        self.max: float | None = None

    def add_counts(self, values: Mapping[float, int]) -> None:
        """Add pre-counted values (value -> occurrences); values must be finite and >= 0."""
        buckets = self.buckets
        low, high = self.min, self.max
        for value, occurrences in values.items():
            index = bucket_index(value)
            if index is None:
                self.zero += occurrences
            else:
                buckets[index] = buckets.get(index, 0) + occurrences
            self.count += occurrences
            self.total_us += round(value * 1000) * occurrences
            if low is None or value < low:
                low = value
            if high is None or value > high:
                high = value
        self.min, self.max = low, high

    def add(self, value: float, occurrences: int = 1) -> None:
        self.add_counts({value: occurrences})

    def merge(self, other: LatencyHistogram) -> None:
        for index, occurrences in other.buckets.items():
            self.buckets[index] = self.buckets.get(index, 0) + occurrences
        self.zero += other.zero
        self.count += other.count
        self.total_us += other.total_us
        if other.min is not None and (self.min is None or other.min < self.min):
            self.min = other.min
        if other.max is not None and (self.max is None or other.max > self.max):
            self.max = other.max

    def quantile(self, q: float) -> float | None:
        """Return the value at rank floor(q*(count-1)) (0-based, ascending), within the relative accuracy."""
        if not 0.0 <= q <= 1.0:
            raise ValueError(f"quantile must be within [0, 1], got {q}")
        if self.count == 0:
            return None
        rank = math.floor(q * (self.count - 1))
        if rank < self.zero:
            return 0.0
        seen = self.zero
        for index in sorted(self.buckets):
            seen += self.buckets[index]
            if seen > rank:
                estimate = bucket_value(index)
                # The exact extremes are known: never answer outside them.
                assert self.min is not None and self.max is not None
                return min(max(estimate, self.min), self.max)
        raise AssertionError("bucket counts do not add up to the count")  # pragma: no cover

    @property
    def mean(self) -> float | None:
        return self.total_us / self.count / 1000 if self.count else None

    def quantiles(self, qs: Iterable[float]) -> dict[str, float | None]:
        return {f"p{round(q * 100):d}": self.quantile(q) for q in qs}

    def to_dict(self) -> dict[str, Any]:
        return {
            "scheme": "log-buckets",
            "relative_accuracy": RELATIVE_ACCURACY,
            "min_value": MIN_VALUE,
            "count": self.count,
            "sum_us": self.total_us,
            "min": self.min,
            "max": self.max,
            "zero": self.zero,
            "buckets": {str(index): n for index, n in sorted(self.buckets.items())},
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> LatencyHistogram:
        if data.get("scheme") != "log-buckets" or data.get("relative_accuracy") != RELATIVE_ACCURACY:
            raise ValueError(
                f"latency histogram scheme {data.get('scheme')!r} with accuracy "
                f"{data.get('relative_accuracy')!r} differs from this analyzer's "
                f"log-buckets/{RELATIVE_ACCURACY}: partials from different versions cannot be merged"
            )
        histogram = cls()
        histogram.buckets = {int(index): int(n) for index, n in data["buckets"].items()}
        histogram.zero = int(data["zero"])
        histogram.count = int(data["count"])
        histogram.total_us = int(data["sum_us"])
        histogram.min = data["min"]
        histogram.max = data["max"]
        return histogram
