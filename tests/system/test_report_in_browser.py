"""The HTML report as a person sees it: opened offline in headless Chromium, charts drawn, no errors."""

from __future__ import annotations

import datetime as dt
import shutil

import pytest

from logproc_analyzer import analyze_lines, render_report, summarize
from logproc_local import sample_logs

pytestmark = pytest.mark.system

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.fixture(scope="module")
def report_file(tmp_path_factory):
    records = sample_logs.generate(dt.date(2026, 2, 10), 20_000, seed=5, bad_share=0.01)
    aggregate = analyze_lines((r.value for r in records), source="sample.jsonl")
    summary = summarize(aggregate)
    # As the report step adds it: the bad-input corpus's records, from read to analysed.
    from airflow_provider_logproc.reporting.accounting import accounting

    lines = summary["totals"]["lines"]
    summary["accounting"] = accounting(
        {"consumed_records": lines + 7, "undecodable_records": 3, "invalid_records": 7, "records_analysed": lines},
        lines, {"count": 3, "by_reason": {"value: not UTF-8": 3}, "file": "https://acct.blob/results/dead.jsonl"},
        {"count": 7, "by_reason": {"status: missing": 7}, "file": None})
    path = tmp_path_factory.mktemp("report") / "report.html"
    path.write_text(render_report(summary, title="Log analysis <test> & co"))
    return path, summary


@pytest.mark.skipif(CHROMIUM is None, reason="Debian's chromium is not installed (make system-packages installs it)")
def test_report_renders_offline_with_charts_and_no_console_errors(report_file, tmp_path):
    from playwright.sync_api import sync_playwright

    path, summary = report_file
    lines = summary["totals"]["lines"]
    console_errors: list[str] = []
    page_errors: list[str] = []
    requests: list[str] = []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM,
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                  "--disable-sync", "--no-first-run"],
        )
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            page.on("console", lambda m: console_errors.append(m.text) if m.type == "error" else None)
            page.on("pageerror", lambda e: page_errors.append(str(e)))
            page.on("request", lambda r: requests.append(r.url))
            page.goto(path.as_uri())
            page.wait_for_load_state("load")
            charts = page.locator("svg")
            assert charts.count() >= 3  # traffic over the day, status mix, latency percentiles
            for i in range(charts.count()):
                box = charts.nth(i).bounding_box()
                assert box is not None
                assert box["width"] > 50
                assert box["height"] > 20
            # The anomalies come first, before the charts.
            anomalies = page.locator("text=Anomalies").first.bounding_box()
            first_chart = charts.first.bounding_box()
            assert anomalies is not None and first_chart is not None
            assert anomalies["y"] < first_chart["y"]
            # Every record accounted for, in numbers a person reads off the page.
            accounting = page.locator("ul.accounting")
            assert accounting.is_visible()
            text = accounting.inner_text()
            assert f"records in the window: {lines + 10:,}" in text, text
            assert f"read: {lines + 7:,}" in text and f"lines analysed: {lines:,}" in text
            assert "value: not UTF-8: 3" in text and "status: missing: 7" in text
            assert page.locator("text=the counts add up").is_visible()
            # The title was escaped, not interpreted.
            assert page.title() == "Log analysis <test> & co"
            shot = tmp_path / "report.png"
            page.screenshot(path=str(shot), full_page=True)
        finally:
            browser.close()
    assert console_errors == []
    assert page_errors == []
    # Self-contained: nothing but the file itself was loaded.
    assert all(url.startswith("file://") for url in requests), requests
    assert shot.stat().st_size > 20_000
