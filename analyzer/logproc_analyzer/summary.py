"""The summary of a (merged) aggregate: what ``summary.json`` holds and the report shows.

Deterministic: the same input gives byte-identical JSON (sorted keys, ties broken by key, no
wall-clock time), so re-running a past day reproduces the same summary.
"""

from __future__ import annotations

import datetime as dt
import heapq
from collections import defaultdict
from collections.abc import Mapping
from typing import Any

from logproc_analyzer.aggregate import KEY_DIMENSIONS, MISSING, Aggregate
from logproc_analyzer.anomalies import hour_anomalies, ip_anomalies
from logproc_analyzer.fields import ms_iso
from logproc_analyzer.packed_ips import PackedIpCounts
from logproc_analyzer.sketch import RELATIVE_ACCURACY
from logproc_analyzer.sketches import KeySketch

SUMMARY_FORMAT = "logproc-analysis-summary"
# 2: "window" (records outside the analysis window, kept out of per_hour/per_minute/period) and
# "field_mappings" (which keys were read, and how they were chosen).
# 3: "accuracy" (which figures are exact, which estimates and their bounds); top entries of a sketched
# dimension carry lower_bound/upper_bound.
SUMMARY_VERSION = 3
DEFAULT_TOP = 10
QUANTILES = (0.5, 0.9, 0.95, 0.99)


def minute_iso(minute: int) -> str:
    return dt.datetime.fromtimestamp(minute * 60, tz=dt.UTC).strftime("%Y-%m-%dT%H:%MZ")


def hour_iso(hour: int) -> str:
    return dt.datetime.fromtimestamp(hour * 3600, tz=dt.UTC).strftime("%Y-%m-%dT%H:00Z")


def top(counter: Mapping[str, int] | PackedIpCounts, n: int) -> list[dict[str, Any]]:
    """Return the n largest counts, ties broken by key so the order is stable."""
    if isinstance(counter, PackedIpCounts):
        return [{"key": key, "count": count} for key, count in counter.top(n)]
    # n of possibly millions: a bounded heap, not a sort of them all (same order, ties by key).
    ranked = heapq.nsmallest(n, counter.items(), key=lambda item: (-item[1], item[0]))
    return [{"key": key, "count": count} for key, count in ranked]


def sketched_top(sketch: KeySketch, n: int) -> list[dict[str, Any]]:
    """Return the n heaviest keys of a sketched dimension, each with the bounds of its true count."""
    return [{"key": key, "count": estimate, "lower_bound": low, "upper_bound": high}
            for key, estimate, low, high in sketch.top(n)]


def sketched_ip_anomalies(sketch: KeySketch) -> list[dict[str, Any]]:
    """Find client anomalies among the heavy hitters, the mean client (requests / distinct) as the baseline."""
    requests = sketch.estimates()
    client_errors, server_errors = sketch.error_counts()
    distinct = max(sketch.distinct_estimate()["estimate"], 1)
    return ip_anomalies(requests, client_errors, server_errors, baseline=sketch.total / distinct,
                        total=sketch.total)


def accuracy(aggregate: Aggregate) -> dict[str, Any]:
    """Say which figures are exact and which are estimates, with their bounds."""
    estimates: dict[str, Any] = {}
    for name, sketch in sorted(aggregate.sketches.items()):
        estimates[f"distinct_{name}"] = sketch.distinct_estimate()
        estimates[f"top.{name}"] = {
            "max_error": sketch.max_error(),
            "method": "frequent items (Apache DataSketches): each count is an estimate whose true value lies "
                      "within [lower_bound, upper_bound]; no key whose true count exceeds max_error is missed",
        }
    if "ips" in aggregate.sketches:
        estimates["anomalies.ips"] = {"method": "among the heavy-hitter clients only, against the mean client"}
    return {
        "exact_keys": aggregate.exact_keys,
        "exact": not estimates,
        "estimates": estimates,
        "note": (f"client IPs, paths and user agents are counted exactly up to {aggregate.exact_keys} "
                 "distinct keys each; past that bound a dimension is sketched and its figures are "
                 "estimates. Totals, status, per-hour, per-minute and bytes are always exact; latency "
                 f"quantiles are within {RELATIVE_ACCURACY:.1%} relative error"),
    }


def _rate(part: int, whole: int) -> float:
    return part / whole if whole else 0.0


