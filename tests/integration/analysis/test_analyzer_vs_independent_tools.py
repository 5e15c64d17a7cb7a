"""Second opinions on the analyzer's numbers: DuckDB on the JSON copy, GoAccess on the CLF copy.

Both copies come from the same generated day (with deliberately broken records mixed in). The
analyzer runs split over two worker processes, as it does on a Batch node.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import os
import shutil
import subprocess
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from logproc_analyzer import analyze as analyze_module
from logproc_analyzer import analyze_paths, summarize
from logproc_analyzer.sketch import RELATIVE_ACCURACY
from logproc_local import sample_logs
from logproc_local.duckdb_shapes import DUCKDB_SHAPES

DAY = dt.date(2026, 11, 24)
COUNT = 30_000
BAD_SHARE = 0.01


@pytest.fixture(scope="module")
def day_files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    directory = tmp_path_factory.mktemp("generated-day")
    json_path, clf_path = directory / "day.jsonl", directory / "access.log"
    with json_path.open("wb") as json_out, clf_path.open("wb") as clf_out:
        for record in sample_logs.generate(DAY, COUNT, seed=11, bad_share=BAD_SHARE):
            json_out.write(record.value + b"\n")
            line = (sample_logs.to_combined_log_line(record.fields, record.timestamp_ms).encode()
                    if record.fields is not None else record.value)
            clf_out.write(line + b"\n")
    return {"json": json_path, "clf": clf_path}


def _analyze_split(path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    monkeypatch.setattr(analyze_module, "SPLIT_MIN_BYTES", 1)  # split even this small file over workers
    aggregate = analyze_paths([path], workers=2)
    return {"aggregate": aggregate, "summary": summarize(aggregate, top_n=10)}


def _top_agrees(ours: dict[str, int], theirs: list[tuple[str, int]], n: int = 10) -> None:
    """Top-n lists agree: same counts in order, and every listed key has that count in our full counter.

    Keys tied at the cut-off may be listed in a different order by another tool, so ties are
    checked through the counts, not the order.
    """
    ranked = sorted(ours.items(), key=lambda item: (-item[1], item[0]))[:n]
    assert [count for _, count in theirs[:n]] == [count for _, count in ranked]
    for key, count in theirs[:n]:
        assert ours.get(key) == count, key


def test_analyzer_agrees_with_duckdb_on_the_json_copy(day_files: dict[str, Path],
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    duckdb = pytest.importorskip("duckdb")
    result = _analyze_split(day_files["json"], monkeypatch)
    aggregate, summary = result["aggregate"], result["summary"]

    con = duckdb.connect()
    con.execute(f"""
        CREATE TABLE raw AS SELECT * FROM read_json('{day_files["json"]}', format='newline_delimited',
            ignore_errors=true, columns={{timestamp: 'VARCHAR', client_ip: 'VARCHAR', method: 'VARCHAR',
            path: 'VARCHAR', status: 'BIGINT', bytes: 'BIGINT', latency_ms: 'DOUBLE', user_agent: 'VARCHAR',
            source: 'VARCHAR'}})
    """)
    con.execute(r"""
        CREATE TABLE logs AS SELECT *,
            CASE WHEN regexp_full_match(timestamp, '\d+') THEN CAST(timestamp AS BIGINT)
                 ELSE epoch_ms(CAST(timestamp AS TIMESTAMPTZ)) END AS ts_ms
        FROM raw WHERE client_ip IS NOT NULL AND status IS NOT NULL AND timestamp IS NOT NULL
    """)

    def rows(sql: str) -> list[tuple[Any, ...]]:
        return con.execute(sql).fetchall()

    (valid,) = rows("SELECT count(*) FROM logs")[0]
    assert summary["totals"]["valid"] == valid
    assert summary["totals"]["lines"] == COUNT
    assert summary["totals"]["invalid"] == COUNT - valid == round(COUNT * BAD_SHARE)

    assert summary["status"] == {str(s): n for s, n in rows("SELECT status, count(*) FROM logs GROUP BY 1 ORDER BY 1")}
    per_minute = rows("""
        SELECT ts_ms // 60000, count(*), count(*) FILTER (status BETWEEN 400 AND 499),
               count(*) FILTER (status >= 500)
        FROM logs GROUP BY 1 ORDER BY 1""")
    block = summary["per_minute"]
    ours_minutes = [(int(dt.datetime.fromisoformat(m).timestamp()) // 60, n, c4, c5) for m, n, c4, c5 in
                    zip(block["minute"], block["requests"], block["client_errors"], block["server_errors"],
                        strict=True)]
    assert ours_minutes == per_minute
    per_hour = rows("SELECT ts_ms // 3600000 % 24, count(*), count(*) FILTER (status >= 500) "
                    "FROM logs GROUP BY 1 ORDER BY 1")
    assert [(int(h["hour"][11:13]), h["requests"], h["server_errors"]) for h in summary["per_hour"]] == per_hour

    assert dict(aggregate.ips) == dict(rows("SELECT client_ip, count(*) FROM logs GROUP BY 1"))
    (unique_ips,) = rows("SELECT count(DISTINCT client_ip) FROM logs")[0]
    assert summary["unique_ips"] == unique_ips
    for column, key in (("client_ip", "ips"), ("path", "paths"), ("user_agent", "user_agents")):
        theirs = rows(f"SELECT {column}, count(*) AS n FROM logs GROUP BY 1 ORDER BY n DESC, 1 LIMIT 10")
        assert [(row["key"], row["count"]) for row in summary["top"][key]] == theirs
    assert summary["methods"] == dict(rows("SELECT method, count(*) FROM logs GROUP BY 1 ORDER BY 1"))
    assert summary["sources"] == dict(rows("SELECT source, count(*) FROM logs GROUP BY 1 ORDER BY 1"))
    total_bytes, byte_records = rows("SELECT sum(bytes), count(bytes) FROM logs")[0]
    assert summary["bytes"]["total"] == total_bytes
    assert summary["bytes"]["records"] == byte_records

    latencies = [value for (value,) in rows("SELECT latency_ms FROM logs ORDER BY 1")]
    assert summary["latency_ms"]["count"] == len(latencies)
    assert summary["latency_ms"]["min"] == latencies[0]
    assert summary["latency_ms"]["max"] == latencies[-1]
    for q in (0.5, 0.9, 0.95, 0.99):
        exact = latencies[math.floor(q * (len(latencies) - 1))]
        ours = summary["latency_ms"][f"p{round(q * 100)}"]
        assert abs(ours - exact) <= RELATIVE_ACCURACY * exact * (1 + 1e-9), (q, ours, exact)
    (mean,) = rows("SELECT avg(latency_ms) FROM logs")[0]
    assert summary["latency_ms"]["mean"] == pytest.approx(mean, rel=1e-9)


def _goaccess_json(log: Path, out: Path) -> dict[str, Any]:
    subprocess.run(
        ["goaccess", str(log), "--log-format=COMBINED", "--no-global-config", "--max-items=100000",
         "-o", str(out)],
        check=True, capture_output=True, timeout=300, env={**os.environ, "TZ": "UTC"},
    )
    return json.loads(out.read_text())


def test_analyzer_agrees_with_goaccess_on_the_clf_copy(day_files: dict[str, Path], tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    if shutil.which("goaccess") is None:
        pytest.skip("goaccess is not on PATH (Debian package 'goaccess'; CI installs it through the Makefile)")
    goaccess = _goaccess_json(day_files["clf"], tmp_path / "goaccess.json")
    result = _analyze_split(day_files["clf"], monkeypatch)
    aggregate, summary = result["aggregate"], result["summary"]

    general = goaccess["general"]
    assert summary["totals"]["lines"] == general["total_requests"] == COUNT
    assert summary["totals"]["valid"] == general["valid_requests"]
    assert summary["totals"]["invalid"] == general["failed_requests"]
    assert summary["bytes"]["total"] == general["bandwidth"]

    status: Counter[str] = Counter()
    for group in goaccess["status_codes"]["data"]:
        for item in group["items"]:
            status[item["data"][:3]] += item["hits"]["count"]
    assert summary["status"] == dict(sorted(status.items()))

    hosts = [(row["data"], row["hits"]["count"]) for row in goaccess["hosts"]["data"]]
    _top_agrees(dict(aggregate.ips), hosts)
    assert [row["key"] for row in summary["top"]["ips"]][:1] == [sample_logs.NOISY_CLIENT_IP] == [hosts[0][0]]

    hours = {int(row["data"]): row["hits"]["count"] for row in goaccess["visit_time"]["data"]}
    assert {int(h["hour"][11:13]): h["requests"] for h in summary["per_hour"]} == hours


# --------------------------------------------------------------------------- window and shippers' names
DAY_START_MS = int(dt.datetime.combine(DAY, dt.time(), tzinfo=dt.UTC).timestamp() * 1000)
DAY_END_MS = DAY_START_MS + 86_400_000
OUTSIDE_SHARE = 0.005



def _shaped(fields: dict[str, Any], timestamp_ms: int, shape: str) -> dict[str, Any]:
    if shape == "ecs":
        return {"@timestamp": fields["timestamp"], "source": {"ip": fields["client_ip"]},
                "http": {"request": {"method": fields["method"]},
                         "response": {"status_code": fields["status"], "body": {"bytes": fields["bytes"]}}},
                "url": {"path": fields["path"]}, "user_agent": {"original": fields["user_agent"]},
                "event": {"duration": round(fields["latency_ms"] * 1_000_000)},
                "service": {"name": fields["source"]}, "ecs": {"version": "8.11.0"}}
    if shape == "nginx":
        moment = dt.datetime.fromtimestamp(timestamp_ms / 1000, tz=dt.timezone(dt.timedelta(hours=1)))
        return {"time_iso8601": moment.isoformat(timespec="milliseconds"), "remote_addr": fields["client_ip"],
                "request": f"{fields['method']} {fields['path']} HTTP/1.1", "status": str(fields["status"]),
                "body_bytes_sent": str(fields["bytes"]), "request_time": f"{fields['latency_ms'] / 1000:.4f}",
                "http_user_agent": fields["user_agent"], "request_method": fields["method"],
                "request_uri": fields["path"], "host": "example.org"}
    return fields


@pytest.fixture(scope="module")
def shaped_days(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The generated day in three key shapes, with OUTSIDE_SHARE of its records moved 1-30 hours
    before or after the day (late arrivals, device clocks) and the broken records as they are."""
    import random

    import orjson

    directory = tmp_path_factory.mktemp("shaped-days")
    rng = random.Random(3)
    records: list[tuple[dict[str, Any] | None, int, bytes]] = []
    for record in sample_logs.generate(DAY, COUNT, seed=12, bad_share=BAD_SHARE):
        fields, timestamp_ms = record.fields, record.timestamp_ms
        if fields is not None and rng.random() < OUTSIDE_SHARE:
            timestamp_ms += rng.choice((-1, 1)) * rng.randrange(3_600_000, 30 * 3_600_000)
            fields = {**fields, "timestamp": timestamp_ms}
        records.append((fields, timestamp_ms, record.value))
    paths = {}
    for shape in DUCKDB_SHAPES:
        paths[shape] = directory / f"day-{shape}.jsonl"
        with paths[shape].open("wb") as out:
            for fields, timestamp_ms, value in records:
                out.write((value if fields is None else orjson.dumps(_shaped(fields, timestamp_ms, shape))) + b"\n")
    return paths


