"""The local stand-ins: real servers, read back exactly, started and stopped cleanly."""

from __future__ import annotations

import datetime as dt
import hashlib
import os
import time
from collections import defaultdict

import pytest
from confluent_kafka import Consumer, TopicPartition

from logproc_local import sample_logs
from logproc_local.processes import group_alive
from logproc_local.stack import LocalStack

pytestmark = pytest.mark.integration

DAYS = [dt.date(2026, 3, 1), dt.date(2026, 3, 2), dt.date(2026, 3, 3)]


def _read_all(bootstrap: str, topic: str, partitions: int) -> dict[int, list]:
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "readback",
                         "enable.auto.commit": False, "session.timeout.ms": 6000})
    out: dict[int, list] = defaultdict(list)
    try:
        for partition in range(partitions):
            _low, high = consumer.get_watermark_offsets(TopicPartition(topic, partition), timeout=10)
            if high == 0:
                continue
            consumer.assign([TopicPartition(topic, partition, 0)])
            while not out[partition] or out[partition][-1].offset() < high - 1:
                for message in consumer.consume(1000, timeout=5):
                    assert message.error() is None, message.error()
                    out[partition].append(message)
    finally:
        consumer.close()
    return out


def test_three_days_on_three_partitions_read_back_exactly(kafka_broker, kafka_topic):
    topic = kafka_topic(partitions=3)
    produced = [r for day in DAYS for r in sample_logs.generate(day, 2_000, seed=7, bad_share=0.01)]
    delivered = sample_logs.produce(produced, topic, {"bootstrap.servers": kafka_broker.bootstrap_servers},
                                    partitions=3)
    assert delivered == len(produced)

    read = _read_all(kafka_broker.bootstrap_servers, topic, 3)
    expected: dict[int, list] = defaultdict(list)
    for record in produced:
        expected[sample_logs._stable_partition(record.key, 3)].append(record)
    assert set(read) == set(expected)
    for partition, records in expected.items():
        got = read[partition]
        assert [m.value() for m in got] == [r.value for r in records]
        assert [m.timestamp()[1] for m in got] == [r.timestamp_ms for r in records]
        assert [m.key() for m in got] == [r.key for r in records]


def test_blob_round_trip_keeps_sha256(azurite, blob_service_client, blob_container, tmp_path):
    payload = os.urandom(3 * 1024 * 1024 + 17)
    container = blob_container()
    blob = blob_service_client.get_blob_client(container, "2026/03/01/raw.bin")
    blob.upload_blob(payload, max_concurrency=2)
    assert hashlib.sha256(blob.download_blob().readall()).hexdigest() == hashlib.sha256(payload).hexdigest()


def test_two_stacks_at_once_use_different_ports_and_leave_no_process(tmp_path):
    first = LocalStack(tmp_path / "a").start()
    second = LocalStack(tmp_path / "b").start()
    try:
        assert first.broker and second.broker and first.azurite and second.azurite
        assert first.broker.port != second.broker.port
        assert first.azurite.port != second.azurite.port
        assert "AIRFLOW_CONN_KAFKA_DEFAULT" in first.airflow_connections()
        groups = [s.process.pid for stack in (first, second) for s in (stack.broker, stack.azurite) if s]
        assert all(pid and group_alive(pid) for pid in groups)
    finally:
        first.stop()
        second.stop()
    assert not any(group_alive(pid) for pid in groups if pid)


def test_broker_restart_with_same_data_dir_keeps_records(tmp_path):
    from logproc_local.kafka_broker import LocalKafkaBroker

    broker = LocalKafkaBroker(tmp_path / "kafka").start()
    try:
        from confluent_kafka.admin import AdminClient, NewTopic

        admin = AdminClient({"bootstrap.servers": broker.bootstrap_servers})
        for future in admin.create_topics([NewTopic("persist", 1, 1, config={"retention.ms": "-1"})]).values():
            future.result(timeout=15)
        records = list(sample_logs.generate(DAYS[0], 500, seed=1))
        sample_logs.produce(records, "persist", {"bootstrap.servers": broker.bootstrap_servers})
        # noida-db writes its data dir about once a second, not on every produce: a crash right
        # after a write loses it (a real Kafka with default fsync settings can lose it too).
        time.sleep(2.5)
        broker.kill()
        broker = LocalKafkaBroker(tmp_path / "kafka", port=broker.port).start()
        read = _read_all(broker.bootstrap_servers, "persist", 1)
        assert [m.value() for m in read[0]] == [r.value for r in records]
    finally:
        broker.stop()
