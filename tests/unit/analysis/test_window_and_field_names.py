"""The analysis window (--since/--until) and the detection of shippers' field names (issue 20, 4 and 5)."""

from __future__ import annotations

import datetime as dt
import json
import random
from pathlib import Path
from typing import Any

import orjson
import pytest

from logproc_analyzer import aggregate as aggregate_module
from logproc_analyzer.__main__ import main as module_main
from logproc_analyzer.aggregate import Aggregate
from logproc_analyzer.analyze import analyze_lines, analyze_paths, choose_mapping, merge_aggregates, read_partial_file
from logproc_analyzer.cli import analyze_main, merge_main
from logproc_analyzer.detection import detect_mapping
from logproc_analyzer.fields import FieldMapping, Window, field_value
from logproc_analyzer.report import render_report
from logproc_analyzer.summary import summarize
from tests.fixtures.analyzer_routes import forced_route

DAY_MS = int(dt.datetime(2026, 11, 24, tzinfo=dt.UTC).timestamp() * 1000)
NEXT_DAY_MS = DAY_MS + 86_400_000
WINDOW = Window(DAY_MS, NEXT_DAY_MS)
ROUTES = ("c", "python", "slow")


def _iso(ms: int) -> str:
    moment = dt.datetime.fromtimestamp(ms / 1000, tz=dt.UTC)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{ms % 1000:03d}Z"


def _line(ts: Any, ip: str = "192.0.2.1", status: int = 200, **more: Any) -> bytes:
    return orjson.dumps({"timestamp": ts, "client_ip": ip, "status": status, **more})


def _aggregate(lines: list[bytes], *, route: str, monkeypatch: pytest.MonkeyPatch,
               mapping: FieldMapping | None = None, window: Window | None = None) -> Aggregate:
    with forced_route(route, monkeypatch):
        aggregate = Aggregate(mapping, window)
        aggregate.ingest_lines(lines, source="in")
        return aggregate.finish()


