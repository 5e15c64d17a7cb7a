"""What the consume step reports per partition (consume/partition_stats.py)."""

from __future__ import annotations

from airflow_provider_logproc.consume.partition_stats import PartitionStats


def test_partition_stats():
    stats = PartitionStats("t", 3)
    for offset in (7, 8, 12):
        stats.wrote(offset)
    assert stats.as_dict() == {"topic": "t", "partition": 3, "first_offset": 7, "last_offset": 12, "count": 3,
                               "dead_letter_count": 0, "outside_window_count": 0}
