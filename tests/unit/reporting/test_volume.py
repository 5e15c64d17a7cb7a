"""The volume check: an empty or far smaller window is an anomaly with a message that says why."""

from __future__ import annotations

import pytest

from airflow_provider_logproc.reporting.volume import add_volume_anomalies, volume_anomalies, window_record_count


def test_an_empty_window_is_an_anomaly_even_without_history() -> None:
    [anomaly] = volume_anomalies(0, [])
    assert anomaly["kind"] == "empty_window"
    assert anomaly["message"] == "the window holds 0 record(s), fewer than the 1 expected at least"


def test_a_window_far_below_the_recent_median_is_low_volume() -> None:
    [anomaly] = volume_anomalies(90, [1000, 1200, 800, 5])
    assert anomaly["kind"] == "low_volume" and anomaly["baseline_median"] == 900
    assert anomaly["message"] == ("the window holds 90 records, 10% of the median of the previous 4 windows (900); "
                                  "below 20%")


@pytest.mark.parametrize(("records", "baseline"), [
    (180, [900, 900, 900]),  # exactly 20% of the median: not below it
    (90, [1000, 800]),  # too little history to call it low
    (5, [0, 0, 0]),  # a quiet topic stays quiet
])
def test_no_anomaly(records: int, baseline: list[int]) -> None:
    assert volume_anomalies(records, baseline) == []


def test_the_thresholds_are_parameters() -> None:
    assert volume_anomalies(400, [1000] * 3, min_share=0.5)[0]["kind"] == "low_volume"
    assert volume_anomalies(40, [], min_records=100)[0]["kind"] == "low_volume"


def test_record_count_prefers_what_the_consume_step_read() -> None:
    assert window_record_count({"pipeline": {"consumed_records": 120}, "totals": {"lines": 100}}) == 120
    assert window_record_count({"pipeline": {"consumed_records": "120"}, "totals": {"lines": 100}}) == 120
    assert window_record_count({"pipeline": {"consumed_records": None}, "totals": {"lines": 100}}) == 100
    assert window_record_count({"totals": {"lines": 7}}) == 7


def test_the_summary_gets_a_volume_category_even_when_empty() -> None:
    summary: dict = {"anomalies": {"hours": [], "ips": []}}
    add_volume_anomalies(summary, [])
    assert summary["anomalies"] == {"hours": [], "ips": [], "volume": []}
