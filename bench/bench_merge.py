"""Benchmark: ``logproc-merge`` of many partials at high cardinality, exact and sketched (issue 20).

Writes ``--partials`` binary partials, each with ``--distinct-ips`` client IPs of its own (so the merge
holds partials x distinct-ips distinct IPs in all; a tenth of them with 4xx/5xx counts), 2 000 paths, 50
user agents and a day of per-minute status counts, then times ``logproc-merge PARTIALS -d OUT`` (the
summary and the report) in a subprocess, peak RSS from wait4, in three modes, runs interleaved:

* exact:   partials written exact (bound raised past their size), merged with the bound raised past
           the total: every figure exact, memory grows with the day's distinct keys.
* bounded: the same exact partials, merged with the default bound (what the report step does):
           the running result is sketched once it passes the bound; memory is the bound plus one partial.
* sketch:  partials written with the bound (``--bound``, default the analyzer's; sketched past it),
           merged with it.

    .venv/bin/python bench/bench_merge.py --partials 16 --distinct-ips 1000000 --repeat 5
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from logproc_analyzer.aggregate import DEFAULT_EXACT_KEYS, Aggregate

MODES = ("exact", "bounded", "sketch")
_DAY_MINUTE = 29_399_040  # 2026-11-24T00:00Z in epoch minutes


def write_partial(path: Path, index: int, distinct: int, exact_keys: int) -> None:
    """Write one partial of ``distinct`` client IPs of its own (numbered after those of earlier partials)."""
    aggregate = Aggregate(exact_keys=exact_keys)
    first = index * distinct
    ips, client_errors, _server_errors = aggregate.client_dicts()
    ips.update((f"{10 + (n >> 24 & 63)}.{n >> 16 & 255}.{n >> 8 & 255}.{n & 255}", 1 + n % 7)
               for n in range(first, first + distinct))
    for n in range(first, first + distinct, 10):
        client_errors[f"{10 + (n >> 24 & 63)}.{n >> 16 & 255}.{n >> 8 & 255}.{n & 255}"] = 1
    aggregate.paths.update((f"/item/{n}", 3) for n in range(2000))
    aggregate.user_agents.update((f"agent/{n}", 7) for n in range(50))
    requests = sum(aggregate.ips.values())
    per_minute, rest = divmod(requests, 1440)
    for minute in range(1440):
        aggregate.minute_status[(_DAY_MINUTE + minute) * 1000 + 200] = per_minute + (1 if minute < rest else 0)
    aggregate.kinds[200, "GET", "web"] = requests
    aggregate.lines = requests
    aggregate.inputs = [{"name": f"part-{index:05d}", "lines": requests}]
    path.write_bytes(aggregate.to_binary())


def write_partials(base: Path, partials: int, distinct: int, bound: int, modes: list[str]) -> None:
    """Write the exact partials (bound past their total) and, for the sketch mode, the bounded ones."""
    for index in range(partials):
        write_partial(base / f"exact-{index:02d}.msgpack", index, distinct, partials * distinct + 1)
        if "sketch" in modes:
            write_partial(base / f"sketch-{index:02d}.msgpack", index, distinct, bound)


def run_merge(partials: list[Path], out: Path, exact_keys: int) -> tuple[float, float]:
    """Run logproc-merge; return (seconds, peak RSS in MB)."""
    merge = Path(sys.executable).parent / "logproc-merge"
    started = time.perf_counter()
    process = subprocess.Popen([str(merge), *map(str, partials), "-d", str(out), "--exact-keys", str(exact_keys)],
                               stderr=subprocess.PIPE)
    _, status, usage = os.wait4(process.pid, 0)
    seconds = time.perf_counter() - started
    if os.waitstatus_to_exitcode(status) != 0:
        problem = process.stderr.read().decode(errors="replace") if process.stderr else ""
        raise RuntimeError(f"logproc-merge failed: {problem}")
    return seconds, usage.ru_maxrss / 1024


def check_distinct(distinct: int, parts: int = 16) -> None:
    """Sketch ``distinct`` client IPs in ``parts`` partials, merge them, check the estimate against its bounds."""
    from logproc_analyzer.partials import decode_partial, encode_partial
    from logproc_analyzer.sketches import KeySketch
    from logproc_analyzer.summary import summarize

    started = time.perf_counter()
    blobs = []
    for index in range(parts):
        aggregate = Aggregate(exact_keys=0)
        sketch = aggregate.sketches["ips"] = KeySketch(with_errors=True)
        update = sketch.distinct.update
        for n in range(index, distinct, parts):
            update(f"{10 + (n >> 24 & 63)}.{n >> 16 & 255}.{n >> 8 & 255}.{n & 255}")
        blobs.append(encode_partial(aggregate))
    merged = Aggregate(exact_keys=0)
    for blob in blobs:
        merged.merge(decode_partial(blob))
    estimate = summarize(merged)["accuracy"]["estimates"]["distinct_ips"]
    inside = estimate["lower_bound"] <= distinct <= estimate["upper_bound"]
    print(f"distinct IPs {distinct:,} in {parts} sketched partials: estimate {estimate['estimate']:,} "
          f"({(estimate['estimate'] - distinct) / distinct:+.2%}), bounds [{estimate['lower_bound']:,}, "
          f"{estimate['upper_bound']:,}] {'contain' if inside else 'MISS'} the true count "
          f"({time.perf_counter() - started:.0f} s)")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--partials", type=int, default=16)
    parser.add_argument("--distinct-ips", type=int, default=1_000_000, help="client IPs per partial")
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--modes", default=",".join(MODES))
    parser.add_argument("--bound", type=int, default=DEFAULT_EXACT_KEYS,
                        help="the exact-keys bound of the bounded and sketch modes (default: the analyzer's)")
    parser.add_argument("--check-distinct", type=int, metavar="N",
                        help="only check the HLL estimate of N distinct IPs over 16 merged partials")
    parser.add_argument("--write", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.write:
        write_partials(Path(args.write), args.partials, args.distinct_ips, args.bound, args.modes.split(","))
        return 0
    if args.check_distinct:
        check_distinct(args.check_distinct)
        return 0
    modes = [mode for mode in args.modes.split(",") if mode]
    total = args.partials * args.distinct_ips
    with tempfile.TemporaryDirectory(prefix="bench-merge-") as tmp:
        base = Path(tmp)
        # Written by a child process: a parent grown by 16 partials would pass its size on to the
        # measured logproc-merge (Linux keeps ru_maxrss across fork and exec).
        started = time.perf_counter()
        subprocess.run([sys.executable, __file__, "--write", tmp, "--partials", str(args.partials),
                        "--distinct-ips", str(args.distinct_ips), "--bound", str(args.bound),
                        "--modes", args.modes], check=True)
        files = {kind: sorted(base.glob(f"{kind}-*.msgpack")) for kind in ("exact", "sketch")}
        sizes = {kind: sum(p.stat().st_size for p in paths) / 1e6 for kind, paths in files.items() if paths}
        print(f"wrote {args.partials} partials of {args.distinct_ips:,} distinct IPs each in "
              f"{time.perf_counter() - started:.0f} s; MB in all: {sizes}", file=sys.stderr)
        plan = {"exact": (files["exact"], total + 1), "bounded": (files["exact"], args.bound),
                "sketch": (files["sketch"], args.bound)}
        runs: dict[str, list[tuple[float, float]]] = {mode: [] for mode in modes}
        for attempt in range(args.repeat):
            for mode in modes:  # interleaved
                paths, bound = plan[mode]
                seconds, rss = run_merge(paths, base / f"out-{mode}", bound)
                runs[mode].append((seconds, rss))
                print(f"  run {attempt + 1} {mode}: {seconds:.2f} s, peak RSS {rss:.0f} MB, "
                      f"load {os.getloadavg()[0]:.1f}", file=sys.stderr)
    print(f"\nlogproc-merge of {args.partials} partials x {args.distinct_ips:,} distinct IPs ({total:,} in all), "
          f"summary + report; median of {args.repeat} [range], largest peak RSS:")
    for mode, results in runs.items():
        times = [elapsed for elapsed, _ in results]
        print(f"  {mode:8s} {statistics.median(times):7.2f} s [{min(times):.2f}-{max(times):.2f}]  "
              f"peak RSS {max(r for _, r in results):6.0f} MB  (bound {plan[mode][1]:,} keys)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
