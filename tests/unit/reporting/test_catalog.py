"""The Log reports page's pure parts: which blobs are days, their order, what may be served, the HTML."""

from __future__ import annotations

import pytest

from airflow_provider_logproc.reporting.catalog import (
    ReportDay,
    is_servable,
    render_report_list,
    report_page_url,
    summary_prefixes,
)


def test_days_are_the_prefixes_with_a_summary_newest_window_first():
    names = ["access-logs/2026/03/01/summary.json", "access-logs/2026/03/01/report.html",
             "access-logs/2026/03/02/partials/t1/partial.json", "access-logs/2026/03/02/summary.json",
             "other-topic/2026/03/03/120000-130000/summary.json", "summary.json", "access-logs/2026/02/28/report.html"]
    assert summary_prefixes(names) == ["other-topic/2026/03/03/120000-130000", "access-logs/2026/03/02",
                                       "access-logs/2026/03/01"]
    assert summary_prefixes(names, limit=1) == ["other-topic/2026/03/03/120000-130000"]
    assert summary_prefixes(names, limit=0) == []


@pytest.mark.parametrize(("name", "servable"), [
    ("access-logs/2026/03/01/report.html", True),
    ("access-logs/2026/03/01/summary.json", True),
    ("access-logs/2026/03/01/partials/t1/partial.json", False),
    ("access-logs/2026/03/01/kept-aside/invalid.jsonl", False),
    ("access-logs/../secret/report.html", False),
    ("/access-logs/2026/03/01/report.html", False),
    ("access-logs//report.html", False),
    ("report.html", False),
    ("", False),
])
def test_only_reports_and_summaries_may_be_served(name, servable):
    assert is_servable(name) is servable


def test_report_page_url_quotes_the_names_and_is_relative_without_a_base_url():
    assert report_page_url("https://airflow.example.com/", "results", "t p/2026/03/01/report.html") == (
        "https://airflow.example.com/logproc-reports/results/t%20p/2026/03/01/report.html")
    assert report_page_url("", "results", "a/report.html") == "/logproc-reports/results/a/report.html"


def test_the_page_shows_each_days_numbers_escaped_and_a_link_to_its_report():
    numbers = {"valid": 12345, "invalid": 7, "client_errors": 3, "server_errors": 0, "unique_ips": 99, "anomalies": 2}
    days = [ReportDay("results", "<b>topic</b>/2026/03/02", numbers), ReportDay("results", "t/2026/03/01", None)]
    page = render_report_list(days, ["results"])
    assert 'data-key="valid">12,345<' in page and 'data-key="anomalies">2<' in page
    assert "<b>topic</b>" not in page and "&lt;b&gt;topic&lt;/b&gt;" in page
    assert 'href="results/%3Cb%3Etopic%3C/b%3E/2026/03/02/report.html"' in page
    assert 'class="day anomalous"' in page
    assert "summary unreadable" in page  # a day whose summary cannot be read is shown, not hidden
    assert "no reports yet" in render_report_list([], ["results"])
