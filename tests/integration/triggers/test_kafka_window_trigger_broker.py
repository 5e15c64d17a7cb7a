"""KafkaWindowCompleteTrigger against the local broker: trigger.run() driven directly with asyncio."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import time
from typing import Any

import pytest
from confluent_kafka import Producer

from airflow_provider_logproc.kafka.progress import build_consumer_config, check_window
from airflow_provider_logproc.triggers.kafka import KafkaWindowCompleteTrigger

pytestmark = pytest.mark.integration

SINCE = dt.datetime(2026, 3, 1, tzinfo=dt.UTC)
UNTIL = SINCE + dt.timedelta(days=1)
UNTIL_MS = int(UNTIL.timestamp() * 1000)


def produce(bootstrap: str, topic: str, records: list[tuple[int, int]]) -> None:
    """Send (partition, timestamp_ms) records with explicit Kafka timestamps."""
    producer = Producer({"bootstrap.servers": bootstrap})
    for partition, timestamp_ms in records:
        producer.produce(topic, value=b'{"m": 1}', partition=partition, timestamp=timestamp_ms)
    assert producer.flush(15) == 0


def trigger_for(topic: str, **overrides) -> KafkaWindowCompleteTrigger:
    arguments = {"topics": [topic], "until": UNTIL, "since": SINCE, "poll_interval": 0.3,
                 "idle_timeout": None, "request_timeout": 5.0,
                 "timeout_at": dt.datetime.now(dt.UTC) + dt.timedelta(seconds=30), "timeout": 30.0}
    return KafkaWindowCompleteTrigger(**{**arguments, **overrides})


async def first_event(trigger: KafkaWindowCompleteTrigger, timeout: float = 30.0):
    async def take():
        async for event in trigger.run():
            return event
        raise AssertionError("trigger ended without an event")

    return await asyncio.wait_for(take(), timeout)


def test_completes_when_a_late_record_arrives(kafka_broker, kafka_topic, capsys):
    topic = kafka_topic(partitions=2)
    produce(kafka_broker.bootstrap_servers, topic, [(0, UNTIL_MS - 60_000), (0, UNTIL_MS + 1_000),
                                                    (1, UNTIL_MS - 120_000)])
    trigger = trigger_for(topic)

    async def scenario():
        task = asyncio.create_task(first_event(trigger))
        await asyncio.sleep(1.5)
        assert not task.done(), "partition 1 has not passed the window end yet"
        # The stream on partition 1 moves past the window end: the last late record is in.
        await asyncio.to_thread(produce, kafka_broker.bootstrap_servers, topic, [(1, UNTIL_MS + 5_000)])
        return await task

    event = asyncio.run(scenario())
    log = capsys.readouterr().out  # Airflow's structlog writes the trigger's log to stdout
    assert event.payload["status"] == "complete"
    partitions = event.payload["summary"]["partitions"]
    assert [(p["partition"], p["status"], p["high_watermark"]) for p in partitions] == [
        (0, "passed", 2), (1, "passed", 2)]
    assert partitions[1]["latest_timestamp"] == "2026-03-02T00:00:05.000Z"
    # The triggerer log says, per partition, how far the stream has got.
    assert f"{topic}[1] latest record 2026-03-01T23:58:00.000Z, high watermark 1" in log
    assert "→ behind" in log


def test_completes_through_idleness_measured_from_watermark_changes(kafka_broker, kafka_topic):
    topic = kafka_topic(partitions=2)
    produce(kafka_broker.bootstrap_servers, topic, [(0, UNTIL_MS + 1_000), (1, UNTIL_MS - 60_000)])
    trigger = trigger_for(topic, idle_timeout=2.0)

    async def scenario():
        started = time.monotonic()
        task = asyncio.create_task(first_event(trigger))
        await asyncio.sleep(1.2)
        # A straggler with an old timestamp: not past the window end, but the partition is not idle.
        await asyncio.to_thread(produce, kafka_broker.bootstrap_servers, topic, [(1, UNTIL_MS - 30_000)])
        produced_at = time.monotonic()
        event = await task
        return event, produced_at - started, time.monotonic() - produced_at

    event, produced_after, idle_after = asyncio.run(scenario())
    assert event.payload["status"] == "complete"
    statuses = {p["partition"]: p["status"] for p in event.payload["summary"]["partitions"]}
    assert statuses == {0: "passed", 1: "idle"}
    assert produced_after < 2.0
    # The idle clock restarted at the straggler, so completion came ≥ idle_timeout after it.
    assert idle_after >= 2.0 - 0.35


def test_times_out_naming_the_partitions_behind(kafka_broker, kafka_topic):
    topic = kafka_topic(partitions=3)
    produce(kafka_broker.bootstrap_servers, topic, [(0, UNTIL_MS), (1, UNTIL_MS - 90_000)])
    trigger = trigger_for(topic, timeout_at=dt.datetime.now(dt.UTC) + dt.timedelta(seconds=2), timeout=2.0)

    started = time.monotonic()
    event = asyncio.run(first_event(trigger))
    assert time.monotonic() - started >= 1.5
    assert event.payload["status"] == "timeout"
    message = event.payload["message"]
    assert "is not complete after the sensor timeout of 2s" in message
    assert "2 of 3 partitions still behind 2026-03-02T00:00:00.000Z" in message
    assert f"{topic}[1] latest record 2026-03-01T23:58:30.000Z, high watermark 1" in message
    assert f"{topic}[2] latest record none, high watermark 0" in message
    assert f"{topic}[0]" not in message
    assert [b["partition"] for b in event.payload["behind"]] == [1, 2]


def test_rebuilt_trigger_resumes_the_idle_clock(kafka_broker, kafka_topic):
    topic = kafka_topic(partitions=1)
    produce(kafka_broker.bootstrap_servers, topic, [(0, UNTIL_MS - 60_000)])
    idle_timeout = 4.0
    first = trigger_for(topic, idle_timeout=idle_timeout)

    async def run_for_a_while():
        task = asyncio.create_task(first_event(first))
        await asyncio.sleep(2.5)
        assert not task.done()
        task.cancel()  # the triggerer goes away
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(run_for_a_while())
    classpath, kwargs = first.serialize()
    assert classpath == "airflow_provider_logproc.triggers.kafka.KafkaWindowCompleteTrigger"
    assert kwargs["partition_state"][0]["high_watermark"] == 1
    rebuilt = KafkaWindowCompleteTrigger(**kwargs)

    started = time.monotonic()
    event = asyncio.run(first_event(rebuilt))
    waited = time.monotonic() - started
    assert event.payload["status"] == "complete"
    assert event.payload["summary"]["partitions"][0]["status"] == "idle"
    # A fresh trigger would wait the whole idle_timeout; the rebuilt one only what was left.
    assert waited < idle_timeout - 1.0


def test_two_copies_may_run_at_once_and_change_nothing_on_the_cluster(kafka_broker, kafka_topic):
    from confluent_kafka import ConsumerGroupTopicPartitions
    from confluent_kafka.admin import AdminClient

    topic = kafka_topic(partitions=2)
    produce(kafka_broker.bootstrap_servers, topic, [(0, UNTIL_MS), (1, UNTIL_MS + 10)])

    async def both():
        return await asyncio.gather(first_event(trigger_for(topic)), first_event(trigger_for(topic)))

    events = asyncio.run(both())
    assert [e.payload["status"] for e in events] == ["complete", "complete"]
    # No offsets committed for the connection's group: checking is read-only.
    group = build_consumer_config("kafka_default")["group.id"]
    admin = AdminClient({"bootstrap.servers": kafka_broker.bootstrap_servers})
    future = admin.list_consumer_group_offsets([ConsumerGroupTopicPartitions(group)])[group]
    committed = [tp for tp in future.result(timeout=10).topic_partitions if tp.topic == topic and tp.offset >= 0]
    assert committed == []


def test_unchanged_partitions_are_not_read_again(kafka_broker, kafka_topic, monkeypatch):
    """Known latest records are not fetched again: a check costs metadata + watermarks only."""
    import airflow_provider_logproc.kafka.progress as progress_module

    topic = kafka_topic(partitions=2)
    produce(kafka_broker.bootstrap_servers, topic, [(0, UNTIL_MS + 1), (1, UNTIL_MS - 1)])
    config = build_consumer_config("kafka_default")
    first = check_window(config, [topic], window_end=UNTIL, max_lateness=0, idle_timeout=None)
    assert [p.status for p in first.partitions] == ["passed", "behind"]

    reads: list[dict] = []
    real_read = progress_module._read_latest_timestamps

    def recording_read(consumer: Any, offsets: Any, timeout: float) -> Any:
        reads.append(dict(offsets))
        return real_read(consumer, offsets, timeout)

    monkeypatch.setattr(progress_module, "_read_latest_timestamps", recording_read)
    check_window(config, [topic], window_end=UNTIL, max_lateness=0, idle_timeout=None,
                 previous_state=first.state())
    produce(kafka_broker.bootstrap_servers, topic, [(1, UNTIL_MS + 2)])
    last = check_window(config, [topic], window_end=UNTIL, max_lateness=0, idle_timeout=None,
                        previous_state=first.state())
    assert reads == [{}, {(topic, 1): 1}]
    assert last.complete


def test_missing_topic_is_an_error_event(kafka_broker):
    event = asyncio.run(first_event(trigger_for("no-such-topic-here")))
    assert event.payload["status"] == "error"
    assert "topic 'no-such-topic-here' does not exist" in event.payload["message"]


def test_waits_through_a_broker_restart(tmp_path, monkeypatch, capsys):
    """A broker that goes away mid-wait costs checks, not the task: the trigger carries on after it."""
    from confluent_kafka.admin import AdminClient, NewTopic

    from logproc_local.kafka_broker import LocalKafkaBroker

    # A private broker: stopping the session's broker would disturb every other test.
    broker = LocalKafkaBroker(tmp_path / "kafka-data").start()
    try:
        monkeypatch.setenv("AIRFLOW_CONN_KAFKA_RESTART", json.dumps(
            {"conn_type": "kafka", "extra": broker.connection_extra()}))
        admin = AdminClient({"bootstrap.servers": broker.bootstrap_servers})
        for future in admin.create_topics([NewTopic("restart", 1, 1, config={"retention.ms": "-1"})]).values():
            future.result(timeout=15)
        produce(broker.bootstrap_servers, "restart", [(0, UNTIL_MS - 1)])
        trigger = trigger_for("restart", kafka_config_id="kafka_restart", request_timeout=1.0)

        async def scenario():
            task = asyncio.create_task(first_event(trigger, timeout=60))
            await asyncio.sleep(1.0)
            await asyncio.to_thread(broker.stop)  # graceful: the broker writes its data dir out
            await asyncio.sleep(2.5)
            assert not task.done(), "checks that fail while the broker is down must not end the wait"
            await asyncio.to_thread(broker.start)
            await asyncio.to_thread(produce, broker.bootstrap_servers, "restart", [(0, UNTIL_MS + 1)])
            return await task

        event = asyncio.run(scenario())
    finally:
        broker.stop()
    assert event.payload["status"] == "complete"
    assert event.payload["summary"]["partitions"][0]["high_watermark"] == 2
    assert "Kafka window check failed, retrying" in capsys.readouterr().out
