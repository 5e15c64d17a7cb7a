"""Benchmark: the log analyzer vs DuckDB and vs polars computing the same aggregates.

A generated day of JSON-lines records (``sample_logs.generate``; ~280 bytes a record, ~280 MB per
million) is analysed by three contenders, each in its own subprocess so that its peak memory is its
own, all allowed the same number of cores (``--workers``, default 2):

* analyzer: ``analyze_paths(workers=N)`` (the file cut into byte ranges at line boundaries, one
  worker process per range, partials merged) and ``summarize()``.
* duckdb:   ``read_json`` into a table, then the same aggregates in SQL (``SET threads=N``).
* polars:   ``read_ndjson``, then the same aggregates as expressions (``POLARS_MAX_THREADS=N``).

The aggregates: valid/invalid counts, status histogram, requests/4xx/5xx per minute and per hour,
requests/4xx/5xx per client IP (all of them, which the anomaly detection needs), unique IPs, top-10
paths and user agents, methods, sources, bytes, latency p50/p90/p95/p99. The analyzer also validates
every IP address and timestamp, keeps invalid lines aside and runs the anomaly detection, which the
other two are not asked to do.

Memory: ``ru_maxrss`` of the contender's process tree (from wait4: the largest single process), and
the peak of the summed PSS of the tree, sampled every 50 ms (counts the analyzer's worker processes
together, shared pages once).

    .venv/bin/python bench/bench_analyzer.py                          # 1M records
    .venv/bin/python bench/bench_analyzer.py --records 1000000 4000000 --repeat 5
    .venv/bin/python bench/bench_analyzer.py --records 500000 --keys ecs --window   # ECS names, a window

``--keys ecs|nginx`` writes the same records with the Elastic Common Schema's nested names or an
nginx ``escape=json`` log_format's names (seconds in request_time, numbers as strings); the analyzer
finds them itself (as ``logproc-analyze`` does, detection included in its time), the other two are
told them. ``--outside-share`` moves that share of records hours before or after the day; with
``--window`` the analyzer is given the day as its window and the other two compute the per-minute and
per-hour figures of the day only. ``--analyzer-path DIR`` runs the analyzer from another checkout's
``analyzer/`` (built in place) as the extra contender ``base``, for before/after comparisons.

Each contender runs ``--repeat`` times, interleaved (A B C A B C ...); the report gives the median
time and the range (min-max) of the runs, never the best. Generated files are kept in --data-dir
and reused. Exit status 1 if a target is missed (``--no-check`` to only print). Targets: analyzer >=
1.2x the faster of DuckDB and polars (medians); analyzer peak memory below DuckDB's; analyzer peak
memory at the largest size within 25% of the smallest.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from analyzer_corpus import DAY, ensure_file  # noqa: E402

from logproc_local.duckdb_shapes import DUCKDB_SHAPES  # noqa: E402

CONTENDERS = ("analyzer", "duckdb", "polars")
EXTRA_CONTENDERS = ("base",)  # the analyzer of --analyzer-path
KEY_SHAPES = tuple(DUCKDB_SHAPES)
QUANTILES = (0.5, 0.9, 0.95, 0.99)
DAY_START_MS = int(dt.datetime.combine(DAY, dt.time(), tzinfo=dt.UTC).timestamp() * 1000)
DAY_END_MS = DAY_START_MS + 86_400_000


# --------------------------------------------------------------------------- the contenders
def run_analyzer(path: str, workers: int, shape: str, window: bool) -> dict[str, Any]:
    from logproc_analyzer import analyze_paths, summarize

    try:  # what logproc-analyze does: the field names from the first records, then the analysis
        from logproc_analyzer.analyze import choose_mapping
        from logproc_analyzer.fields import Window
    except ImportError:  # an analyzer from before detection and windows (--analyzer-path)
        if shape != "default" or window:
            raise SystemExit("this analyzer knows neither field detection nor windows") from None
        summary = summarize(analyze_paths([path], workers=workers))
    else:
        mapping, detection = choose_mapping([path])
        day = Window(DAY_START_MS, DAY_END_MS) if window else None
        bound = os.environ.get("LOGPROC_BENCH_EXACT_KEYS")  # --exact-keys, through the environment
        bounded: dict[str, Any] = {"exact_keys": int(bound)} if bound else {}
        aggregate = analyze_paths([path], workers=workers, mapping=mapping, detection=detection, window=day,
                                  **bounded)
        try:  # analyse + merge to summary and report, as a Batch task and the report step do
            from logproc_analyzer import render_report
            from logproc_analyzer.analyze import merge_partial_files
        except ImportError:  # an analyzer from before the binary partial
            summary = summarize(aggregate)
        else:  # the partial through a file, read back as each version's merge reads it
            with tempfile.TemporaryDirectory() as directory:
                partial = Path(directory, "partial.msgpack")
                partial.write_bytes(aggregate.to_binary())
                summary = summarize(merge_partial_files([partial]))
            render_report(summary)
    return {"valid": summary["totals"]["valid"], "status": summary["status"],
            "unique_ips": summary["unique_ips"], "bytes": summary["bytes"]["total"],
            "p99": summary["latency_ms"]["p99"]}




def run_duckdb(path: str, workers: int, shape: str, window: bool) -> dict[str, Any]:
    import duckdb

    con = duckdb.connect()
    con.execute(f"SET threads={workers}")
    columns, select = DUCKDB_SHAPES[shape]
    con.execute(f"""
        CREATE TABLE raw AS SELECT {select} FROM read_json('{path}', format='newline_delimited',
            ignore_errors=true, columns={columns})""")
    con.execute(r"""
        CREATE TABLE logs AS SELECT *,
            CASE WHEN regexp_full_match(timestamp, '\d+') THEN CAST(timestamp AS BIGINT)
                 ELSE epoch_ms(CAST(timestamp AS TIMESTAMPTZ)) END AS ts_ms
        FROM raw WHERE client_ip IS NOT NULL AND status BETWEEN 100 AND 599 AND timestamp IS NOT NULL""")
    q = con.execute
    valid = q("SELECT count(*) FROM logs").fetchone()[0]  # type: ignore[index]
    status = dict(q("SELECT status, count(*) FROM logs GROUP BY 1").fetchall())
    in_day = f"WHERE ts_ms >= {DAY_START_MS} AND ts_ms < {DAY_END_MS}" if window else ""
    q(f"""SELECT ts_ms // 60000, count(*), count(*) FILTER (status BETWEEN 400 AND 499),
                count(*) FILTER (status >= 500) FROM logs {in_day} GROUP BY 1""").fetchall()
    q(f"""SELECT ts_ms // 3600000, count(*), count(*) FILTER (status BETWEEN 400 AND 499),
                count(*) FILTER (status >= 500) FROM logs {in_day} GROUP BY 1""").fetchall()
    if window:
        q(f"""SELECT count(*) FILTER (ts_ms < {DAY_START_MS}), {DAY_START_MS} - min(ts_ms),
                     count(*) FILTER (ts_ms >= {DAY_END_MS}), max(ts_ms) - {DAY_END_MS} FROM logs""").fetchall()
    ips = q("""SELECT client_ip, count(*), count(*) FILTER (status BETWEEN 400 AND 499),
                      count(*) FILTER (status >= 500) FROM logs GROUP BY 1""").fetchall()
    for column in ("path", "user_agent"):
        q(f"SELECT {column}, count(*) AS n FROM logs GROUP BY 1 ORDER BY n DESC, 1 LIMIT 10").fetchall()
    q("SELECT method, count(*) FROM logs GROUP BY 1").fetchall()
    q("SELECT source, count(*) FROM logs GROUP BY 1").fetchall()
    quantiles = ", ".join(f"quantile_disc(latency_ms, {p})" for p in QUANTILES)
    total_bytes, *latency = q(f"SELECT sum(bytes), {quantiles} FROM logs").fetchone()  # type: ignore[misc]
    return {"valid": valid, "status": {str(k): v for k, v in sorted(status.items())}, "unique_ips": len(ips),
            "bytes": total_bytes, "p99": latency[-1]}


def _polars_frame(path: str, shape: str) -> Any:
    """The file as a frame with the canonical column names."""
    import polars as pl

    if shape == "default":
        return pl.read_ndjson(path, schema_overrides={"timestamp": pl.String})
    if shape == "nginx":
        frame = pl.read_ndjson(path, infer_schema_length=10_000)
        return frame.select(
            pl.col("time_iso8601").alias("timestamp"), pl.col("remote_addr").alias("client_ip"),
            pl.col("request_method").alias("method"), pl.col("request_uri").alias("path"),
            pl.col("status").cast(pl.Int64, strict=False).alias("status"),
            pl.col("body_bytes_sent").cast(pl.Int64, strict=False).alias("bytes"),
            (pl.col("request_time").cast(pl.Float64, strict=False) * 1000).alias("latency_ms"),
            pl.col("http_user_agent").alias("user_agent"), pl.lit(None, pl.String).alias("source"))
    frame = pl.read_ndjson(path, infer_schema_length=10_000, schema_overrides={"@timestamp": pl.String})
    http = pl.col("http")
    return frame.select(
        pl.col("@timestamp").alias("timestamp"), pl.col("source").struct.field("ip").alias("client_ip"),
        http.struct.field("request").struct.field("method").alias("method"),
        pl.col("url").struct.field("path").alias("path"),
        http.struct.field("response").struct.field("status_code").alias("status"),
        http.struct.field("response").struct.field("body").struct.field("bytes").alias("bytes"),
        (pl.col("event").struct.field("duration") / 1_000_000).alias("latency_ms"),
        pl.col("user_agent").struct.field("original").alias("user_agent"),
        pl.col("service").struct.field("name").alias("source"))


def run_polars(path: str, workers: int, shape: str, window: bool) -> dict[str, Any]:
    os.environ["POLARS_MAX_THREADS"] = str(workers)  # read when polars is first imported
    import polars as pl

    frame = _polars_frame(path, shape)
    ts = pl.col("timestamp")
    status = pl.col("status")
    parsed = (
        pl.when(ts.str.contains(r"^\d+$")).then(ts.cast(pl.Int64, strict=False))
        .otherwise(ts.str.replace(r"Z$", "+00:00")
                   .str.to_datetime(format="%Y-%m-%dT%H:%M:%S%.f%:z", strict=False, time_zone="UTC")
                   .dt.epoch("ms"))
    )
    logs = (
        frame.with_columns(parsed.alias("ts_ms"))
        .filter(pl.col("client_ip").is_not_null() & status.is_between(100, 599) & pl.col("ts_ms").is_not_null())
        .with_columns(
            (pl.col("ts_ms") // 60000).alias("minute"),
            (pl.col("ts_ms") // 3600000).alias("hour"),
            status.is_between(400, 499).alias("e4"),
            (status >= 500).alias("e5"),
        )
    )
    counts = [pl.len(), pl.col("e4").sum(), pl.col("e5").sum()]
    day = logs.filter(pl.col("ts_ms").is_between(DAY_START_MS, DAY_END_MS, closed="left")) if window else logs
    day.group_by("minute").agg(counts).rows()
    day.group_by("hour").agg(counts).rows()
    if window:
        logs.select((pl.col("ts_ms") < DAY_START_MS).sum().alias("before"),
                    (DAY_START_MS - pl.col("ts_ms").min()).alias("before_skew"),
                    (pl.col("ts_ms") >= DAY_END_MS).sum().alias("after"),
                    (pl.col("ts_ms").max() - DAY_END_MS).alias("after_skew")).rows()
    ips = logs.group_by("client_ip").agg(counts).rows()
    status_counts = dict(logs.group_by("status").len().rows())
    for column in ("path", "user_agent"):
        logs.group_by(column).len().sort(["len", column], descending=[True, False]).head(10).rows()
    logs.group_by("method").len().rows()
    logs.group_by("source").len().rows()
    totals = logs.select(
        pl.col("bytes").sum().alias("bytes"),
        *[pl.col("latency_ms").quantile(p, interpolation="lower").alias(f"p{p}") for p in QUANTILES],
    ).row(0, named=True)
    return {"valid": logs.height, "status": {str(k): v for k, v in sorted(status_counts.items())},
            "unique_ips": len(ips), "bytes": totals["bytes"], "p99": totals["p0.99"]}


RUNNERS = {"analyzer": run_analyzer, "base": run_analyzer, "duckdb": run_duckdb, "polars": run_polars}


def child(contender: str, path: str, workers: int, shape: str, window: bool) -> None:
    started = time.perf_counter()
    result = RUNNERS[contender](path, workers, shape, window)
    seconds = time.perf_counter() - started
    print(json.dumps({"seconds": seconds, "result": result}))


# --------------------------------------------------------------------------- measuring a child
def _descendants(pid: int) -> list[int]:
    """``pid`` and its descendants, through /proc/PID/task/TID/children (cheap: no scan of /proc)."""
    found, stack = [], [pid]
    while stack:
        current = stack.pop()
        found.append(current)
        try:
            for task in os.listdir(f"/proc/{current}/task"):
                with open(f"/proc/{current}/task/{task}/children") as children:
                    stack.extend(int(child) for child in children.read().split())
        except OSError:
            continue
    return found


def _tree_pss_kib(root: int) -> int:
    """Summed PSS of ``root`` and its descendants (kB); processes that vanish meanwhile count 0."""
    total = 0
    for pid in _descendants(root):
        try:
            with open(f"/proc/{pid}/smaps_rollup") as rollup:
                for line in rollup:
                    if line.startswith("Pss:"):
                        total += int(line.split()[1])
                        break
        except OSError:
            continue
    return total


def measure(contender: str, path: Path, workers: int, shape: str, window: bool,
            analyzer_path: str | None = None) -> dict[str, Any]:
    env = dict(os.environ)
    if contender == "base":
        if not analyzer_path:
            raise SystemExit("the contender 'base' needs --analyzer-path")
        # First on the path, so it is imported instead of the development install's analyzer.
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [analyzer_path, env.get("PYTHONPATH")]))
    process = subprocess.Popen(
        [sys.executable, __file__, "--child", contender, "--file", str(path), "--workers", str(workers),
         "--keys", shape, *(["--window"] if window else [])],
        stdout=subprocess.PIPE, text=True, env=env,
    )
    peak_pss = 0
    done = threading.Event()

    def sample() -> None:
        nonlocal peak_pss
        while not done.is_set():
            peak_pss = max(peak_pss, _tree_pss_kib(process.pid))
            done.wait(0.05)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    assert process.stdout is not None
    output = process.stdout.read()
    _, status, usage = os.wait4(process.pid, 0)
    process.returncode = os.waitstatus_to_exitcode(status)
    done.set()
    sampler.join()
    if process.returncode != 0:
        raise RuntimeError(f"{contender} failed with exit status {process.returncode}")
    report = json.loads(output.strip().splitlines()[-1])
    report["ru_maxrss_mb"] = usage.ru_maxrss / 1024
    # CPU seconds of the whole tree (threads, and worker processes once reaped): on a shared machine
    # this says more about efficiency than the wall time does.
    report["cpu_seconds"] = usage.ru_utime + usage.ru_stime
    report["peak_pss_mb"] = peak_pss / 1024
    return report


# --------------------------------------------------------------------------- reporting
def summarize_runs(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Median and range of the runs' times (CPU likewise), the largest memory of them."""
    seconds = [run["seconds"] for run in runs]
    cpu = [run["cpu_seconds"] for run in runs]
    return {"seconds": statistics.median(seconds), "seconds_min": min(seconds), "seconds_max": max(seconds),
            "cpu_seconds": statistics.median(cpu), "cpu_min": min(cpu), "cpu_max": max(cpu),
            "ru_maxrss_mb": max(run["ru_maxrss_mb"] for run in runs),
            "peak_pss_mb": max(run["peak_pss_mb"] for run in runs), "runs": len(runs),
            "result": runs[-1]["result"]}


