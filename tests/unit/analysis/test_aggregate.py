"""The aggregate against an oracle built from labelled random records, and merge over random splits."""

from __future__ import annotations

import datetime as dt
import itertools
import json
from collections import Counter
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from logproc_analyzer import Aggregate, analyze_lines, merge_aggregates
from logproc_analyzer.aggregate import INVALID_SAMPLE_SIZE
from logproc_analyzer.sketch import bucket_index

BASE = dt.datetime(2026, 11, 24, tzinfo=dt.UTC)
ABSENT = object()  # the key is left out of the record


@st.composite
def timestamps(draw: st.DrawFn) -> tuple[Any, int | None]:
    """(value, expected UTC epoch ms or None when invalid)."""
    moment = BASE + dt.timedelta(milliseconds=draw(st.integers(0, 2 * 86_400_000)))
    ms = int(moment.timestamp() * 1000)
    kind = draw(st.sampled_from(["z", "offset", "ms", "s", "nofrac", "bad", "absent", "numstr"]))
    if kind == "z":
        return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z"), ms
    if kind == "offset":
        tz = dt.timezone(dt.timedelta(minutes=draw(st.sampled_from([-300, 60, 330, 540]))))
        return moment.astimezone(tz).isoformat(timespec="milliseconds"), ms
    if kind == "ms":
        return ms, ms
    if kind == "s":
        return ms // 1000, ms // 1000 * 1000
    if kind == "nofrac":
        return moment.strftime("%Y-%m-%dT%H:%M:%SZ"), ms // 1000 * 1000
    if kind == "numstr":
        return str(ms), ms
    if kind == "absent":
        return ABSENT, None
    return draw(st.sampled_from(["2026-11-24T25:00:00Z", "soon", "2026-11-24T10:00:61.000Z", True, -1,
                                 "2026-11-24T10:00:00.000+99:00", None, [1]])), None


IPS = [("192.0.2.1", "192.0.2.1"), ("198.51.100.7", "198.51.100.7"), ("2001:db8::5", "2001:db8::5"),
       ("2001:DB8:0:0::5", "2001:db8::5"), ("203.0.113.66", "203.0.113.66"), ("300.1.1.1", None),
       ("host.example", None), (7, None), (ABSENT, None)]
STATUSES = [(200, 200), (200, 200), (404, 404), (503, 503), (500, 500), (301, 301), ("404", 404),
            (99, None), (700, None), ("OK", None), (ABSENT, None), (None, None), (200.0, None)]
TEXTS = [("GET", "GET"), ("/a/<b>?q=\"x\"", "/a/<b>?q=\"x\""), ("ünïcødé", "ünïcødé"), ("", ""),
         (ABSENT, "-"), (None, "-"), (12, "12"), ({"x": 1}, "-")]
SIZES = [(0, 0), (512, 512), ("77", 77), (None, None), ("-", None), (ABSENT, None), (-4, None), ("x", None)]
LATENCIES = [(12.5, 12.5), (0, 0), (3, 3), (1000.25, 1000.25), ("7.5", 7.5), (ABSENT, None), (None, None),
             (-1.0, None), ("slow", None), ([1], None)]


@st.composite
def records(draw: st.DrawFn) -> tuple[bytes, dict[str, Any] | None]:
    """A JSON line and what the analyzer must make of it (None: invalid)."""
    ts, ts_ms = draw(timestamps())
    ip, ip_ok = draw(st.sampled_from(IPS))
    status, status_ok = draw(st.sampled_from(STATUSES))
    chosen = {name: draw(st.sampled_from(TEXTS)) for name in ("method", "path", "user_agent", "source")}
    size, size_ok = draw(st.sampled_from(SIZES))
    latency, latency_ok = draw(st.sampled_from(LATENCIES))
    record: dict[str, Any] = {}
    for key, value in (("timestamp", ts), ("client_ip", ip), ("status", status), ("bytes", size),
                       ("latency_ms", latency), *((name, pair[0]) for name, pair in chosen.items())):
        if value is not ABSENT:
            record[key] = value
    keys = list(record)
    order = draw(st.permutations(keys))
    line = orjson.dumps({key: record[key] for key in order})
    if ts_ms is None or ip_ok is None or status_ok is None:
        return line, None
    expected = {"minute": ts_ms // 60000, "ip": ip_ok, "status": status_ok, "bytes": size_ok,
                "latency": latency_ok, **{name: pair[1] for name, pair in chosen.items()}}
    return line, expected


