"""The report's accounting: kept-aside records by reason, totals that add up, the previous window."""

from __future__ import annotations

import orjson

from airflow_provider_logproc.reporting.accounting import (
    accounting,
    compare_with_previous,
    count_reasons,
    reason_kind,
)
from logproc_analyzer.report import render_report


def test_reasons_lose_their_per_record_detail() -> None:
    assert reason_kind("value: not UTF-8 (invalid start byte at byte 3)") == "value: not UTF-8"
    assert reason_kind("value: not JSON: unexpected character at line 1 column 7") == \
        "value: not JSON: unexpected character"
    assert reason_kind("") == "unknown"


def test_kept_aside_files_are_counted_by_reason_with_the_tail_folded() -> None:
    lines = [orjson.dumps({"reason": f"kind {n % 12} (detail {n})"}) for n in range(24)] + [b"{not json", b""]
    counted = count_reasons(lines, top=10)
    assert counted["count"] == 25
    # 12 kinds twice each and one unreadable line: the 10 most common, then 2 + 2 + 1 folded.
    assert len(counted["by_reason"]) == 11 and counted["by_reason"]["other reasons"] == 5
    assert sum(counted["by_reason"].values()) == 25


PIPELINE = {"consumed_records": 980, "undecodable_records": "20", "invalid_records": 30, "records_analysed": 950}


def test_the_window_adds_up_from_read_to_analysed() -> None:
    result = accounting(PIPELINE, 950, {"count": 20, "by_reason": {"a": 20}, "file": "u1"},
                        {"count": 30, "by_reason": {"b": 30}, "file": "u2"})
    assert result["window_records"] == 1000 and result["adds_up"]
    assert result["dead_lettered"] == {"count": 20, "by_reason": {"a": 20}, "file": "u1"}


def test_counts_that_disagree_are_said() -> None:
    assert not accounting(PIPELINE, 940, {"count": 20}, {"count": 30})["adds_up"]  # lines lost in analysis
    assert not accounting(PIPELINE, 950, {"count": 19}, {"count": 30})["adds_up"]  # the file lacks one


SUMMARY = {"totals": {"valid": 900}, "errors": {"server_error_rate": 0.05}, "unique_ips": 120}


def test_the_previous_window_is_compared_when_it_exists() -> None:
    previous = {"totals": {"valid": 1000}, "errors": {"server_error_rate": 0.01}, "unique_ips": 100,
                "period": {"first_minute": "2026-03-01T00:00Z"}}
    comparison = compare_with_previous(SUMMARY, previous)
    assert comparison is not None
    assert comparison["change"] == {"requests": -100, "server_error_rate": 0.04, "unique_ips": 20}
    assert compare_with_previous(SUMMARY, None) is None


def test_the_report_shows_the_accounting_and_the_comparison() -> None:
    from logproc_analyzer import Aggregate, summarize

    aggregate = Aggregate()
    aggregate.ingest_lines([b'{"timestamp":"2026-03-02T10:00:00Z","ip":"10.0.0.1","status":500}'], source="in")
    summary = summarize(aggregate)
    summary["accounting"] = accounting({"consumed_records": 3, "undecodable_records": 1, "invalid_records": 2,
                                        "records_analysed": 1}, 1,
                                       {"count": 1, "by_reason": {"value: not UTF-8": 1},
                                        "file": "http://blob/results/t/kept-aside/dead-letters.jsonl"},
                                       {"count": 2, "by_reason": {"status: missing": 2}, "file": None})
    summary["previous_window"] = compare_with_previous(summary, {**summary, "unique_ips": 7})
    html = render_report(summary)
    assert "records in the window: <b>4</b>" in html
    assert "value: not UTF-8: 1" in html and "kept-aside/dead-letters.jsonl</a>" in html
    assert "the counts add up" in html
    assert "Compared with the previous window" in html
