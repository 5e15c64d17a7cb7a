"""Past the exact bound: distinct counts within the HLL's stated bounds, heavy hitters exact in rank."""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Iterator

import orjson
import pytest

from logproc_analyzer import Aggregate, analyze_lines, render_report, summarize
from logproc_analyzer.analyze import merge_aggregates
from logproc_analyzer.partials import decode_partial, encode_partial, read_partial_bytes
from logproc_analyzer.sketches import HLL_LG_K


def _record(ip: str, path: str, status: int = 200) -> bytes:
    return orjson.dumps({"timestamp": "2026-11-24T10:00:00Z", "client_ip": ip, "status": status,
                         "path": path, "user_agent": "ua", "method": "GET"})


def _ip(n: int) -> str:
    return f"10.{n >> 16 & 255}.{n >> 8 & 255}.{n & 255}"


def test_below_the_bound_every_figure_is_exact() -> None:
    summary = summarize(analyze_lines([_record(_ip(i), "/") for i in range(500)]))
    assert summary["accuracy"]["exact"] is True and summary["accuracy"]["estimates"] == {}
    assert summary["unique_ips"] == 500
    assert "All figures are exact" in render_report(summary)


@pytest.mark.parametrize("parts", [1, 4])
def test_distinct_estimate_lies_within_the_librarys_bounds(parts: int) -> None:
    distinct = 200_000
    lines = [_record(_ip(i), f"/p{i % 7}") for i in range(distinct)]
    partials = []
    for index in range(parts):
        aggregate = analyze_lines(lines[index::parts])
        aggregate.exact_keys = 1000
        partials.append(encode_partial(aggregate))
    merged = merge_aggregates((decode_partial(blob) for blob in partials), exact_keys=1000)
    summary = summarize(merged)
    estimate = summary["accuracy"]["estimates"]["distinct_ips"]
    assert estimate["lower_bound"] <= distinct <= estimate["upper_bound"]
    assert summary["unique_ips"] == estimate["estimate"]
    # The library's relative standard error for lg_k=14 is about 1.04/sqrt(2**14) = 0.8 %.
    assert abs(estimate["estimate"] - distinct) / distinct < 3 * 1.04 / (2 ** HLL_LG_K) ** 0.5
    assert summary["accuracy"]["exact"] is False
    assert "distinct_paths" not in summary["accuracy"]["estimates"]  # 7 paths: still exact
    assert "Estimated figures" in render_report(summary)


def test_top_ten_heavy_hitters_are_exact_in_rank_on_a_skewed_corpus() -> None:
    rng = random.Random(20)
    clients = 50_000
    # Zipf-like: client k is drawn with weight 1/k**1.1.
    weights = [1 / (k ** 1.1) for k in range(1, clients + 1)]
    drawn = rng.choices(range(clients), weights=weights, k=300_000)
    lines = [_record(_ip(k), "/", 500 if k % 3 == 0 else 200) for k in drawn]
    exact = Counter(_ip(k) for k in drawn)
    parts = []
    for index in range(3):
        aggregate = analyze_lines(lines[index::3])
        aggregate.exact_keys = 100
        parts.append(read_partial_bytes(encode_partial(aggregate)))
    summary = summarize(merge_aggregates(parts, exact_keys=100))
    top = summary["top"]["ips"]
    expected = sorted(exact.items(), key=lambda item: (-item[1], item[0]))[:10]
    assert [row["key"] for row in top] == [key for key, _ in expected]
    for row in top:
        assert row["lower_bound"] <= exact[row["key"]] <= row["upper_bound"]
    assert summary["accuracy"]["estimates"]["top.ips"]["max_error"] >= 0


def test_a_merge_past_the_bound_switches_to_sketches() -> None:
    first = analyze_lines([_record(_ip(i), "/") for i in range(600)])
    second = analyze_lines([_record(_ip(i + 600), "/") for i in range(600)])
    merged = merge_aggregates([first, second], exact_keys=1000)
    assert "ips" in merged.sketches and not merged.ips
    estimate = summarize(merged)["accuracy"]["estimates"]["distinct_ips"]
    assert estimate["lower_bound"] <= 1200 <= estimate["upper_bound"]


def test_the_running_merge_never_holds_more_exact_keys_than_the_bound() -> None:
    bound = 500
    partials = [encode_partial(analyze_lines([_record(_ip(part * 300 + i), f"/{part}-{i}") for i in range(300)]))
                for part in range(6)]
    first = decode_partial(partials[0])
    held = []

    def one_at_a_time() -> Iterator[Aggregate]:
        yield first
        for blob in partials[1:]:
            held.append((len(first.ips), len(first.paths)))  # the running result, before the next partial
            yield decode_partial(blob)

    merged = merge_aggregates(one_at_a_time(), exact_keys=bound)
    assert merged is first
    assert all(ips <= bound and paths <= bound for ips, paths in held)
    summary = summarize(merged)
    assert summary["totals"]["valid"] == 1800
    assert {"distinct_ips", "distinct_paths"} <= set(summary["accuracy"]["estimates"])