BROKEN = [b'{"timestamp": "2026-11-24T10:00:00Z", "client_ip": ', b"\xff\xfe\x00garbage", b"[1, 2, 3]",
          b'"just a string"', b"42", b"not a log line at all", b"{}"]


@st.composite
def log_lines(draw: st.DrawFn) -> list[tuple[bytes, dict[str, Any] | str | None]]:
    items: list[tuple[bytes, dict[str, Any] | str | None]] = []
    for _ in range(draw(st.integers(0, 60))):
        choice = draw(st.integers(0, 9))
        if choice == 0:
            items.append((draw(st.sampled_from(BROKEN)), None))
        elif choice == 1:
            items.append((draw(st.sampled_from([b"", b"   ", b"\r"])), "blank"))
        else:
            items.append(draw(records()))
    return items


def _expected_partial_parts(items: list[tuple[bytes, Any]]) -> dict[str, Any]:
    valid = [e for _, e in items if isinstance(e, dict)]
    minutes: dict[str, dict[str, int]] = {}
    for e in valid:
        row = minutes.setdefault(str(e["minute"]), {})
        row[str(e["status"])] = row.get(str(e["status"]), 0) + 1
    latency = Counter(bucket_index(e["latency"]) for e in valid if e["latency"] is not None)
    return {
        "lines": sum(1 for _, e in items if e != "blank"),
        "blank_lines": sum(1 for _, e in items if e == "blank"),
        "invalid": sum(1 for _, e in items if e is None),
        "minutes": minutes,
        "ips": Counter(e["ip"] for e in valid),
        "ip_server_errors": Counter(e["ip"] for e in valid if e["status"] >= 500),
        "ip_client_errors": Counter(e["ip"] for e in valid if 400 <= e["status"] < 500),
        "paths": Counter(e["path"] for e in valid),
        "user_agents": Counter(e["user_agent"] for e in valid),
        "kinds": Counter((e["status"], e["method"], e["source"]) for e in valid),
        "bytes": {"total": sum(e["bytes"] for e in valid if e["bytes"] is not None),
                  "records": sum(1 for e in valid if e["bytes"] is not None)},
        "latency_zero": latency.pop(None, 0),
        "latency_buckets": {str(k): v for k, v in sorted(latency.items())},
    }


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(log_lines())
def test_aggregate_matches_the_labelled_oracle(items: list[tuple[bytes, Any]]) -> None:
    # Twice through the same aggregate: the second pass runs on warm fast-path caches and must add
    # exactly the same counts as the first (cold, slow-path) pass.
    aggregate = Aggregate()
    lines = [line for line, _ in items]
    aggregate.ingest_lines(lines, source="a")
    aggregate.ingest_lines(lines, source="a", first_line=len(lines) + 1)
    partial = aggregate.to_partial()
    expected = _expected_partial_parts(items + items)

    assert partial["lines"] == expected["lines"]
    assert partial["blank_lines"] == expected["blank_lines"]
    assert sum(partial["invalid_reasons"].values()) == expected["invalid"]
    assert partial["minutes"] == expected["minutes"]
    assert partial["ips"] == dict(expected["ips"])
    assert partial["ip_server_errors"] == dict(expected["ip_server_errors"])
    assert partial["ip_client_errors"] == dict(expected["ip_client_errors"])
    assert partial["paths"] == dict(expected["paths"])
    assert partial["user_agents"] == dict(expected["user_agents"])
    assert Counter({(s, m, o): n for s, m, o, n in partial["kinds"]}) == expected["kinds"]
    assert partial["bytes"] == expected["bytes"]
    assert partial["latency_ms"]["zero"] == expected["latency_zero"]
    assert partial["latency_ms"]["buckets"] == expected["latency_buckets"]
    assert aggregate.valid + aggregate.invalid == aggregate.lines


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(log_lines(), st.lists(st.integers(0, 10_000), max_size=6))
def test_merge_of_any_split_equals_the_whole(items: list[tuple[bytes, Any]], cut_seeds: list[int]) -> None:
    lines = [line for line, _ in items]
    cuts = sorted({seed % (len(lines) + 1) for seed in cut_seeds} | {0, len(lines)})
    parts = [
        analyze_lines(lines[start:end], source="day.jsonl", first_line=start + 1)
        for start, end in itertools.pairwise(cuts)
    ]
    # Through the JSON form, as the partials travel between Batch tasks and the merge step.
    loaded = [Aggregate.from_partial(orjson.loads(orjson.dumps(p.to_partial()))) for p in parts]
    merged = merge_aggregates(loaded).to_partial()
    whole = analyze_lines(lines, source="day.jsonl").to_partial()
    merged.pop("inputs")
    whole.pop("inputs")
    assert merged == whole


