"""Issue 18: the window read's C JSON check (``surely_json``) vs msgspec's validating decoder.

The consume step writes a record's value into the Ion text envelope as-is when it is JSON that
orjson accepts (else it goes through the Python path). The check runs once per record inside the C
batch loop. The question: could ``msgspec.json.Decoder(msgspec.Raw)`` (already a dependency) do it
instead of ~280 lines of C?

Two things decide it, both printed here:

* **speed**, per value, called from Python for all three (so each pays one call): ``surely_json``,
  ``msgspec.json.decode(value)`` with a ``Raw``-typed decoder (it still walks and validates the whole
  text; ``Raw`` only skips building objects) and ``orjson.loads`` (the reference), on realistic log
  values (sample access logs, ECS-shaped nested records, nginx JSON with quoted numbers).
  Alternating rounds, median of ``--repeat`` (≥ 5) with the range.
* **agreement with orjson**, which is what the envelope promises: a value the check accepts must be
  one orjson accepts (a false yes writes a record that the Ion → JSON step cannot read). Counted on
  hand-picked edge cases and on random byte-level damage of real values.

    .venv/bin/python bench/bench_json_check.py [--values 200000] [--repeat 7]
"""

from __future__ import annotations

import argparse
import datetime as dt
import random
import statistics
import time
from collections.abc import Callable

import msgspec
import orjson

from airflow_provider_logproc.consume.encoders import native_envelope
from logproc_local import sample_logs

EDGE_CASES = [
    b'"\\ud800"', b'"\\udc00"', b'"\\ud800\\u0041"', b'"\xed\xa0\x80"', b'"\xc0\x80"', b'"\xf4\x90\x80\x80"',
    b"NaN", b"Infinity", b"1e999", b"-1e999", b"1" * 400, b"[" * 1025 + b"]" * 1025, b'{"a":1,"a":2}',
    b"\xef\xbb\xbf1", b"1\x0b", b'"\x7f"', b'"\x00"', b"01", b"1.", b"-0", b"[1,]",
    b'{"big":123456789012345678901234567890}', b'{"n":-9223372036854775809}', b'{"f":1.7976931348623157e309}',
]


def realistic_values(count: int) -> list[bytes]:
    values = [record.value for record in sample_logs.generate(dt.date(2026, 11, 20), count, seed=3)]
    rng = random.Random(4)
    shaped: list[bytes] = []
    for value in values:
        record = orjson.loads(value)
        shape = rng.random()
        if shape < 0.33:  # ECS / Filebeat: nested objects, @timestamp
            record = {"@timestamp": record.get("timestamp"), "source": {"ip": record.get("client_ip")},
                      "http": {"request": {"method": record.get("method")},
                               "response": {"status_code": record.get("status")}},
                      "url": {"original": record.get("path")}, "user_agent": {"original": record.get("user_agent")}}
        elif shape < 0.66:  # nginx JSON log_format: every value a string
            record = {"time_iso8601": record.get("timestamp"), "remote_addr": record.get("client_ip"),
                      "request": f"{record.get('method')} {record.get('path')} HTTP/1.1",
                      "status": str(record.get("status")), "body_bytes_sent": str(record.get("bytes")),
                      "request_time": str(record.get("latency_ms")), "http_user_agent": record.get("user_agent")}
        shaped.append(orjson.dumps(record))
    return shaped


def damaged(values: list[bytes], count: int, seed: int = 5) -> list[bytes]:
    rng = random.Random(seed)
    out = []
    for _ in range(count):
        value = bytearray(rng.choice(values))
        for _ in range(rng.randint(1, 3)):
            position = rng.randrange(len(value))
            action = rng.random()
            if action < 0.4:
                value[position] = rng.randrange(256)
            elif action < 0.7:
                del value[position]
            else:
                value.insert(position, rng.choice(b'"\\{}[],:0e-.\x00\xff\xed'))
        out.append(bytes(value))
    return out


def accepts(check: Callable[[bytes], object], value: bytes) -> bool:
    try:
        return bool(check(value) is not False)
    except (msgspec.DecodeError, orjson.JSONDecodeError, ValueError, RecursionError):
        return False


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--values", type=int, default=200_000)
    parser.add_argument("--repeat", type=int, default=7)
    args = parser.parse_args()
    if native_envelope is None:
        raise SystemExit("the C loop is not built here (pip install -e . compiles it)")
    raw_decoder = msgspec.json.Decoder(msgspec.Raw)
    checks: dict[str, Callable[[bytes], object]] = {
        "surely_json (C)": native_envelope.surely_json,
        "msgspec Raw": raw_decoder.decode,
        "orjson.loads": orjson.loads,
    }
    values = realistic_values(args.values)
    print(f"{len(values):,} realistic values (sample/ECS/nginx shapes), mean {statistics.mean(map(len, values)):.0f} B")

    def run(check: Callable[[bytes], object]) -> float:
        started = time.perf_counter()
        for value in values:
            check(value)
        return (time.perf_counter() - started) / len(values) * 1e9

    times: dict[str, list[float]] = {name: [] for name in checks}
    for _ in range(args.repeat):
        for name, check in checks.items():  # alternating: A B C A B C ...
            times[name].append(run(check))
    c_times = times["surely_json (C)"]
    print(f"ns per value, median of {args.repeat} alternating rounds [range]; ratio = C time / this time:")
    for name, runs in times.items():
        ratios = [c / t for c, t in zip(c_times, runs, strict=True)]
        print(f"  {name:<16} {statistics.median(runs):7.0f} ns [{min(runs):.0f}-{max(runs):.0f}]  "
              f"ratio {statistics.median(ratios):.2f}x [{min(ratios):.2f}-{max(ratios):.2f}]")
    print(f"  all realistic values accepted: C {all(map(native_envelope.surely_json, values))}, "
          f"msgspec {all(accepts(raw_decoder.decode, v) for v in values)}")

    corpus = EDGE_CASES + damaged(values, 200_000)
    orjson_yes = [accepts(orjson.loads, value) for value in corpus]
    for name in ("surely_json (C)", "msgspec Raw"):
        check = checks[name]
        said = [accepts(check, value) for value in corpus]
        false_yes = [v for v, s, o in zip(corpus, said, orjson_yes, strict=True) if s and not o]
        false_no = sum(1 for s, o in zip(said, orjson_yes, strict=True) if o and not s)
        print(f"  {name:<16} on {len(corpus):,} edge/damaged texts: {len(false_yes)} accepted that orjson refuses, "
              f"{false_no} refused that orjson accepts")
        for example in false_yes[:4]:
            print(f"      e.g. {example[:60]!r}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
