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