def report(records: int, size_mb: float, best: dict[str, dict[str, Any]], label: str) -> None:
    runs = next(iter(best.values()))["runs"] if best else 0
    print(f"\n{records:,} records ({size_mb:.0f} MB, {label}), median of {runs} runs [range], largest memory "
          f"of the runs:")
    print(f"  {'contender':9s} {'seconds [min-max]':>20s} {'records/s':>10s} {'time vs analyzer':>17s} "
          f"{'CPU s [min-max]':>20s} {'CPU vs analyzer':>16s} {'ru_maxrss MB':>13s} {'peak PSS MB':>12s}")
    base = best["analyzer"]["seconds"] if "analyzer" in best else None
    base_cpu = best["analyzer"]["cpu_seconds"] if "analyzer" in best else None
    for name, run in best.items():
        ratio = f"{run['seconds'] / base:.2f}x" if base else "-"
        cpu_ratio = f"{run['cpu_seconds'] / base_cpu:.2f}x" if base_cpu else "-"
        spread = f"{run['seconds']:.2f} [{run['seconds_min']:.2f}-{run['seconds_max']:.2f}]"
        cpu_spread = f"{run['cpu_seconds']:.2f} [{run['cpu_min']:.2f}-{run['cpu_max']:.2f}]"
        print(f"  {name:9s} {spread:>20s} {records / run['seconds']:10,.0f} {ratio:>17s} "
              f"{cpu_spread:>20s} {cpu_ratio:>16s} {run['ru_maxrss_mb']:13.0f} {run['peak_pss_mb']:12.0f}")
    results = {name: run["result"] for name, run in best.items()}
    reference = results.get("analyzer")
    for name, result in results.items():
        if reference is not None and name != "analyzer":
            same = {key: result[key] == reference[key] for key in ("valid", "status", "unique_ips", "bytes")}
            verdict = "agree" if all(same.values()) else f"DISAGREE on {[k for k, v in same.items() if not v]}"
            print(f"  {name} vs analyzer: counts {verdict}; "
                  f"p99 {result['p99']} vs {reference['p99']:.1f} (0.5% sketch)")


