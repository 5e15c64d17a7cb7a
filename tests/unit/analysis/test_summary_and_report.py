"""Summary, anomalies on a generated day, and the self-contained, escaped HTML report."""

from __future__ import annotations

import datetime as dt
import re
from html.parser import HTMLParser

import orjson
import pytest

from logproc_analyzer import analyze_lines, render_report, summarize
from logproc_analyzer.anomalies import hour_anomalies, ip_anomalies
from logproc_local import sample_logs

DAY = dt.date(2026, 11, 24)


@pytest.fixture(scope="module")
def generated_day_summary() -> dict:
    records = sample_logs.generate(DAY, 50_000, seed=7, bad_share=0.01)
    return summarize(analyze_lines(record.value for record in records))


def test_anomalies_find_the_error_burst_hour_and_the_noisy_client(generated_day_summary: dict) -> None:
    hours = generated_day_summary["anomalies"]["hours"]
    ips = generated_day_summary["anomalies"]["ips"]
    burst = f"{DAY.isoformat()}T{sample_logs.ERROR_BURST_HOUR:02d}:00Z"
    assert [(a["kind"], a["hour"]) for a in hours] == [("hour_server_error_rate", burst)]
    assert [(a["kind"], a["ip"]) for a in ips] == [("ip_request_rate", sample_logs.NOISY_CLIENT_IP)]


def test_summary_totals_of_the_generated_day(generated_day_summary: dict) -> None:
    totals = generated_day_summary["totals"]
    assert totals["lines"] == 50_000
    assert totals["invalid"] == 500
    assert totals["valid"] == 49_500
    assert sum(generated_day_summary["status"].values()) == 49_500
    assert sum(h["requests"] for h in generated_day_summary["per_hour"]) == 49_500
    assert len(generated_day_summary["per_hour"]) == 24
    assert len(generated_day_summary["per_minute"]["requests"]) == 1440
    assert generated_day_summary["per_minute"]["minute"][0] == "2026-11-24T00:00Z"
    assert generated_day_summary["top"]["ips"][0]["key"] == sample_logs.NOISY_CLIENT_IP
    assert set(generated_day_summary["sources"]) == {"web", "iot", "mobile"}
    assert generated_day_summary["latency_ms"]["p50"] < generated_day_summary["latency_ms"]["p99"]


def test_a_flat_day_has_no_anomalies() -> None:
    hours = [{"hour": f"h{h:02d}", "requests": 1000 + (h % 3) * 20, "client_errors": 50 + h % 4,
              "server_errors": 10 + h % 3} for h in range(24)]
    assert hour_anomalies(hours) == []
    requests = {f"10.0.0.{i}": 20 + i % 7 for i in range(200)}
    assert ip_anomalies(requests, {ip: 1 for ip in requests}, {}) == []


def test_an_error_prone_client_and_a_traffic_spike_are_flagged() -> None:
    hours = [{"hour": f"h{h:02d}", "requests": 1000, "client_errors": 50, "server_errors": 10} for h in range(24)]
    hours[5] = {"hour": "h05", "requests": 9000, "client_errors": 450, "server_errors": 90}
    found = hour_anomalies(hours)
    assert [(a["kind"], a["hour"], a["direction"]) for a in found] == [("hour_volume", "h05", "spike")]
    requests = {f"10.0.0.{i}": 50 for i in range(100)}
    client_errors = {ip: 2 for ip in requests} | {"10.0.0.9": 45}
    found_ips = ip_anomalies(requests, client_errors, {})
    assert [(a["kind"], a["ip"]) for a in found_ips] == [("ip_error_rate", "10.0.0.9")]


def test_summary_is_deterministic_and_ties_break_by_key() -> None:
    lines = [orjson.dumps({"timestamp": 0, "client_ip": ip, "status": 200}) for ip in ("192.0.2.2", "192.0.2.1")]
    first = orjson.dumps(summarize(analyze_lines(lines)), option=orjson.OPT_SORT_KEYS)
    second = orjson.dumps(summarize(analyze_lines(list(reversed(lines)))), option=orjson.OPT_SORT_KEYS)
    assert first == second
    assert [row["key"] for row in summarize(analyze_lines(lines))["top"]["ips"]] == ["192.0.2.1", "192.0.2.2"]


def test_empty_input_gives_an_empty_summary_and_a_report() -> None:
    summary = summarize(analyze_lines([]))
    assert summary["totals"]["valid"] == 0
    assert summary["latency_ms"]["p50"] is None
    assert "No valid records" in render_report(summary)


class _Collector(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.tags: list[str] = []
        self.attributes: list[tuple[str, str | None]] = []
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        self.attributes.extend(attrs)

    def handle_data(self, data: str) -> None:
        self.text.append(data)


HOSTILE_AGENT = '<script>alert("ua")</script><img src=x onerror=alert(1)>'
HOSTILE_PATH = "/search?q=</td><script src='https://evil.example/x.js'></script>"


def test_report_escapes_log_data_and_is_self_contained(generated_day_summary: dict) -> None:
    lines = [orjson.dumps({"timestamp": "2026-11-24T10:00:00Z", "client_ip": "192.0.2.1", "status": 500,
                           "path": HOSTILE_PATH, "user_agent": HOSTILE_AGENT})] * 3
    lines.append(b"<b>not a log line</b> & more")
    html_text = render_report(summarize(analyze_lines(lines)), title="<i>day</i>")
    parser = _Collector()
    parser.feed(html_text)
    # No script, no external resource of any kind, only the tags the report itself writes.
    assert "script" not in parser.tags
    assert set(parser.tags) <= {"html", "head", "meta", "title", "style", "body", "h1", "h2", "p", "div",
                                "span", "b", "ul", "li", "table", "thead", "tbody", "tr", "th", "td", "code",
                                "svg", "line", "text", "rect", "polyline"}
    assert not [a for a in parser.attributes if a[0] in ("src", "href", "onerror", "onload")]
    assert not re.search(r"url\(|@import|https?://", html_text.split("<body>")[0])
    # The hostile strings are shown as text.
    text = "".join(parser.text)
    assert HOSTILE_AGENT in text
    assert HOSTILE_PATH in text
    assert "<b>not a log line</b> & more" in text
    assert "<i>day</i>" in text

    full = render_report(generated_day_summary)
    assert full.index("Anomalies") < full.index("Requests and errors per hour")
    assert "203.0.113.66" in full
    assert full.count("<svg") == 3


def test_a_stray_timestamp_years_away_keeps_the_summary_small() -> None:
    lines = [orjson.dumps({"timestamp": "2026-11-24T10:00:00Z", "client_ip": "192.0.2.1", "status": 200}),
             orjson.dumps({"timestamp": 0, "client_ip": "192.0.2.1", "status": 200})]  # 1970
    summary = summarize(analyze_lines(lines))
    assert summary["per_minute"]["minute"] == ["1970-01-01T00:00Z", "2026-11-24T10:00Z"]
    assert summary["period"] == {"first_minute": "1970-01-01T00:00Z", "last_minute": "2026-11-24T10:00Z"}
    report = render_report(summary)
    assert len(report) < 20_000
    assert "<polyline" not in report  # no continuous time axis over 56 years
