"""The pure half of airflow_provider_logproc.kafka.progress: the verdict, its state and messages."""

from __future__ import annotations

import datetime as dt

import pytest

from airflow_provider_logproc.kafka.progress import (
    KafkaWindowConfigError,
    PartitionObservation,
    PartitionProgress,
    evaluate,
    format_timestamp_ms,
    probe_consumer_config,
    state_by_partition,
    timeout_message,
)

DAY = dt.datetime(2026, 3, 1, tzinfo=dt.UTC)
NEXT_DAY = DAY + dt.timedelta(days=1)
UNTIL_MS = int(NEXT_DAY.timestamp() * 1000)


def seen(partition: int, high: int, latest_ms: int | None, *, low: int = 0,
         topic: str = "logs") -> PartitionObservation:
    return PartitionObservation(topic=topic, partition=partition, low_watermark=low, high_watermark=high,
                                latest_timestamp_ms=latest_ms)


def judge(observations, previous=None, *, idle_timeout=60.0, now=1_000.0, threshold_ms=UNTIL_MS):
    return evaluate(observations, state_by_partition(previous), topics=["logs"], threshold_ms=threshold_ms,
                    idle_timeout=idle_timeout, now=now)


def test_probe_consumer_never_commits_and_keeps_the_connection_settings():
    config = probe_consumer_config({"bootstrap.servers": "k:9092", "sasl.password": "x",
                                    "enable.auto.commit": True})
    assert config["enable.auto.commit"] is False
    assert config["allow.auto.create.topics"] is False
    assert config["sasl.password"] == "x"
    assert config["group.id"]


# -- the verdict ----------------------------------------------------------------------------------


def test_partition_passed_when_latest_record_reaches_until_plus_lateness():
    progress = judge([seen(0, 10, UNTIL_MS), seen(1, 10, UNTIL_MS - 1)], threshold_ms=UNTIL_MS)
    assert [p.status for p in progress.partitions] == ["passed", "behind"]
    assert not progress.complete
    assert [p.partition for p in progress.behind] == [1]


def test_lateness_moves_the_threshold():
    lateness_ms = 5 * 60_000
    progress = judge([seen(0, 10, UNTIL_MS + lateness_ms - 1)], threshold_ms=UNTIL_MS + lateness_ms)
    assert progress.partitions[0].status == "behind"


def test_idle_clock_starts_at_first_observation_and_completes_after_idle_timeout():
    first = judge([seen(0, 10, UNTIL_MS - 1)], now=1_000.0)
    assert first.partitions[0].watermark_seen_at == 1_000.0
    assert first.partitions[0].status == "behind"
    later = judge([seen(0, 10, None)], first.state(), now=1_059.0)
    assert later.partitions[0].status == "behind"
    idle = judge([seen(0, 10, None)], first.state(), now=1_060.0)
    assert idle.partitions[0].status == "idle"
    assert idle.partitions[0].latest_timestamp_ms == UNTIL_MS - 1  # remembered, not re-read
    assert idle.complete


def test_new_record_restarts_the_idle_clock_even_with_an_old_timestamp():
    first = judge([seen(0, 10, UNTIL_MS - 1)], now=1_000.0)
    moved = judge([seen(0, 11, UNTIL_MS - 3_600_000)], first.state(), now=1_050.0)
    assert moved.partitions[0].watermark_seen_at == 1_050.0
    assert judge([seen(0, 11, None)], moved.state(), now=1_100.0).partitions[0].status == "behind"
    assert judge([seen(0, 11, None)], moved.state(), now=1_110.0).partitions[0].status == "idle"


def test_no_idle_timeout_means_wait_for_records():
    progress = judge([seen(0, 0, None)], idle_timeout=None, now=1e12)
    assert progress.partitions[0].status == "behind"


def test_empty_partition_completes_only_through_idleness():
    first = judge([seen(0, 5, None, low=5)], now=0.0)
    assert first.partitions[0].status == "behind"
    assert judge([seen(0, 5, None, low=5)], first.state(), now=60.0).partitions[0].status == "idle"


def test_passed_is_sticky_when_late_records_with_older_timestamps_arrive():
    first = judge([seen(0, 10, UNTIL_MS + 1)], now=0.0)
    late = judge([seen(0, 12, UNTIL_MS - 100)], first.state(), now=1.0)
    assert late.partitions[0].status == "passed"


def test_new_partitions_join_the_check():
    first = judge([seen(0, 10, UNTIL_MS)], now=0.0)
    grown = judge([seen(0, 10, None), seen(1, 0, None)], first.state(), now=1.0)
    assert [p.status for p in grown.partitions] == ["passed", "behind"]


def test_state_round_trips_through_json_types():
    import json

    progress = judge([seen(0, 10, UNTIL_MS), seen(1, 3, None)], now=12.5)
    state = json.loads(json.dumps(progress.state()))
    assert [PartitionProgress.from_state(s) for s in state] == list(progress.partitions)


def test_invalid_state_is_a_clear_error():
    with pytest.raises(KafkaWindowConfigError, match="invalid partition state"):
        state_by_partition([{"topic": "logs"}])


def test_timeout_message_names_each_partition_behind_with_its_latest_timestamp():
    progress = judge([seen(0, 10, UNTIL_MS), seen(1, 7, UNTIL_MS - 90_000), seen(2, 0, None)], now=5.0)
    message = timeout_message(topics=["logs"], window_start=DAY, window_end=NEXT_DAY, timeout=30,
                              progress=progress)
    assert "after the sensor timeout of 30s" in message
    assert "2 of 3 partitions still behind 2026-03-02T00:00:00.000Z" in message
    assert "logs[1] latest record 2026-03-01T23:58:30.000Z, high watermark 7" in message
    assert "logs[2] latest record none, high watermark 0" in message
    assert "logs[0]" not in message


def test_timeout_message_without_any_successful_check():
    message = timeout_message(topics=["logs"], window_start=DAY, window_end=NEXT_DAY, timeout=5,
                              progress=None, last_error="broker down")
    assert "no check succeeded (broker down)" in message


def test_format_timestamp():
    assert format_timestamp_ms(UNTIL_MS) == "2026-03-02T00:00:00.000Z"
    assert format_timestamp_ms(None) == "none"
