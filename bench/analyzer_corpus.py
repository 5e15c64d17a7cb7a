"""Generated corpora for bench_analyzer.py and bench_merge.py: the sample logs, reshaped.

``ensure_file`` writes (once; kept in the data directory and reused) a day of ``sample_logs`` records,
optionally with a shipper's key names (``--keys``), a share moved outside the day, and, for the
cardinality runs of issue 20, exactly ``distinct_ips`` distinct client IPs (record ``i`` gets client
``i * 7919 mod distinct_ips``, so each appears; the sample's noisy client is kept, 1 % of the records),
``ipv6_share`` of them IPv6 (2001:db8::/32 addresses spread over all groups, as privacy addresses are).
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import random
import sys
import time
from pathlib import Path
from typing import Any

DAY = dt.date(2026, 11, 24)
_STRIDE = 7919  # a prime: i * stride mod n visits every residue when n is not a multiple of it

__all__ = ["DAY", "client_ip", "ensure_file"]


def client_ip(number: int, distinct: int, ipv6_share: float) -> str:
    """Return the text of client ``number`` of ``distinct``: IPv6 for the first ``ipv6_share`` of them."""
    if number < distinct * ipv6_share:
        mixed = (number * 0x9E3779B97F4A7C15) & ((1 << 64) - 1)  # spread the bits, as privacy addresses do
        groups = [0x2001, 0xDB8, number >> 16 & 0xFFFF, number & 0xFFFF,
                  mixed >> 48, mixed >> 32 & 0xFFFF, mixed >> 16 & 0xFFFF, mixed & 0xFFFF]
        return str(ipaddress.IPv6Address(sum(g << (16 * (7 - i)) for i, g in enumerate(groups))))
    return f"{10 + (number >> 24 & 63)}.{number >> 16 & 255}.{number >> 8 & 255}.{number & 255}"


def _reshape(fields: dict[str, Any], timestamp_ms: int, shape: str) -> bytes:
    """One record with a shipper's key names (the timestamp as that shipper writes it)."""
    import orjson

    if shape == "ecs":
        http: dict[str, Any] = {"request": {"method": fields["method"]},
                                "response": {"status_code": fields["status"]}}
        document: dict[str, Any] = {
            "@timestamp": fields["timestamp"], "source": {"ip": fields["client_ip"]}, "http": http,
            "url": {"path": fields["path"]}, "user_agent": {"original": fields["user_agent"]},
            "service": {"name": fields["source"]}, "ecs": {"version": "8.11.0"}}
        if fields.get("bytes") is not None:
            http["response"]["body"] = {"bytes": fields["bytes"]}
        if fields.get("latency_ms") is not None:
            document["event"] = {"duration": round(fields["latency_ms"] * 1_000_000)}
        return orjson.dumps(document)
    moment = dt.datetime.fromtimestamp(timestamp_ms // 1000, tz=dt.UTC)
    return orjson.dumps({
        "time_iso8601": moment.isoformat(), "remote_addr": fields["client_ip"], "remote_user": "",
        "request": f"{fields['method']} {fields['path']} HTTP/1.1", "status": str(fields["status"]),
        "body_bytes_sent": str(fields.get("bytes") or 0), "request_time": f"{fields['latency_ms'] / 1000:.3f}",
        "http_referer": "", "http_user_agent": fields["user_agent"], "request_method": fields["method"],
        "request_uri": fields["path"], "host": "example.org"})


def _skewed(fields: dict[str, Any], timestamp_ms: int, rng: random.Random) -> tuple[dict[str, Any], int]:
    """The record hours before or after the day (late arrivals, device clocks), as an epoch-ms int."""
    shift = rng.choice((-1, 1)) * rng.randrange(3_600_000, 30 * 3_600_000)
    moved = timestamp_ms + shift
    return {**fields, "timestamp": moved}, moved


def ensure_file(data_dir: Path, records: int, bad_share: float, shape: str = "default",
                outside_share: float = 0.0, distinct_ips: int | None = None, ipv6_share: float = 0.0) -> Path:
    import orjson

    from logproc_local import sample_logs

    suffix = ("" if shape == "default" else f"-{shape}") + (f"-out{outside_share}" if outside_share else "") \
        + (f"-ips{distinct_ips}" if distinct_ips else "") + (f"-v6{ipv6_share}" if ipv6_share else "")
    path = data_dir / f"day-{DAY.isoformat()}-{records}-bad{bad_share}{suffix}.jsonl"
    if path.exists():
        return path
    data_dir.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(".tmp")
    started = time.perf_counter()
    rng = random.Random(7)
    with partial.open("wb") as out:
        for index, record in enumerate(sample_logs.generate(DAY, records, seed=1, bad_share=bad_share)):
            fields, timestamp_ms, value = record.fields, record.timestamp_ms, record.value
            if fields is not None and distinct_ips and fields["client_ip"] != sample_logs.NOISY_CLIENT_IP:
                fields = {**fields, "client_ip": client_ip(index * _STRIDE % distinct_ips, distinct_ips, ipv6_share)}
                value = orjson.dumps(fields)
            if fields is not None and outside_share and rng.random() < outside_share:
                fields, timestamp_ms = _skewed(fields, timestamp_ms, rng)
                value = orjson.dumps(fields)
            if fields is not None and shape != "default":
                value = _reshape(fields, timestamp_ms, shape)
            out.write(value + b"\n")
    partial.rename(path)
    print(f"generated {path} ({path.stat().st_size / 1e6:.0f} MB) in {time.perf_counter() - started:.0f} s",
          file=sys.stderr)
    return path