@pytest.mark.parametrize("shape", list(DUCKDB_SHAPES))
def test_window_and_shippers_names_agree_with_duckdb(shape: str, shaped_days: dict[str, Path],
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    duckdb = pytest.importorskip("duckdb")
    from logproc_analyzer.analyze import choose_mapping
    from logproc_analyzer.fields import Window

    path = shaped_days[shape]
    mapping, detection = choose_mapping([str(path)])
    assert "problem" not in detection
    monkeypatch.setattr(analyze_module, "SPLIT_MIN_BYTES", 1)
    aggregate = analyze_paths([path], workers=2, mapping=mapping, detection=detection,
                              window=Window(DAY_START_MS, DAY_END_MS))
    summary = summarize(aggregate, top_n=10)

    con = duckdb.connect()
    columns, select = DUCKDB_SHAPES[shape]
    con.execute(f"CREATE TABLE raw AS SELECT {select} FROM read_json('{path}', format='newline_delimited', "
                f"ignore_errors=true, columns={columns})")
    con.execute(r"""
        CREATE TABLE logs AS SELECT *,
            CASE WHEN regexp_full_match(timestamp, '\d+') THEN CAST(timestamp AS BIGINT)
                 ELSE epoch_ms(CAST(timestamp AS TIMESTAMPTZ)) END AS ts_ms
        FROM raw WHERE client_ip IS NOT NULL AND status IS NOT NULL AND timestamp IS NOT NULL""")

    def rows(sql: str) -> list[tuple[Any, ...]]:
        return con.execute(sql).fetchall()

    in_day = f"ts_ms >= {DAY_START_MS} AND ts_ms < {DAY_END_MS}"
    (valid,) = rows("SELECT count(*) FROM logs")[0]
    assert summary["totals"]["valid"] == valid
    assert summary["totals"]["invalid"] == COUNT - valid == round(COUNT * BAD_SHARE)
    assert summary["status"] == {str(s): n for s, n in rows("SELECT status, count(*) FROM logs GROUP BY 1 ORDER BY 1")}

    before, earliest, after, latest = rows(f"""
        SELECT count(*) FILTER (ts_ms < {DAY_START_MS}), min(ts_ms), count(*) FILTER (ts_ms >= {DAY_END_MS}),
               max(ts_ms) FROM logs""")[0]
    assert before > 10 and after > 10  # the corpus does have records on both sides
    window = summary["window"]
    assert window["before"]["records"] == before
    assert window["after"]["records"] == after
    assert window["before"]["max_skew_seconds"] == (DAY_START_MS - earliest) / 1000
    assert window["after"]["max_skew_seconds"] == (latest - DAY_END_MS) / 1000
    assert window["in_window"] == valid - before - after

    per_minute = rows(f"""
        SELECT ts_ms // 60000, count(*), count(*) FILTER (status BETWEEN 400 AND 499),
               count(*) FILTER (status >= 500)
        FROM logs WHERE {in_day} GROUP BY 1 ORDER BY 1""")
    block = summary["per_minute"]
    ours_minutes = [(int(dt.datetime.fromisoformat(m).timestamp()) // 60, n, c4, c5) for m, n, c4, c5 in
                    zip(block["minute"], block["requests"], block["client_errors"], block["server_errors"],
                        strict=True)]
    assert ours_minutes == per_minute
    per_hour = rows(f"SELECT ts_ms // 3600000 % 24, count(*), count(*) FILTER (status >= 500) "
                    f"FROM logs WHERE {in_day} GROUP BY 1 ORDER BY 1")
    assert len(summary["per_hour"]) == 24
    assert [(int(h["hour"][11:13]), h["requests"], h["server_errors"]) for h in summary["per_hour"]] == per_hour

    assert dict(aggregate.ips) == dict(rows("SELECT client_ip, count(*) FROM logs GROUP BY 1"))
    for column, key in (("path", "paths"), ("user_agent", "user_agents")):
        theirs = rows(f"SELECT {column}, count(*) AS n FROM logs GROUP BY 1 ORDER BY n DESC, 1 LIMIT 10")
        assert [(row["key"], row["count"]) for row in summary["top"][key]] == theirs
    assert summary["methods"] == dict(rows("SELECT method, count(*) FROM logs GROUP BY 1 ORDER BY 1"))
    total_bytes, byte_records = rows("SELECT sum(bytes), count(bytes) FROM logs")[0]
    assert (summary["bytes"]["total"], summary["bytes"]["records"]) == (total_bytes, byte_records)
    latencies = [value for (value,) in rows("SELECT latency_ms FROM logs WHERE latency_ms IS NOT NULL ORDER BY 1")]
    assert summary["latency_ms"]["count"] == len(latencies)
    assert (summary["latency_ms"]["min"], summary["latency_ms"]["max"]) == (latencies[0], latencies[-1])
    (mean,) = rows("SELECT avg(latency_ms) FROM logs")[0]
    assert summary["latency_ms"]["mean"] == pytest.approx(mean, rel=1e-9)
    (entry,) = summary["field_mappings"]
    assert entry["mapping"]["client_ip"] == {"default": "client_ip", "ecs": "source.ip", "nginx": "remote_addr"}[shape]
