"""The latency histogram: quantiles within the stated relative error, exact merges."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from logproc_analyzer.sketch import RELATIVE_ACCURACY, LatencyHistogram

latencies = st.lists(st.one_of(st.floats(0.0005, 1e6), st.integers(0, 10_000).map(float)), min_size=1,
                     max_size=400)


def _histogram(values: list[float]) -> LatencyHistogram:
    histogram = LatencyHistogram()
    for value in values:
        histogram.add(value)
    return histogram


@settings(max_examples=200, deadline=None)
@given(latencies, st.sampled_from([0.0, 0.01, 0.5, 0.9, 0.95, 0.99, 1.0]))
def test_quantiles_are_within_the_relative_accuracy_of_the_exact_order_statistic(
    values: list[float], q: float
) -> None:
    exact = sorted(values)[math.floor(q * (len(values) - 1))]
    estimate = _histogram(values).quantile(q)
    assert estimate is not None
    if exact <= 0.001:
        assert estimate <= 0.001
    else:
        assert abs(estimate - exact) <= RELATIVE_ACCURACY * exact * (1 + 1e-9)


@settings(max_examples=100, deadline=None)
@given(latencies, latencies)
def test_merge_is_exactly_the_histogram_of_the_union(first: list[float], second: list[float]) -> None:
    merged = _histogram(first)
    merged.merge(_histogram(second))
    whole = _histogram(first + second)
    assert merged.to_dict() == whole.to_dict()
    assert LatencyHistogram.from_dict(merged.to_dict()).to_dict() == whole.to_dict()


def test_empty_histogram_and_bad_quantiles() -> None:
    histogram = LatencyHistogram()
    assert histogram.quantile(0.5) is None
    assert histogram.mean is None
    with pytest.raises(ValueError, match="quantile"):
        histogram.quantile(1.5)


def test_histograms_of_another_scheme_are_refused() -> None:
    data = _histogram([1.0, 2.0]).to_dict()
    with pytest.raises(ValueError, match="cannot be merged"):
        LatencyHistogram.from_dict({**data, "relative_accuracy": 0.02})