def _window_lines() -> list[bytes]:
    """A day's records in several timestamp forms, with some before and after the day."""
    rng = random.Random(5)
    lines = []
    for i in range(3000):
        ms = DAY_MS + rng.randrange(86_400_000)
        form = i % 4
        ts: Any = _iso(ms) if form == 0 else ms if form == 1 else ms // 1000 if form == 2 else \
            dt.datetime.fromtimestamp(ms / 1000, tz=dt.timezone(dt.timedelta(hours=9))).isoformat()
        lines.append(_line(ts, f"10.0.{rng.randrange(4)}.{rng.randrange(50)}", rng.choice([200, 404, 503]),
                           latency_ms=rng.randrange(1, 900) / 10))
    # Late arrivals and fast device clocks, in each form; the farthest are 26 h 0.250 s before and
    # 3 h 7 min 1.5 s after.
    lines += [_line(_iso(DAY_MS - 1)), _line(DAY_MS - 5 * 60_000), _line(_iso(DAY_MS - 93_600_250)),
              _line((DAY_MS - 7_200_000) // 1000), _line(_iso(NEXT_DAY_MS)),
              _line(NEXT_DAY_MS + 11_221_500), _line(_iso(NEXT_DAY_MS + 600_000), status=500),
              b'127.0.0.1 - - [23/Nov/2026:23:59:59 +0000] "GET / HTTP/1.1" 200 5',
              b'127.0.0.1 - - [25/Nov/2026:02:00:00 +0100] "GET / HTTP/1.1" 200 5',
              _line(_iso(DAY_MS)), _line(_iso(NEXT_DAY_MS - 1))]
    rng.shuffle(lines)
    return lines


# --------------------------------------------------------------------------- the window
def test_window_parse_takes_iso_dates_and_minutes_and_names_the_flag_it_refuses() -> None:
    assert Window.parse("2026-11-24", "2026-11-25T00:00:00Z") == WINDOW
    assert Window.parse("2026-11-24T09:00+09:00", None) == Window(DAY_MS, None)
    assert Window.parse(None, None) is None
    for since, until, message in (
        ("2026-11-24T00:00:30Z", None, "--since '2026-11-24T00:00:30Z' is not on a whole minute"),
        ("2026-11-24", "2026-11-24T00:00:00.500Z", "--until"),
        ("yesterday", None, "--since 'yesterday' is not an ISO 8601 date"),
        ("1795478400", None, "--since '1795478400' is not an ISO 8601 date"),
        ("2026-11-25", "2026-11-24", "is not before --until"),
        ("2026-02-30", None, "--since '2026-02-30' is not a valid date-time"),
    ):
        with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
            Window.parse(since, until)


@pytest.mark.parametrize("route", ROUTES)
def test_records_outside_the_window_are_counted_apart_on_every_route(
        route: str, monkeypatch: pytest.MonkeyPatch) -> None:
    lines = _window_lines()
    aggregate = _aggregate(lines, route=route, monkeypatch=monkeypatch, window=WINDOW)
    summary = summarize(aggregate)
    window = summary["window"]
    assert window["since"] == "2026-11-24T00:00:00.000Z"
    assert window["until"] == "2026-11-25T00:00:00.000Z"
    assert window["before"] == {"records": 5, "earliest": _iso(DAY_MS - 93_600_250),
                                "max_skew_seconds": 93_600.25}
    assert window["after"] == {"records": 4, "latest": _iso(NEXT_DAY_MS + 11_221_500),
                               "max_skew_seconds": 11_221.5}
    assert window["in_window"] == 3002 == summary["totals"]["valid"] - 9
    # The time series is the window's; every other figure still counts all valid records.
    assert len(summary["per_hour"]) == 24
    assert sum(hour["requests"] for hour in summary["per_hour"]) == 3002
    assert sum(summary["per_minute"]["requests"]) == 3002
    assert summary["period"]["first_minute"] == "2026-11-24T00:00Z"
    assert summary["period"]["last_minute"] == "2026-11-24T23:59Z"
    assert sum(summary["status"].values()) == summary["totals"]["valid"] == 3011
    # The same lines without a window: as before, every record's hour is drawn.
    unwindowed = summarize(_aggregate(lines, route=route, monkeypatch=monkeypatch))
    assert unwindowed["window"] is None
    assert sum(hour["requests"] for hour in unwindowed["per_hour"]) == 3011
    assert len(unwindowed["per_hour"]) > 24
    assert {key: value for key, value in unwindowed.items() if key not in ("window", "per_hour", "per_minute",
                                                                          "period", "anomalies")} == \
        {key: value for key, value in summary.items() if key not in ("window", "per_hour", "per_minute",
                                                                    "period", "anomalies")}


def test_the_c_loop_and_the_python_loop_agree_with_a_window(monkeypatch: pytest.MonkeyPatch) -> None:
    lines = _window_lines()
    partials = [_aggregate(lines, route=route, monkeypatch=monkeypatch, window=WINDOW).to_partial()
                for route in ROUTES if route != "c" or aggregate_module.native_ingest is not None]
    assert all(partial == partials[0] for partial in partials)
    assert partials[0]["outside_window"] == {"earliest_ms": DAY_MS - 93_600_250,
                                             "latest_ms": NEXT_DAY_MS + 11_221_500}


def test_window_bounds_are_half_open(monkeypatch: pytest.MonkeyPatch) -> None:
    lines = [_line(_iso(DAY_MS)), _line(_iso(NEXT_DAY_MS - 1)), _line(_iso(NEXT_DAY_MS)),
             _line(_iso(DAY_MS - 1))]
    summary = summarize(analyze_lines(lines, window=WINDOW))
    assert summary["window"]["in_window"] == 2
    assert summary["window"]["before"]["max_skew_seconds"] == 0.001
    assert summary["window"]["after"]["max_skew_seconds"] == 0.0  # `until` itself is outside


def test_partials_merge_to_the_analysis_of_the_whole(monkeypatch: pytest.MonkeyPatch) -> None:
    lines = _window_lines()
    whole = summarize(analyze_lines(lines, window=WINDOW))
    parts = [analyze_lines(lines[i::3], window=WINDOW) for i in range(3)]
    through_json = [Aggregate.from_partial(orjson.loads(orjson.dumps(part.to_partial()))) for part in parts]
    merged = summarize(merge_aggregates(through_json))
    assert merged["window"] == whole["window"]
    assert merged["per_hour"] == whole["per_hour"]
    # Only one part holds the earliest record: the merge keeps the extreme, not the last part's.
    assert sum(part.outside_earliest_ms is not None for part in parts) >= 2


def test_partials_of_different_windows_do_not_merge(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    lines = _window_lines()
    with pytest.raises(ValueError, match="different windows"):
        analyze_lines(lines, window=WINDOW).merge(analyze_lines(lines))
    log = tmp_path / "day.jsonl"
    log.write_bytes(b"\n".join(lines) + b"\n")
    first, second = tmp_path / "a.json", tmp_path / "b.json"
    assert analyze_main([str(log), "-o", str(first), "--since", "2026-11-24", "--until", "2026-11-25"]) == 0
    assert analyze_main([str(log), "-o", str(second), "--since", "2026-11-24"]) == 0
    assert merge_main([str(first), str(second), "-d", str(tmp_path / "out")]) == 1
    assert "cannot merge analyses of different windows" in capsys.readouterr().err


def test_cli_window_reaches_summary_and_report(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    log = tmp_path / "day.jsonl"
    log.write_bytes(b"\n".join(_window_lines()) + b"\n")
    partial = tmp_path / "p.json"
    assert module_main(["analyze", str(log), "-o", str(partial), "--workers", "1",
                        "--since", "2026-11-24T00:00:00Z", "--until", "2026-11-25T00:00:00Z"]) == 0
    assert module_main(["merge", str(partial), "-d", str(tmp_path / "out")]) == 0
    summary = json.loads((tmp_path / "out" / "summary.json").read_text())
    assert summary["window"]["before"]["records"] == 5
    report = (tmp_path / "out" / "report.html").read_text()
    assert "Analysis window" in report and "26.0 h (93,600 s)" in report and "3.1 h (11,222 s)" in report
    with pytest.raises(SystemExit) as exit_info:
        analyze_main([str(log), "-o", str(partial), "--since", "2026-11-24T00:00:01Z"])
    assert exit_info.value.code == 2
    assert "--since '2026-11-24T00:00:01Z' is not on a whole minute" in capsys.readouterr().err


# --------------------------------------------------------------------------- field names
ECS_NESTED = {"@timestamp": "2026-11-24T10:00:00.000Z", "source": {"ip": "198.51.100.7", "port": 5000},
              "http": {"request": {"method": "GET"}, "response": {"status_code": 404, "body": {"bytes": 512}}},
              "url": {"original": "/a?b=1", "path": "/a"}, "user_agent": {"original": "curl/8"},
              "event": {"duration": 12_300_000}, "service": {"name": "web"}, "ecs": {"version": "8.11"}}
ECS_DOTTED = {"@timestamp": "2026-11-24T10:00:00.000Z", "source.ip": "198.51.100.7",
              "http.request.method": "GET", "http.response.status_code": 404, "http.response.body.bytes": 512,
              "url.path": "/a", "user_agent.original": "curl/8", "event.duration": 12_300_000,
              "service.name": "web"}
NGINX = {"time_iso8601": "2026-11-24T11:00:00+01:00", "remote_addr": "198.51.100.7", "remote_user": "",
         "request": "GET /a HTTP/1.1", "status": "404", "body_bytes_sent": "512", "request_time": "0.012",
         "http_referer": "", "http_user_agent": "curl/8", "request_method": "GET", "request_uri": "/a",
         "host": "example.org"}
NGINX_LOCAL = {**{k: v for k, v in NGINX.items() if k != "time_iso8601"},
               "time_local": "24/Nov/2026:11:00:00 +0100"}
APPGW = {"resourceId": "/SUBSCRIPTIONS/X/APPLICATIONGATEWAYS/GW", "operationName": "ApplicationGatewayAccess",
         "time": "2026-11-24T10:00:00.0000001Z", "category": "ApplicationGatewayAccessLog",
         "properties": {"instanceId": "appgw_0", "clientIP": "198.51.100.7", "clientPort": 5000,
                        "httpMethod": "GET", "requestUri": "/a", "userAgent": "curl/8", "httpStatus": 404,
                        "receivedBytes": 100, "sentBytes": 512, "timeTaken": 0.012, "host": "example.org"}}
FRONT_DOOR = {"time": "2026-11-24T10:00:00.123Z", "category": "FrontDoorAccessLog",
              "properties": {"trackingReference": "x", "httpMethod": "GET", "requestUri": "/a",
                             "userAgent": "curl/8", "clientIp": "198.51.100.7", "socketIp": "203.0.113.1",
                             "responseBytes": "512", "httpStatusCode": "404", "timeTaken": "0.012"}}
LOG_ANALYTICS = {"TimeGenerated": "2026-11-24T10:00:00Z", "ClientIp": "198.51.100.7", "HttpMethod": "GET",
                 "RequestUri": "/a", "UserAgent": "curl/8", "HttpStatus": 404, "SentBytes": 512,
                 "TimeTaken": 0.012, "Host": "example.org"}
ALB = {"type": "https", "time": "2026-11-24T10:00:00.123456Z", "elb": "app/lb/1", "client_ip": "198.51.100.7",
       "client_port": 5000, "target_processing_time": 0.012, "elb_status_code": 404, "target_status_code": "404",
       "sent_bytes": 512, "request_verb": "GET", "request_url": "https://example.org:443/a",
       "user_agent": "curl/8"}
FLUENT_BIT = {"time": "2026-11-24T10:00:00Z", "ip": "198.51.100.7", "code": 200, "status": 404,
              "method": "GET", "path": "/a", "size": 512, "agent": "curl/8"}
GENERIC_TS = {"ts": 1795514400123, "clientip": "198.51.100.7", "status": 404}

SHAPES: dict[str, tuple[dict[str, Any], dict[str, str]]] = {
    "ecs nested": (ECS_NESTED, {"timestamp": "@timestamp", "client_ip": "source.ip",
                                "status": "http.response.status_code", "method": "http.request.method",
                                "path": "url.path", "bytes": "http.response.body.bytes",
                                "latency_ms": "event.duration", "latency_unit": "ns",
                                "user_agent": "user_agent.original", "source": "service.name"}),
    "ecs dotted keys": (ECS_DOTTED, {"timestamp": "@timestamp", "client_ip": "source.ip",
                                     "status": "http.response.status_code", "latency_unit": "ns",
                                     "user_agent": "user_agent.original", "bytes": "http.response.body.bytes"}),
    "nginx": (NGINX, {"timestamp": "time_iso8601", "client_ip": "remote_addr", "status": "status",
                      "method": "request_method", "path": "request_uri", "bytes": "body_bytes_sent",
                      "latency_ms": "request_time", "latency_unit": "s", "user_agent": "http_user_agent"}),
    "nginx time_local": (NGINX_LOCAL, {"timestamp": "time_local", "client_ip": "remote_addr"}),
    "azure application gateway": (APPGW, {"timestamp": "time", "client_ip": "properties.clientIP",
                                          "status": "properties.httpStatus", "path": "properties.requestUri",
                                          "bytes": "properties.sentBytes", "latency_ms": "properties.timeTaken",
                                          "latency_unit": "s", "user_agent": "properties.userAgent"}),
    "azure front door": (FRONT_DOOR, {"timestamp": "time", "client_ip": "properties.clientIp",
                                      "status": "properties.httpStatusCode", "bytes": "properties.responseBytes",
                                      "latency_unit": "s"}),
    "azure log analytics": (LOG_ANALYTICS, {"timestamp": "TimeGenerated", "client_ip": "ClientIp",
                                            "status": "HttpStatus", "path": "RequestUri", "latency_unit": "s"}),
    "aws alb": (ALB, {"timestamp": "time", "client_ip": "client_ip", "status": "elb_status_code",
                      "method": "request_verb", "path": "request_url", "bytes": "sent_bytes",
                      "latency_ms": "target_processing_time", "latency_unit": "s", "user_agent": "user_agent"}),
    "fluent bit": (FLUENT_BIT, {"timestamp": "time", "client_ip": "ip", "status": "status", "bytes": "size",
                                "user_agent": "agent"}),
    "generic ts": (GENERIC_TS, {"timestamp": "ts", "client_ip": "clientip"}),
}


@pytest.mark.parametrize("shape", list(SHAPES))
def test_shippers_names_are_detected_and_every_record_is_valid(shape: str,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    record, expected = SHAPES[shape]
    mapping, detection = detect_mapping([record] * 3)
    for name, key in expected.items():
        assert getattr(mapping, name) == key, name
    assert "problem" not in detection
    lines = [orjson.dumps(record)] * 3
    partials = []
    for route in ROUTES:
        if route == "c" and aggregate_module.native_ingest is None:
            continue
        aggregate = _aggregate(lines, route=route, monkeypatch=monkeypatch, mapping=mapping)
        assert aggregate.valid == 3 and aggregate.invalid == 0, route
        assert dict(aggregate.ips) == {"198.51.100.7": 3}
        partials.append(aggregate.to_partial())
    assert all(partial == partials[0] for partial in partials)
    summary = summarize(Aggregate.from_partial(partials[0]))
    if summary["latency_ms"]["count"]:
        assert summary["latency_ms"]["max"] == pytest.approx(12.3 if "ecs" in shape else 12.0, rel=1e-12)


def test_ecs_nanoseconds_read_as_the_same_millisecond_doubles() -> None:
    lines = [orjson.dumps({**ECS_DOTTED, "event.duration": round(ms * 1_000_000)}) for ms in (12.3, 0.1, 987.6)]
    mapping, _ = detect_mapping([orjson.loads(line) for line in lines])
    latency = analyze_lines(lines, mapping=mapping).latency
    assert (latency.min, latency.max) == (0.1, 987.6)


def test_a_given_field_wins_over_detection() -> None:
    record = {"ts": "2026-11-24T10:00:00Z", "time": "2026-11-24T11:00:00Z", "ip": "198.51.100.7",
              "status": 200}
    mapping, detection = detect_mapping([record], {"timestamp": "time", "latency_unit": "s"})
    assert mapping.timestamp == "time" and detection["fields"]["timestamp"]["how"] == "explicit"
    assert mapping.latency_unit == "s"
    assert detect_mapping([record])[0].timestamp == "time"  # earlier in the candidates than ts
    assert detection["fields"]["client_ip"] == {"key": "ip", "how": "detected", "usable_in": 1}


def test_the_most_usable_candidate_wins_and_the_others_are_recorded() -> None:
    # nginx's "host" is the Host header, not an address: not usable as the client IP.
    records = [{**NGINX, "host": "example.org"}, {**NGINX, "host": "198.51.100.9"}]
    mapping, detection = detect_mapping(records)
    assert mapping.client_ip == "remote_addr"
    assert detection["fields"]["client_ip"]["also_usable"] == ["host"]


def test_an_unknown_shape_names_what_was_looked_for_and_the_keys_seen(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    record = {"when": "2026-11-24T10:00:00Z", "peer": {"addr": "198.51.100.7"}, "status": 200}
    log = tmp_path / "odd.jsonl"
    log.write_bytes(orjson.dumps(record) + b"\n")
    mapping, detection = choose_mapping([str(log)])
    assert detection["fields"]["timestamp"]["how"] == "not found"
    assert "@timestamp" in detection["fields"]["timestamp"]["looked_for"]
    assert detection["keys_seen"] == ["when", "peer.addr", "status"]
    assert detection["problem"].startswith("no usable key for timestamp (looked for timestamp, @timestamp,")
    aggregate = analyze_paths([log], mapping=mapping, detection=detection, workers=1)
    assert aggregate.invalid_reasons == {"missing_timestamp": 1}
    assert aggregate.invalid_sample[0].message == (
        "required field 'timestamp' is missing; the record's keys: when, peer.addr, status")
    partial = tmp_path / "p.json"
    assert analyze_main([str(log), "-o", str(partial)]) == 0
    err = capsys.readouterr().err
    assert "warning: no usable key for timestamp" in err and "client_ip (looked for" in err
    assert "keys were when, peer.addr, status" in err
    assert analyze_main([str(log), "-o", str(partial), "--field", "timestamp=when",
                         "--field", "client_ip=peer.addr"]) == 0
    assert read_partial_file(partial).to_partial()["lines"] == 1
    assert read_partial_file(partial).valid == 1


def test_the_mapping_is_recorded_in_partial_summary_and_report(tmp_path: Path) -> None:
    log = tmp_path / "nginx.jsonl.gz"
    import gzip

    log.write_bytes(gzip.compress(b"".join(orjson.dumps(NGINX) + b"\n" for _ in range(5))))
    partial = tmp_path / "p.json"
    assert analyze_main([str(log), "-o", str(partial)]) == 0
    document = read_partial_file(partial).to_partial()
    assert document["mapping"]["client_ip"] == "remote_addr"
    (entry,) = document["field_mappings"]
    assert entry["detection"]["fields"]["latency_ms"] == {"key": "request_time", "how": "detected",
                                                          "usable_in": 5, "unit": "s"}
    assert merge_main([str(partial), str(partial), "-d", str(tmp_path / "out")]) == 0
    summary = orjson.loads((tmp_path / "out" / "summary.json").read_bytes())
    assert summary["field_mappings"][0]["partials"] == 2
    assert summary["totals"]["valid"] == 10
    report = (tmp_path / "out" / "report.html").read_text()
    assert "Fields read" in report and "remote_addr" in report and "unit s" in report


def test_no_detect_keeps_the_default_names(tmp_path: Path) -> None:
    log = tmp_path / "nginx.jsonl"
    log.write_bytes(orjson.dumps(NGINX) + b"\n")
    partial = tmp_path / "p.json"
    assert analyze_main([str(log), "-o", str(partial), "--no-detect"]) == 0
    document = read_partial_file(partial).to_partial()
    assert document["invalid_reasons"] == {"missing_timestamp": 1}
    assert document["field_mappings"][0]["detection"]["method"] == "default"


def test_field_value_prefers_the_flat_key_then_walks_nested_objects() -> None:
    record = {"a.b": None, "a": {"b": 2}, "c.d": 1, "c": {"d": 3}, "e": "x"}
    assert field_value(record, "a.b") == 2
    assert field_value(record, "c.d") == 1
    assert field_value(record, "e.f") is None
    assert field_value(record, "missing") is None


def test_version_1_partials_are_still_read() -> None:
    partial = analyze_lines([_line(_iso(DAY_MS))]).to_partial()
    for key in ("field_mappings", "window", "outside_window"):
        del partial[key]
    partial["version"] = 1
    del partial["mapping"]["latency_unit"]
    summary = summarize(Aggregate.from_partial(partial))
    assert summary["window"] is None and summary["totals"]["valid"] == 1
    assert "Fields read" not in render_report(summary)


def test_nested_keys_are_read_by_the_fast_routes_not_the_slow_path(monkeypatch: pytest.MonkeyPatch) -> None:
    mapping, _ = detect_mapping([ECS_NESTED])
    calls = []
    original = Aggregate._normalize_or_keep

    def counting(self: Aggregate, source: str, lineno: int, line: bytes) -> Any:
        calls.append(lineno)
        return original(self, source, lineno, line)

    monkeypatch.setattr(Aggregate, "_normalize_or_keep", counting)
    lines = [orjson.dumps({**ECS_NESTED, "source": {"ip": f"198.51.100.{i}"}}) for i in range(50)]
    aggregate = analyze_lines(lines, mapping=mapping)
    assert aggregate.valid == 50
    assert len(calls) <= 1  # the first line teaches the timestamp caches; the rest never come here
