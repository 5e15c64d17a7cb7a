"""Benchmark: Ion → NDJSON with IonToJsonOperator vs a bare loop and vs the naive path.

Writes ``--records`` Kafka envelopes (sample access-log values, ~200-byte JSON) to an Ion file
with the consume step's own encoders (text and binary; no broker needed for this step), then, each
in a fresh child process, on the same file:

* ``operator`` — IonToJsonOperator (unwrap value, UTC, no validation): the production path.
* ``bare``     — the baseline: amazon-ion C extension with the bare value model + orjson.dumps of
                 each envelope's value, written line by line.
* ``bare-ionc`` — the same loop on the C extension's reader called directly (amazon._ioncmodule,
                 as the operator does): without simpleion.load's per-value generator wrapper.
* ``naive``    — amazon-ion's default value model + json.dumps (default=str).

Prints records/s per run, then per mode the median of ``--repeat`` alternating rounds with its
min-max and each child's peak RSS, and the ratios as the median of the per-round ratios with their
range (targets: operator >= 0.9x bare, >= 10x naive).
With ``--rss-records 1000000,4000000`` it also prints the operator's peak RSS per input size.

    .venv/bin/python bench/bench_ion_to_json.py --records 1000000
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from airflow_warmup import warm_up_airflow

DAY = dt.date(2024, 6, 1)
POOL_SIZE = 50_000


def write_ion(path: Path, count: int, encoding: str) -> None:
    from airflow_provider_logproc.consume.encoders import make_encoder
    from logproc_local import sample_logs

    pool = list(sample_logs.generate(DAY, min(count, POOL_SIZE), seed=42))
    day_start = int(dt.datetime.combine(DAY, dt.time(), tzinfo=dt.UTC).timestamp() * 1000)
    step = 86_400_000 / count
    encoder = make_encoder(encoding, "string", "json")
    with open(path, "wb") as out:
        out.write(encoder.preamble())
        for i in range(count):
            record = pool[i % len(pool)]
            encoder.add("logs", i % 3, i // 3, day_start + int(i * step), record.key, record.value, None)
            if i % 10_000 == 9_999:
                out.write(encoder.drain())
        out.write(encoder.drain())


class _TaskInstance:
    def __init__(self) -> None:
        self.xcom: dict[str, Any] = {}

    def xcom_push(self, key: str, value: Any) -> None:
        self.xcom[key] = value


def child_operator(source: str, output: str) -> tuple[int, float]:
    from airflow_provider_logproc.operators.ion import IonToJsonOperator

    operator = IonToJsonOperator(task_id="to_json", source_uri=f"file://{source}", output_uri=f"file://{output}")
    warm_up_airflow()
    ti = _TaskInstance()
    started = time.perf_counter()
    operator.execute({"ti": ti})  # type: ignore[typeddict-item]
    return int(ti.xcom["record_count"]), time.perf_counter() - started


def child_bare(source: str, output: str) -> tuple[int, float]:
    import orjson
    from amazon.ion import simpleion
    from amazon.ion.simpleion import IonPyValueModel

    model = IonPyValueModel.MAY_BE_BARE | IonPyValueModel.SYMBOL_AS_TEXT | IonPyValueModel.STRUCT_AS_STD_DICT
    started = time.perf_counter()
    count = 0
    with open(source, "rb") as handle, open(output, "wb") as out:
        for envelope in simpleion.load(handle, single_value=False, parse_eagerly=False, value_model=model):
            # default=str: Ion text keeps JSON fractions as decimals, which orjson does not write itself
            out.write(orjson.dumps(envelope["value"], default=str, option=orjson.OPT_APPEND_NEWLINE))
            count += 1
    return count, time.perf_counter() - started


def child_bare_ionc(source: str, output: str) -> tuple[int, float]:
    import amazon._ioncmodule as ionc
    import orjson
    from amazon.ion.simpleion import IonPyValueModel

    model = IonPyValueModel.MAY_BE_BARE | IonPyValueModel.SYMBOL_AS_TEXT | IonPyValueModel.STRUCT_AS_STD_DICT
    started = time.perf_counter()
    count = 0
    with open(source, "rb") as handle, open(output, "wb") as out:
        for envelope in ionc.ionc_read(handle, value_model=model.value, text_buffer_size_limit=None):
            out.write(orjson.dumps(envelope["value"], default=str, option=orjson.OPT_APPEND_NEWLINE))
            count += 1
    return count, time.perf_counter() - started


def child_naive(source: str, output: str) -> tuple[int, float]:
    from amazon.ion import simpleion

    started = time.perf_counter()
    count = 0
    with open(source, "rb") as handle, open(output, "w") as out:
        for envelope in simpleion.load(handle, single_value=False, parse_eagerly=False):
            out.write(json.dumps(envelope["value"], default=str))
            out.write("\n")
            count += 1
    return count, time.perf_counter() - started


def peak_rss_mb() -> float:
    """VmHWM (not ru_maxrss, which Linux carries over exec from the forking parent)."""
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return 0.0


def run_child(mode: str, source: Path, output: Path) -> dict[str, Any]:
    command = [sys.executable, __file__, "--child", mode, "--source", str(source), "--output", str(output)]
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise RuntimeError(f"{mode} failed:\n{result.stderr[-3000:]}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--records", type=int, default=100_000)
    parser.add_argument("--encodings", default="text,binary")
    parser.add_argument("--modes", default="bare,bare-ionc,operator,naive")
    parser.add_argument("--repeat", type=int, default=5,
                        help="alternating rounds (every mode once per round); medians and ranges are reported")
    parser.add_argument("--rss-records", default="")
    parser.add_argument("--child")
    parser.add_argument("--source")
    parser.add_argument("--output")
    args = parser.parse_args()
    if args.child:
        runner = {"operator": child_operator, "bare": child_bare, "bare-ionc": child_bare_ionc,
                  "naive": child_naive}[args.child]
        count, seconds = runner(args.source, args.output)
        print(json.dumps({"records": count, "seconds": seconds, "rss_mb": peak_rss_mb()}))
        return 0

    work = Path(tempfile.mkdtemp(prefix="bench-ion-json-"))
    try:
        for encoding in [e for e in args.encodings.split(",") if e]:
            source = work / f"raw-{encoding}.ion"
            started = time.perf_counter()
            write_ion(source, args.records, encoding)
            print(f"\n{encoding} Ion: {args.records} envelopes, {source.stat().st_size / 1e6:.1f} MB "
                  f"(written in {time.perf_counter() - started:.1f} s)")
            # Modes alternate round by round (A B C D A B C D ...), so a slow spell of this shared
            # machine hits every mode alike; each round's ratios compare runs made next to each other.
            runs: dict[str, list[dict[str, Any]]] = {}
            modes = [m for m in args.modes.split(",") if m]
            for _ in range(args.repeat):
                for mode in modes:
                    output = work / f"{mode}.jsonl"
                    result = run_child(mode, source, output)
                    output.unlink()
                    if result["records"] != args.records:
                        raise RuntimeError(f"{mode} wrote {result['records']} records, expected {args.records}")
                    rate = result["records"] / result["seconds"]
                    print(f"  {mode:<10} {result['seconds']:7.2f} s  {rate:10.0f} rec/s"
                          f"  rss {result['rss_mb']:7.1f} MB")
                    runs.setdefault(mode, []).append(result)
            print(f"  median of {args.repeat} alternating rounds [min-max]:")
            for mode, mode_runs in runs.items():
                mode_seconds = [float(run["seconds"]) for run in mode_runs]
                print(f"  {mode:<10} {statistics.median(mode_seconds):7.2f} s "
                      f"[{min(mode_seconds):.2f}-{max(mode_seconds):.2f}]"
                      f"  peak rss {max(run['rss_mb'] for run in mode_runs):7.1f} MB")
            if "operator" in runs:
                targets = {"bare": "operator vs bare loop (target >= 0.9)",
                           "bare-ionc": "operator vs bare loop on the raw C reader",
                           "naive": "operator vs naive (target >= 10)"}
                for baseline, label in targets.items():
                    if baseline in runs:
                        ratios = [theirs["seconds"] / mine["seconds"]
                                  for theirs, mine in zip(runs[baseline], runs["operator"], strict=True)]
                        print(f"  {label}: {statistics.median(ratios):.2f}x [{min(ratios):.2f}-{max(ratios):.2f}]")
            for size in [int(s) for s in args.rss_records.split(",") if s]:
                big = work / f"rss-{encoding}-{size}.ion"
                write_ion(big, size, encoding)
                output = work / "rss.jsonl"
                result = run_child("operator", big, output)
                output.unlink()
                big.unlink()
                print(f"  peak RSS operator at {size:>9} records: {result['rss_mb']:7.1f} MB "
                      f"({result['records'] / result['seconds']:.0f} rec/s)")
    finally:
        subprocess.run(["rm", "-rf", str(work)], check=False)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