def check(results: dict[int, dict[str, dict[str, Any]]], *, no_check: bool) -> int:
    failures = []
    print("\nTargets:")
    sizes = sorted(results)
    for records in sizes:
        best = results[records]
        if {"analyzer", "duckdb", "polars"} <= set(best):
            faster = min(best["duckdb"]["seconds"], best["polars"]["seconds"])
            ratio = faster / best["analyzer"]["seconds"]
            passed = ratio >= 1.2
            failures += [] if passed else [f"speed at {records}"]
            print(f"  {records:,}: analyzer speed vs the faster of DuckDB/polars = {ratio:.2f}x (target >= 1.2) "
                  f"{'OK' if passed else 'MISSED'}")
        if {"analyzer", "duckdb"} <= set(best):
            ours, theirs = best["analyzer"]["peak_pss_mb"], best["duckdb"]["peak_pss_mb"]
            passed = ours < theirs
            failures += [] if passed else [f"memory at {records}"]
            print(f"  {records:,}: analyzer peak PSS {ours:.0f} MB vs DuckDB {theirs:.0f} MB (target: below) "
                  f"{'OK' if passed else 'MISSED'}")
    if len(sizes) > 1 and all("analyzer" in results[s] for s in sizes):
        low, high = results[sizes[0]]["analyzer"]["peak_pss_mb"], results[sizes[-1]]["analyzer"]["peak_pss_mb"]
        passed = high <= low * 1.25
        failures += [] if passed else ["memory growth"]
        print(f"  analyzer peak PSS {sizes[0]:,} -> {sizes[-1]:,} records: {low:.0f} -> {high:.0f} MB "
              f"(same distinct keys; target: within 25%) {'OK' if passed else 'MISSED'}")
    return 1 if failures and not no_check else 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--records", type=int, nargs="+", default=[1_000_000], help="file sizes in records")
    parser.add_argument("--workers", type=int, default=2, help="cores each contender may use (default 2)")
    parser.add_argument("--repeat", type=int, default=5,
                        help="runs per contender and size, interleaved; the median and range are reported")
    parser.add_argument("--contenders", default=",".join(CONTENDERS),
                        help=f"comma-separated, of {', '.join(CONTENDERS + EXTRA_CONTENDERS)}")
    parser.add_argument("--keys", choices=KEY_SHAPES, default="default",
                        help="key names of the generated records: the sample logs', ECS (nested) or nginx JSON")
    parser.add_argument("--outside-share", type=float, default=0.0,
                        help="share of records moved 1-30 hours before or after the day")
    parser.add_argument("--window", action="store_true",
                        help="analyse the day as the window [day, day + 1) (the per-hour figures of the day)")
    parser.add_argument("--distinct-ips", type=int, default=None,
                        help="exactly this many distinct client IPs in the file (default: the sample's ~20k)")
    parser.add_argument("--ipv6-share", type=float, default=0.0, help="share of those clients that are IPv6")
    parser.add_argument("--exact-keys", type=int, default=None,
                        help="the analyzer's bound on exact distinct keys per dimension (default: its own)")
    parser.add_argument("--analyzer-path", help="an analyzer/ directory to run as the contender 'base'")
    parser.add_argument("--bad-share", type=float, default=0.0,
                        help="share of broken records (default 0: polars' read_ndjson refuses a file with "
                             "non-UTF-8 lines outright, ignore_errors or not)")
    parser.add_argument("--data-dir", default="/tmp/logproc-bench", help="where generated files are kept")
    parser.add_argument("--no-check", action="store_true", help="print only; exit 0 even if a target is missed")
    parser.add_argument("--child", choices=CONTENDERS + EXTRA_CONTENDERS, help=argparse.SUPPRESS)
    parser.add_argument("--file", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child, args.file, args.workers, args.keys, args.window)
        return 0

    if args.exact_keys is not None:
        os.environ["LOGPROC_BENCH_EXACT_KEYS"] = str(args.exact_keys)
    contenders = [name.strip() for name in args.contenders.split(",") if name.strip()]
    print(f"{os.cpu_count()} CPUs here, {args.workers} per contender; Python {sys.version.split()[0]}",
          file=sys.stderr)
    results: dict[int, dict[str, dict[str, Any]]] = {}
    for records in args.records:
        path = ensure_file(Path(args.data_dir), records, args.bad_share, args.keys, args.outside_share,
                           args.distinct_ips, args.ipv6_share)
        runs: dict[str, list[dict[str, Any]]] = {name: [] for name in contenders}
        for attempt in range(args.repeat):
            for name in contenders:  # interleaved, so background noise spreads over all of them
                run = measure(name, path, args.workers, args.keys, args.window, args.analyzer_path)
                print(f"  run {attempt + 1} {name}: {run['seconds']:.2f} s, CPU {run['cpu_seconds']:.2f} s, "
                      f"peak PSS {run['peak_pss_mb']:.0f} MB, load {os.getloadavg()[0]:.1f}", file=sys.stderr)
                runs[name].append(run)
        best = {name: summarize_runs(name_runs) for name, name_runs in runs.items()}
        results[records] = best
        label = ", ".join(filter(None, [
            f"keys {args.keys}",
            f"{args.distinct_ips:,} distinct IPs" if args.distinct_ips else "",
            f"{args.ipv6_share:.0%} IPv6" if args.ipv6_share else "",
            f"{args.outside_share:.1%} outside the day" if args.outside_share else "",
            "window = the day" if args.window else ""]))
        report(records, path.stat().st_size / 1e6, best, label)
    return check(results, no_check=args.no_check)


if __name__ == "__main__":
    raise SystemExit(main())