def test_invalid_lines_are_counted_by_reason_with_line_numbers_and_a_sample() -> None:
    lines = [
        b'{"timestamp": 1795529002123, "client_ip": "192.0.2.1", "status": 200}',
        b'{"timestamp": "broken',
        b"\xff\xfe not utf-8",
        b"",
        b'{"timestamp": 1795529002123, "status": 200}',
        b'{"timestamp": 1795529002123, "client_ip": "not-an-ip", "status": 200}',
        b'{"timestamp": "2026-13-01T00:00:00Z", "client_ip": "192.0.2.1", "status": 200}',
        b'{"timestamp": 1795529002123, "client_ip": "192.0.2.1", "status": 999}',
        b"[1]",
        b"hello world",
    ]
    aggregate = analyze_lines(lines, source="x.jsonl")
    assert aggregate.valid == 1
    assert aggregate.blank_lines == 1
    assert dict(aggregate.invalid_reasons) == {
        "malformed_json": 1, "not_utf8": 1, "missing_client_ip": 1, "invalid_client_ip": 1,
        "invalid_timestamp": 1, "invalid_status": 1, "not_an_object": 1, "unrecognised_line": 1,
    }
    by_line = {entry.line: entry for entry in aggregate.invalid_sample}
    assert sorted(by_line) == [2, 3, 5, 6, 7, 8, 9, 10]
    assert by_line[6].reason == "invalid_client_ip"
    assert "not-an-ip" in by_line[6].message
    assert by_line[3].text.startswith("\\xff\\xfe")
    assert all(entry.source == "x.jsonl" for entry in aggregate.invalid_sample)


def test_invalid_sample_is_capped_but_all_invalid_lines_are_counted() -> None:
    aggregate = analyze_lines([b"{bad"] * (INVALID_SAMPLE_SIZE * 3))
    assert aggregate.invalid == INVALID_SAMPLE_SIZE * 3
    assert len(aggregate.invalid_sample) == INVALID_SAMPLE_SIZE
    assert [entry.line for entry in aggregate.invalid_sample] == list(range(1, INVALID_SAMPLE_SIZE + 1))


@settings(max_examples=200, deadline=None)
@given(st.lists(st.binary(max_size=80), max_size=30))
def test_arbitrary_bytes_never_crash_and_every_line_is_accounted_for(lines: list[bytes]) -> None:
    lines = [line.replace(b"\n", b" ") for line in lines]
    aggregate = analyze_lines(lines)
    assert aggregate.lines + aggregate.blank_lines == len(lines)
    assert aggregate.valid + aggregate.invalid == aggregate.lines


