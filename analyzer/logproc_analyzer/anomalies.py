"""Anomalies: hours that depart from the day's baseline, and clients with abnormal request or error rates.

Baselines are robust (medians), so the anomaly itself does not drag the baseline towards it:

* **Hour error rate** (4xx and 5xx separately): the baseline rate ``p0`` is the median of the hourly
  rates; an hour is flagged when its count is at least ``MIN_EVENTS``, its rate is at least
  ``RATE_FACTOR`` times ``p0`` and its binomial z-score ``(x - n*p0) / sqrt(n*p0*(1-p0))`` exceeds
  ``Z_THRESHOLD``.
* **Hour volume**: the robust z-score ``(n - median) / (1.4826 * MAD)`` of the hourly request counts
  exceeds ``VOLUME_Z`` in either direction (a spike or a drop), with the MAD floored at
  ``sqrt(median)`` (Poisson noise) so that a very regular day does not flag every wiggle.
* **Client request rate**: an IP whose request count is at least ``IP_FACTOR`` times the median
  client's and whose robust z-score (MAD floored at ``sqrt(median)``) exceeds ``IP_Z``.
* **Client error rate**: an IP whose 4xx+5xx count is at least ``MIN_EVENTS``, at least
  ``RATE_FACTOR`` times the day's error rate, with a binomial z-score above ``Z_THRESHOLD``.

Scores are reported so the strongest come first; lists are capped at ``MAX_LISTED``.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Mapping
from typing import Any

from logproc_analyzer.packed_ips import PackedIpCounts, median_and_mad

Z_THRESHOLD = 5.0
RATE_FACTOR = 2.0
MIN_EVENTS = 10
VOLUME_Z = 4.0
IP_FACTOR = 5.0
IP_Z = 8.0
MAX_LISTED = 20
_MAD_SCALE = 1.4826  # MAD of a normal distribution * 1.4826 = its standard deviation


def _binomial_z(events: int, trials: int, p0: float) -> float:
    if trials == 0:
        return 0.0
    p0 = min(max(p0, 0.5 / max(trials, 1)), 1 - 1e-9)  # a zero baseline would make any event infinite
    return (events - trials * p0) / math.sqrt(trials * p0 * (1 - p0))


def _robust_z(value: float, median: float, mad: float) -> float:
    spread = max(_MAD_SCALE * mad, math.sqrt(max(median, 1.0)))
    return (value - median) / spread


def hour_anomalies(hours: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """``hours``: [{"hour": iso, "requests": n, "client_errors": n, "server_errors": n}], hours with traffic."""
    found: list[dict[str, Any]] = []
    active = [h for h in hours if h["requests"] > 0]
    if len(active) < 3:
        return found  # no baseline to depart from
    for kind, field, label in (("hour_server_error_rate", "server_errors", "5xx (server error)"),
                               ("hour_client_error_rate", "client_errors", "4xx (client error)")):
        baseline = statistics.median(h[field] / h["requests"] for h in active)
        for h in active:
            events, trials = h[field], h["requests"]
            rate = events / trials
            z = _binomial_z(events, trials, baseline)
            if events >= MIN_EVENTS and rate >= RATE_FACTOR * baseline and z > Z_THRESHOLD:
                found.append({
                    "kind": kind, "hour": h["hour"], "rate": rate, "baseline_rate": baseline,
                    "count": events, "requests": trials, "score": z,
                    "message": (f"{label} rate {rate:.1%} in hour {h['hour']} "
                                f"vs a baseline of {baseline:.1%} ({events} of {trials} requests)"),
                })
    counts = [h["requests"] for h in active]
    median = statistics.median(counts)
    mad = statistics.median(abs(c - median) for c in counts)
    for h in active:
        z = _robust_z(h["requests"], median, mad)
        if abs(z) > VOLUME_Z:
            direction = "spike" if z > 0 else "drop"
            found.append({
                "kind": "hour_volume", "hour": h["hour"], "requests": h["requests"],
                "baseline_requests": median, "score": abs(z), "direction": direction,
                "message": (f"traffic {direction} in hour {h['hour']}: {h['requests']} requests vs a "
                            f"median hour of {median:g}"),
            })
    found.sort(key=lambda a: (-a["score"], a["hour"], a["kind"]))
    return found[:MAX_LISTED]


def ip_anomalies(
    requests: Mapping[str, int] | PackedIpCounts,
    client_errors: Mapping[str, int] | PackedIpCounts,
    server_errors: Mapping[str, int] | PackedIpCounts,
    *,
    baseline: float | None = None,
    total: int | None = None,
) -> list[dict[str, Any]]:
    """Find abnormal clients; ``baseline``/``total``: the typical client's requests and all requests, when
    ``requests`` holds only the heavy hitters of a sketch (the spread is then the Poisson floor)."""
    found: list[dict[str, Any]] = []
    if len(requests) < 3 and baseline is None:
        return found
    if isinstance(requests, PackedIpCounts) or isinstance(client_errors, PackedIpCounts) or isinstance(
            server_errors, PackedIpCounts):  # an exact merge past a million clients: the same figures
        packed = requests if isinstance(requests, PackedIpCounts) else PackedIpCounts.from_counts(requests)
        return _packed_ip_anomalies(packed, client_errors, server_errors)
    counts = list(requests.values())
    if baseline is None:
        median = statistics.median(counts)
        mad = statistics.median(abs(c - median) for c in counts)
    else:
        median, mad = baseline, 0.0
    if total is None:
        total = sum(counts)
    errors_total = _table_total(client_errors) + _table_total(server_errors)
    floor = _request_floor(median, mad)
    heavy = [(ip, n) for ip, n in requests.items() if n >= floor]
    return _ip_findings(heavy, requests, client_errors, server_errors, median, mad, total, errors_total)


def _table_total(table: Mapping[str, int] | PackedIpCounts) -> int:
    return table.total() if isinstance(table, PackedIpCounts) else sum(table.values())


def _request_floor(median: float, mad: float) -> float:
    # Only clients above both thresholds can be flagged: find them without a z-score for every client.
    return max(IP_FACTOR * median, median + IP_Z * max(_MAD_SCALE * mad, math.sqrt(max(median, 1.0))))


def _packed_ip_anomalies(requests: PackedIpCounts, client_errors: Mapping[str, int] | PackedIpCounts,
                         server_errors: Mapping[str, int] | PackedIpCounts) -> list[dict[str, Any]]:
    """``ip_anomalies`` of packed tables: the median and MAD in integer arithmetic (``median_and_mad``), texts
    only for the clients above the floor and those with errors enough to count."""
    total = requests.total()
    median, mad = median_and_mad(requests.all_counts())
    errors: PackedIpCounts | dict[str, int] = {}
    for table in (client_errors, server_errors):
        if isinstance(errors, dict) and isinstance(table, PackedIpCounts):
            packed = PackedIpCounts()
            packed.add(errors)
            errors = packed
        if isinstance(errors, PackedIpCounts):
            errors.add(table)
        else:
            for ip, n in table.items():
                errors[ip] = errors.get(ip, 0) + n
    enough = dict(errors.at_least(MIN_EVENTS)) if isinstance(errors, PackedIpCounts) else {
        ip: n for ip, n in errors.items() if n >= MIN_EVENTS}
    errors_total = _table_total(client_errors) + _table_total(server_errors)
    heavy = list(requests.at_least(_request_floor(median, mad)))
    return _ip_findings(heavy, requests, {ip: client_errors.get(ip, 0) for ip in enough},
                        {ip: server_errors.get(ip, 0) for ip in enough}, median, mad, total, errors_total)


def _ip_findings(heavy: list[tuple[str, int]], requests: Mapping[str, int] | PackedIpCounts,
                 client_errors: Mapping[str, int], server_errors: Mapping[str, int], median: float, mad: float,
                 total: int, errors_total: int) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    error_rate = errors_total / total if total else 0.0
    for ip, n in heavy:
        z = _robust_z(n, median, mad)
        if n >= IP_FACTOR * median and z > IP_Z:
            found.append({
                "kind": "ip_request_rate", "ip": ip, "requests": n, "baseline_requests": median,
                "share": n / total, "score": z,
                "message": f"client {ip} sent {n} requests, {n / median:.0f}x the median client ({median:g})",
            })
    for ip in set(client_errors) | set(server_errors):
        errors = client_errors.get(ip, 0) + server_errors.get(ip, 0)
        n = requests.get(ip, 0)
        if errors < MIN_EVENTS or n == 0:
            continue
        rate = errors / n
        z = _binomial_z(errors, n, error_rate)
        if rate >= RATE_FACTOR * error_rate and z > Z_THRESHOLD:
            found.append({
                "kind": "ip_error_rate", "ip": ip, "requests": n, "errors": errors, "rate": rate,
                "baseline_rate": error_rate, "score": z,
                "message": (f"client {ip}: {rate:.1%} of its {n} requests failed (4xx/5xx) vs "
                            f"{error_rate:.1%} overall"),
            })
    found.sort(key=lambda a: (-a["score"], a["ip"], a["kind"]))
    return found[:MAX_LISTED]
