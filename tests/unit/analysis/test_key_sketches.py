"""Past the exact bound: distinct counts within the HLL's stated bounds, heavy hitters exact in rank."""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Iterator
from typing import Any

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


def _sketch_figures(aggregate: Aggregate) -> tuple[Any, ...]:
    summary = summarize(aggregate)
    return summary["accuracy"]["estimates"]["distinct_ips"], summary["top"]["ips"], summary["totals"]


def test_standby_sketches_are_united_when_the_merge_passes_the_bound() -> None:
    # Each part sketched ahead (as analyze_paths' workers do): the merge unites them instead of feeding the
    # merged keys. The estimates stay within the library's bounds and every exact figure is unchanged.
    rng = random.Random(5)
    drawn = rng.choices(range(3_000), weights=[1 / (k ** 1.1) for k in range(1, 3_001)], k=20_000)
    lines = [_record(_ip(k), f"/{k % 5}", 404 if k % 4 == 0 else 200) for k in drawn]
    fed_parts, standby_parts = [], []
    for index in range(2):
        fed_parts.append(analyze_lines(lines[index::2]))
        part = analyze_lines(lines[index::2])
        part.prepare_sketches(1000 // 2)
        assert set(part.standby_sketches) == {"ips"}  # 5 paths, 1 user agent: not worth a sketch
        standby_parts.append(read_partial_bytes(encode_partial(part)))  # the partial does not carry them
        standby_parts[-1].standby_sketches = part.standby_sketches
    fed = merge_aggregates(fed_parts, exact_keys=1000)
    united = merge_aggregates(standby_parts, exact_keys=1000)
    assert "ips" in united.sketches and not united.ips and not united.standby_sketches
    estimate, top, totals = _sketch_figures(united)
    distinct = len(set(drawn))
    assert estimate["lower_bound"] <= distinct <= estimate["upper_bound"]
    exact = Counter(_ip(k) for k in drawn)
    assert [row["key"] for row in top] == [key for key, _ in sorted(exact.items(), key=lambda i: (-i[1], i[0]))[:10]]
    assert totals == _sketch_figures(fed)[2]
    assert summarize(united)["top"]["paths"] == summarize(fed)["top"]["paths"]


def test_a_part_without_its_standby_sketch_makes_the_merge_feed_the_keys_as_before() -> None:
    first = analyze_lines([_record(_ip(i), "/") for i in range(600)])
    second = analyze_lines([_record(_ip(i + 600), "/") for i in range(600)])
    first.prepare_sketches(100)  # the second part has none: the standby no longer holds every key
    fed = merge_aggregates([analyze_lines([_record(_ip(i), "/") for i in range(600)]),
                            analyze_lines([_record(_ip(i + 600), "/") for i in range(600)])], exact_keys=1000)
    merged = merge_aggregates([first, second], exact_keys=1000)
    assert _sketch_figures(merged) == _sketch_figures(fed)


def test_below_the_bound_standby_sketches_are_dropped_and_every_figure_stays_exact() -> None:
    parts = [analyze_lines([_record(_ip(i % 700), "/") for i in range(start, start + 600)]) for start in (0, 300)]
    for part in parts:
        part.prepare_sketches(100)
    merged = merge_aggregates(parts, exact_keys=1000)
    summary = summarize(merged)
    assert summary["accuracy"]["exact"] is True and summary["unique_ips"] == 700
    assert not merged.sketches


def test_a_key_sketch_pickles_through_the_librarys_own_format() -> None:
    import pickle

    sketch = Aggregate()
    sketch.ingest_lines([_record(_ip(i), "/") for i in range(50)], source="in")
    sketch.prepare_sketches(10)
    copy = pickle.loads(pickle.dumps(sketch.standby_sketches["ips"]))
    assert copy.distinct_estimate() == sketch.standby_sketches["ips"].distinct_estimate()
    assert copy.top(3) == sketch.standby_sketches["ips"].top(3)