def test_kafka_envelopes_are_unwrapped() -> None:
    inner = {"timestamp": "2026-11-24T10:00:00.000Z", "client_ip": "192.0.2.1", "status": 200, "path": "/x"}
    kafka_ms = int(dt.datetime(2026, 11, 24, 10, 0, tzinfo=dt.UTC).timestamp() * 1000) + 999
    envelope = {"topic": "logs", "partition": 0, "offset": 5, "timestamp": kafka_ms, "key": None,
                "headers": []}
    clf = '192.0.2.9 - - [24/Nov/2026:10:00:00 +0000] "GET /clf HTTP/1.1" 404 12 "-" "agent"'
    lines = [
        orjson.dumps({**envelope, "value": json.dumps(inner)}),  # value as a JSON string
        orjson.dumps({**envelope, "value": inner}),  # value as an object
        orjson.dumps({**envelope, "value": clf}),  # value as a CLF line
        # No timestamp in the record: the Kafka timestamp stands in.
        orjson.dumps({**envelope, "value": {k: v for k, v in inner.items() if k != "timestamp"}}),
        orjson.dumps({**envelope, "value": "{broken"}),
        orjson.dumps({**envelope, "value": 17}),
    ]
    aggregate = analyze_lines(lines)
    partial = aggregate.to_partial()
    assert aggregate.valid == 4
    assert dict(aggregate.invalid_reasons) == {"malformed_json": 1, "not_an_object": 1}
    assert partial["paths"] == {"/x": 3, "/clf": 1}
    assert partial["minutes"] == {str(kafka_ms // 60000): {"200": 3, "404": 1}}


def test_field_mapping_reads_other_key_names() -> None:
    from logproc_analyzer import FieldMapping

    mapping = FieldMapping().with_overrides({"timestamp": "@timestamp", "client_ip": "remote_addr",
                                             "status": "code"})
    line = orjson.dumps({"@timestamp": "2026-11-24T10:00:00Z", "remote_addr": "192.0.2.1", "code": 201})
    aggregate = analyze_lines([line, line], mapping=mapping)
    assert aggregate.valid == 2
    assert aggregate.to_partial()["ips"] == {"192.0.2.1": 2}


def test_clf_lines_are_parsed() -> None:
    lines = [
        '192.0.2.1 - frank [24/Nov/2026:14:03:22 +0000] "GET /index.html HTTP/1.1" 200 2326 '
        '"https://example.com/" "Mozilla/5.0 (X11)"',
        '2001:db8::1 - - [24/Nov/2026:15:03:22 +0100] "POST /api HTTP/2.0" 503 - "-" "curl/8.5.0"',
        '192.0.2.2 - - [24/Nov/2026:14:03:22 +0000] "GET /common HTTP/1.0" 404 0',  # Common Log Format
        '192.0.2.3 - - [24/Nov/2026:14:03:22 +0000] "-" 408 0 "-" "-"',
        '192.0.2.4 - - [31/Nov/2026:14:03:22 +0000] "GET / HTTP/1.1" 200 1 "-" "-"',  # no 31 November
    ]
    aggregate = analyze_lines(lines)
    partial = aggregate.to_partial()
    assert aggregate.valid == 4
    assert dict(aggregate.invalid_reasons) == {"invalid_timestamp": 1}
    minute = int(dt.datetime(2026, 11, 24, 14, 3, tzinfo=dt.UTC).timestamp()) // 60
    assert partial["minutes"] == {str(minute): {"200": 1, "503": 1, "404": 1, "408": 1}}
    assert partial["paths"] == {"/index.html": 1, "/api": 1, "/common": 1, "-": 1}
    assert partial["user_agents"]["Mozilla/5.0 (X11)"] == 1
    assert partial["bytes"] == {"total": 2326, "records": 3}


def test_partials_reject_other_formats_and_versions() -> None:
    partial = analyze_lines([b'{"timestamp": 0, "client_ip": "192.0.2.1", "status": 200}']).to_partial()
    with pytest.raises(ValueError, match=r"p\.json: partial version 99 is not supported"):
        Aggregate.from_partial({**partial, "version": 99}, where="p.json")
    with pytest.raises(ValueError, match=r"q\.json: not a logproc-analysis-partial"):
        Aggregate.from_partial({"hello": 1}, where="q.json")
    broken = {**partial, "ips": None}
    with pytest.raises(ValueError, match=r"r\.json: malformed partial"):
        Aggregate.from_partial(broken, where="r.json")
    bad_ip = {**partial, "ips": {"not an ip": 3}}
    with pytest.raises(ValueError, match=r"r\.json: malformed partial"):
        Aggregate.from_partial(bad_ip, where="r.json")


def test_slow_path_lines_do_not_accumulate_memory() -> None:
    import tracemalloc

    # A non-canonical IPv6 address, or a number as the method, sends a line to the slow path.
    lines = [orjson.dumps({"timestamp": 0, "client_ip": "2001:DB8::1", "status": 200}),
             orjson.dumps({"timestamp": 0, "client_ip": "192.0.2.1", "status": 200, "method": 5})] * 10_000
    aggregate = Aggregate()
    aggregate.ingest_lines(lines, source="x")  # warm the caches and counters
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        aggregate.ingest_lines(lines, source="x")
        grown = tracemalloc.get_traced_memory()[0] - before
    finally:
        tracemalloc.stop()
    assert aggregate.valid == 40_000
    assert grown < 100_000, f"{grown} bytes kept after 20 000 slow-path lines"
