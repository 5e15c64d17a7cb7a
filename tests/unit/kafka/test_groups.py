"""Partition groups of a mapped consume (pure logic)."""

from __future__ import annotations

import pytest

from airflow_provider_logproc.kafka.groups import (
    PartitionGroupError,
    choose_group_count,
    parse_partitions,
    parts_per_group,
    split_partitions,
)

FOUR = [("t", 3), ("t", 1), ("t", 0), ("t", 2)]


def test_groups_are_contiguous_runs_of_the_sorted_partitions_in_order():
    assert split_partitions(FOUR, 2) == [[("t", 0), ("t", 1)], [("t", 2), ("t", 3)]]
    assert split_partitions(FOUR, 3) == [[("t", 0), ("t", 1)], [("t", 2)], [("t", 3)]]
    # Concatenated in group order they are the single task's (topic, partition) order.
    assert [p for group in split_partitions(FOUR, 3) for p in group] == sorted(FOUR)
    assert split_partitions(FOUR, 9) == [[p] for p in sorted(FOUR)]


def test_a_group_count_below_one_is_refused():
    with pytest.raises(PartitionGroupError, match="at least 1"):
        split_partitions(FOUR, 0)
    with pytest.raises(PartitionGroupError, match="0 \\(auto\\)"):
        choose_group_count(-1, 4, 0)


def test_requested_groups_are_capped_at_the_partitions_and_auto_maps_only_a_large_window():
    assert choose_group_count(3, 4, 10) == 3
    assert choose_group_count(8, 4, 10) == 4
    assert choose_group_count(0, 6, 999, default_groups=4, min_records=1000) == 1
    assert choose_group_count(0, 6, 1000, default_groups=4, min_records=1000) == 4
    assert choose_group_count(0, 2, 1000, default_groups=4, min_records=1000) == 2


def test_auto_reads_its_defaults_from_the_environment(monkeypatch):
    monkeypatch.setenv("LOGPROC_CONSUME_GROUPS", "3")
    monkeypatch.setenv("LOGPROC_MAPPED_CONSUME_MIN_RECORDS", "10")
    assert choose_group_count(0, 8, 10) == 3


@pytest.mark.parametrize(("selection", "want"), [
    (None, None),
    ([0, 2], {("t", 0), ("t", 2)}),
    ([["t", 1]], {("t", 1)}),
    ('[["t", 1], ["t", 3]]', {("t", 1), ("t", 3)}),  # a rendered template
])
def test_partition_selections(selection, want):
    assert parse_partitions(selection, ["t"]) == want


@pytest.mark.parametrize(("selection", "topics", "message"), [
    ([0], ["a", "b"], "names no topic"),
    (["x"], ["t"], "neither a partition number"),
    ([], ["t"], "non-empty list"),
    ("not json", ["t"], "not a JSON list"),
])
def test_bad_partition_selections_say_what_is_wrong(selection, topics, message):
    with pytest.raises(PartitionGroupError, match=message):
        parse_partitions(selection, topics)


def test_parts_per_group_keep_the_days_total_near_the_parts_param():
    assert parts_per_group(4, 2) == 2
    assert parts_per_group(3, 3) == 1
    assert parts_per_group(5, 2) == 3
    assert parts_per_group(1, 4) == 1