def summarize(aggregate: Aggregate, *, top_n: int = DEFAULT_TOP) -> dict[str, Any]:
    from logproc_analyzer.partials import summary_view

    partial = summary_view(aggregate)
    valid = aggregate.valid
    lines = partial["lines"]
    invalid = sum(partial["invalid_reasons"].values())

    window = aggregate.window
    status: dict[int, int] = defaultdict(int)
    per_minute: dict[int, list[int]] = {}
    outside = {"before": 0, "after": 0}
    for key, n in aggregate.minute_status.items():
        minute, code = divmod(key, 1000)
        status[code] += n
        if window is not None and not window.contains_minute(minute):
            # Still a valid record of this input (counted in every other figure), but its own time
            # is outside the window the analysis is about: counted apart, not drawn as an hour.
            side = "before" if window.since_ms is not None and minute < window.since_ms // 60000 else "after"
            outside[side] += n
            continue
        row = per_minute.setdefault(minute, [0, 0, 0])
        row[0] += n
        if 400 <= code < 500:
            row[1] += n
        elif code >= 500:
            row[2] += n
    client_errors = sum(n for code, n in status.items() if 400 <= code < 500)
    server_errors = sum(n for code, n in status.items() if code >= 500)

    per_hour: dict[int, list[int]] = {}
    for minute, row in per_minute.items():
        bucket = per_hour.setdefault(minute // 60, [0, 0, 0])
        for i in range(3):
            bucket[i] += row[i]
    hours = [
        {"hour": hour_iso(h), "requests": r[0], "client_errors": r[1], "server_errors": r[2]}
        for h, r in sorted(per_hour.items())
    ]
    # Sparse columns (only minutes with traffic): one stray timestamp years away must not turn the
    # summary into millions of empty minutes.
    minute_keys = sorted(per_minute)
    minutes_block: dict[str, list[Any]] = {
        "minute": [minute_iso(m) for m in minute_keys],
        "requests": [per_minute[m][0] for m in minute_keys],
        "client_errors": [per_minute[m][1] for m in minute_keys],
        "server_errors": [per_minute[m][2] for m in minute_keys],
    }
    period: dict[str, str | None] = {
        "first_minute": minute_iso(minute_keys[0]) if minute_keys else None,
        "last_minute": minute_iso(minute_keys[-1]) if minute_keys else None,
    }

    methods: dict[str, int] = defaultdict(int)
    sources: dict[str, int] = defaultdict(int)
    for _code, method, origin, n in partial["kinds"]:
        methods[method] += n
        sources[origin] += n

    classes: dict[str, int] = defaultdict(int)
    for code, n in status.items():
        classes[f"{code // 100}xx"] += n

    latency = aggregate.latency
    byte_stats = partial["bytes"]
    window_block: dict[str, Any] | None = None
    if window is not None:
        described = window.to_dict()
        earliest, latest = aggregate.outside_earliest_ms, aggregate.outside_latest_ms
        window_block = {
            "since": described["since"],
            "until": described["until"],
            "in_window": valid - outside["before"] - outside["after"],
            "before": {
                "records": outside["before"],
                "earliest": None if earliest is None else ms_iso(earliest),
                "max_skew_seconds": (None if earliest is None or window.since_ms is None
                                     else (window.since_ms - earliest) / 1000),
            },
            "after": {
                "records": outside["after"],
                "latest": None if latest is None else ms_iso(latest),
                "max_skew_seconds": (None if latest is None or window.until_ms is None
                                     else (latest - window.until_ms) / 1000),
            },
            "note": "records whose own timestamps fall outside [since, until) are valid and counted in "
                    "the totals, status, client, path, agent, bytes and latency figures, but not in "
                    "per_hour, per_minute or period; the skew is how far the farthest one lies outside "
                    "(after: measured from until, which is itself outside)",
        }
    return {
        "format": SUMMARY_FORMAT,
        "version": SUMMARY_VERSION,
        "inputs": sorted(partial["inputs"], key=lambda item: str(item.get("name"))),
        "field_mappings": partial["field_mappings"],
        "window": window_block,
        "period": period,
        "totals": {
            "lines": lines,
            "blank_lines": partial["blank_lines"],
            "valid": valid,
            "invalid": invalid,
            "invalid_rate": _rate(invalid, lines),
        },
        "invalid": {"reasons": partial["invalid_reasons"], "sample": partial["invalid_sample"]},
        "field_errors": partial["field_errors"],
        "status": {str(code): n for code, n in sorted(status.items())},
        "status_classes": dict(sorted(classes.items())),
        "errors": {
            "client_errors": client_errors,
            "server_errors": server_errors,
            "client_error_rate": _rate(client_errors, valid),
            "server_error_rate": _rate(server_errors, valid),
        },
        "methods": dict(sorted(methods.items())),
        "sources": dict(sorted(sources.items())),
        "per_hour": hours,
        "per_minute": minutes_block,
        "unique_ips": (len(partial["ips"]) if "ips" not in aggregate.sketches
                       else aggregate.sketches["ips"].distinct_estimate()["estimate"]),
        "top": {name: (top(partial[name], top_n) if name not in aggregate.sketches
                       else sketched_top(aggregate.sketches[name], top_n)) for name in KEY_DIMENSIONS},
        "accuracy": accuracy(aggregate),
        "bytes": {
            "total": byte_stats["total"],
            "records": byte_stats["records"],
            "mean": byte_stats["total"] / byte_stats["records"] if byte_stats["records"] else None,
        },
        "latency_ms": {
            "count": latency.count,
            "mean": latency.mean,
            "min": latency.min,
            "max": latency.max,
            **latency.quantiles(QUANTILES),
            "method": (f"log-spaced bucket histogram (DDSketch scheme): quantiles within "
                       f"{RELATIVE_ACCURACY:.1%} relative error of the exact order statistic; "
                       f"exactly mergeable"),
        },
        "anomalies": {
            "hours": hour_anomalies(hours),
            "ips": (ip_anomalies(partial["ips"], partial["ip_client_errors"], partial["ip_server_errors"])
                    if "ips" not in aggregate.sketches else sketched_ip_anomalies(aggregate.sketches["ips"])),
        },
        "missing_value": MISSING,
    }
