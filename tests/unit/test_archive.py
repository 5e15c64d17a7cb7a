"""Which archived parts make a window, and the counters they add up to (pure logic, no server)."""

from __future__ import annotations

import datetime as dt

import pytest

from airflow_provider_logproc.archive import (
    ArchivedPart,
    ArchiveIncompleteError,
    combined_part_metadata,
    current_parts,
    newest_archive,
)

T0 = dt.datetime(2026, 2, 11, 1, tzinfo=dt.UTC)
PREFIX = "logs/2026/02/10/raw-groups"


def part(index: int, count: int | None, minutes: int) -> ArchivedPart:
    return ArchivedPart(f"{PREFIX}/part-{index:03d}.ion", count, T0 + dt.timedelta(minutes=minutes))


def test_the_parts_of_one_run_in_part_order():
    listed = [part(2, 3, 2), part(0, 3, 1), part(1, 3, 3)]
    assert current_parts(listed) == [f"{PREFIX}/part-{index:03d}.ion" for index in range(3)]


def test_a_rerun_with_fewer_groups_leaves_stale_parts_that_are_not_taken():
    # First run: 4 groups; the rerun an hour later: 2 groups, rewriting parts 000 and 001.
    listed = [part(0, 2, 60), part(1, 2, 61), part(2, 4, 2), part(3, 4, 3)]
    assert current_parts(listed) == [f"{PREFIX}/part-000.ion", f"{PREFIX}/part-001.ion"]


def test_a_missing_part_or_one_of_another_run_is_an_error_naming_it():
    with pytest.raises(ArchiveIncompleteError, match=r"archived in 3 parts.*part\(s\) 001"):
        current_parts([part(0, 3, 1), part(2, 3, 2)])
    # Part 001 is an older run's (it had 2 groups): not part of the newest run's set.
    with pytest.raises(ArchiveIncompleteError, match=r"part\(s\) 001 are missing or from another run"):
        current_parts([part(0, 3, 10), part(1, 2, 1), part(2, 3, 11)])


def test_a_part_without_its_group_count_cannot_be_told_from_a_stale_one():
    with pytest.raises(ArchiveIncompleteError, match="does not say how many groups"):
        current_parts([part(0, None, 1)])


def test_no_parts_and_other_blobs_are_not_parts():
    assert current_parts([]) == []
    assert current_parts([ArchivedPart(f"{PREFIX}/notes.txt", 1, T0)]) == []


def test_counters_add_up_and_name_the_joined_kept_aside_file():
    per_part = [
        {"consumed_records": "100", "undecodable_records": "2", "undecodable_records_file": "abfs://s/p0.jsonl"},
        {"consumed_records": "50", "undecodable_records": "0", "undecodable_records_file": "None"},
    ]
    assert combined_part_metadata(per_part, "abfs://s/groups/raw.dead-letter.jsonl") == {
        "consumed_records": "150", "undecodable_records": "2",
        "undecodable_records_file": "abfs://s/groups/raw.dead-letter.jsonl"}
    clean = [{"consumed_records": "7", "undecodable_records": "0", "undecodable_records_file": ""}]
    assert combined_part_metadata(clean, "x") == {"consumed_records": "7", "undecodable_records": "0"}


def test_the_newest_of_a_single_archive_and_parts_is_restored():
    single = ArchivedPart("logs/2026/02/10/raw.ion", None, T0 + dt.timedelta(minutes=30))
    parts = [part(0, 2, 10), part(1, 2, 11)]
    other_day = ArchivedPart("logs/2026/02/1/raw.ion", None, T0)  # a prefix of another window's name
    # The mapped run came after the single one: its parts; before it: the single file.
    assert newest_archive([single, *parts, other_day], "logs/2026/02/10") == [single.name]
    later = [part(0, 2, 40), part(1, 2, 41)]
    assert newest_archive([single, *later], "logs/2026/02/10/") == [blob.name for blob in later]
    assert newest_archive(parts, "logs/2026/02/10") == [blob.name for blob in parts]
    assert newest_archive([other_day], "logs/2026/02/10") == []
