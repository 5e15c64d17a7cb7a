"""KafkaWindowCompleteSensor against the local broker: poke mode, deferrable mode, and a dag.test() run."""

from __future__ import annotations

import asyncio
import datetime as dt
import threading
import time

import pytest
from airflow.sdk import Context
from airflow.sdk.exceptions import AirflowSensorTimeout, AirflowSkipException, TaskDeferred
from confluent_kafka import Producer

from airflow_provider_logproc.sensors.kafka import KafkaWindowCompleteSensor
from airflow_provider_logproc.triggers.kafka import KafkaWindowCompleteTrigger
from tests.fixtures.airflow_dags import register_dag

pytestmark = pytest.mark.integration

SINCE = dt.datetime(2026, 3, 1, tzinfo=dt.UTC)
UNTIL = SINCE + dt.timedelta(days=1)
UNTIL_MS = int(UNTIL.timestamp() * 1000)
# A stand-in for Airflow's task context: only the data interval, as plain datetimes.
CONTEXT: Context = {"data_interval_start": SINCE, "data_interval_end": UNTIL}  # type: ignore[typeddict-item]


def produce(bootstrap: str, topic: str, records: list[tuple[int, int]]) -> None:
    """Send (partition, timestamp_ms) records with explicit Kafka timestamps."""
    producer = Producer({"bootstrap.servers": bootstrap})
    for partition, timestamp_ms in records:
        producer.produce(topic, value=b'{"m": 1}', partition=partition, timestamp=timestamp_ms)
    assert producer.flush(15) == 0


def produce_later(delay: float, bootstrap: str, topic: str, records: list[tuple[int, int]]) -> threading.Thread:
    def sleep_then_produce() -> None:
        time.sleep(delay)
        produce(bootstrap, topic, records)

    thread = threading.Thread(target=sleep_then_produce, daemon=True)
    thread.start()
    return thread


def window_sensor(topic: str, **kwargs) -> KafkaWindowCompleteSensor:
    arguments = {"task_id": "wait_for_window", "topics": [topic], "poke_interval": 0.3, "timeout": 30,
                 "idle_timeout": None, "request_timeout": 5.0}
    return KafkaWindowCompleteSensor(**{**arguments, **kwargs})


# -- poke mode ------------------------------------------------------------------------------------


def test_poke_mode_completes_when_the_late_record_arrives(kafka_broker, kafka_topic):
    topic = kafka_topic(partitions=2)
    lateness_ms = 60_000
    produce(kafka_broker.bootstrap_servers, topic, [(0, UNTIL_MS + lateness_ms), (1, UNTIL_MS + 1_000)])
    # Partition 1 is past until, not past until + max_lateness, until this record arrives.
    writer = produce_later(1.5, kafka_broker.bootstrap_servers, topic, [(1, UNTIL_MS + lateness_ms + 5)])
    started = time.monotonic()
    result = window_sensor(topic, max_lateness=dt.timedelta(minutes=1)).execute(CONTEXT.copy())
    writer.join()
    assert time.monotonic() - started >= 1.5
    assert result["since"] == SINCE.isoformat() and result["until"] == UNTIL.isoformat()
    assert result["threshold"] == "2026-03-02T00:01:00.000Z"
    assert [(p["partition"], p["status"], p["high_watermark"]) for p in result["partitions"]] == [
        (0, "passed", 1), (1, "passed", 2)]


def test_poke_mode_completes_through_idleness(kafka_broker, kafka_topic):
    topic = kafka_topic(partitions=2)
    produce(kafka_broker.bootstrap_servers, topic, [(0, UNTIL_MS), (1, UNTIL_MS - 5_000)])
    started = time.monotonic()
    result = window_sensor(topic, idle_timeout=1.5, since="2026-03-01T00:00:00Z",
                           until="2026-03-02T00:00:00Z").execute({})
    assert time.monotonic() - started >= 1.5
    assert {p["partition"]: p["status"] for p in result["partitions"]} == {0: "passed", 1: "idle"}


def test_poke_mode_times_out_naming_the_partitions_behind(kafka_broker, kafka_topic):
    topic = kafka_topic(partitions=2)
    produce(kafka_broker.bootstrap_servers, topic, [(0, UNTIL_MS), (1, UNTIL_MS - 90_000)])
    with pytest.raises(AirflowSensorTimeout) as raised:
        window_sensor(topic, timeout=1.5).execute(CONTEXT.copy())
    message = str(raised.value)
    assert "after the sensor timeout of 1.5s" in message
    assert "1 of 2 partitions still behind 2026-03-02T00:00:00.000Z" in message
    assert f"{topic}[1] latest record 2026-03-01T23:58:30.000Z, high watermark 1" in message
    assert f"{topic}[0]" not in message


def test_poke_mode_soft_fail_skips_on_timeout(kafka_broker, kafka_topic):
    topic = kafka_topic(partitions=1)
    with pytest.raises(AirflowSkipException):
        window_sensor(topic, timeout=1, soft_fail=True).execute(CONTEXT.copy())


# -- deferrable mode ------------------------------------------------------------------------------


async def first_event(trigger: KafkaWindowCompleteTrigger, timeout: float = 30.0):
    async def take():
        async for event in trigger.run():
            return event
        raise AssertionError("trigger ended without an event")

    return await asyncio.wait_for(take(), timeout)


def defer(sensor: KafkaWindowCompleteSensor) -> TaskDeferred:
    with pytest.raises(TaskDeferred) as deferred:
        sensor.execute(CONTEXT.copy())
    return deferred.value


def test_deferrable_checks_once_then_defers_with_the_observed_state(kafka_broker, kafka_topic):
    topic = kafka_topic(partitions=2)
    produce(kafka_broker.bootstrap_servers, topic, [(0, UNTIL_MS), (1, UNTIL_MS - 1)])
    before = time.time()
    deferred = defer(window_sensor(topic, deferrable=True, idle_timeout=dt.timedelta(seconds=2)))
    trigger = deferred.trigger
    assert isinstance(trigger, KafkaWindowCompleteTrigger)
    assert deferred.method_name == "execute_complete"
    assert deferred.timeout is not None and deferred.timeout > dt.timedelta(seconds=30)
    _, kwargs = trigger.serialize()
    assert kwargs["until"] == UNTIL and kwargs["since"] == SINCE
    assert kwargs["idle_timeout"] == 2.0 and kwargs["poll_interval"] == 0.3
    assert 29 <= (kwargs["timeout_at"] - dt.datetime.now(dt.UTC)).total_seconds() <= 30
    states = {s["partition"]: s for s in kwargs["partition_state"]}
    assert states[0]["passed"] and not states[1]["passed"]
    assert states[1]["watermark_seen_at"] >= before  # absolute time: the idle clock started before deferring

    # The triggerer rebuilds the trigger from its serialized form and runs it.
    event = asyncio.run(first_event(KafkaWindowCompleteTrigger(**kwargs)))
    assert time.time() - before >= 2.0
    result = window_sensor(topic, deferrable=True).resume_execution(
        deferred.method_name, {"event": event.payload}, CONTEXT.copy())
    assert {p["partition"]: p["status"] for p in result["partitions"]} == {0: "passed", 1: "idle"}


def test_deferrable_late_record_then_timeout_paths(kafka_broker, kafka_topic):
    topic = kafka_topic(partitions=1)
    produce(kafka_broker.bootstrap_servers, topic, [(0, UNTIL_MS - 1)])
    deferred = defer(window_sensor(topic, deferrable=True))
    writer = produce_later(1.0, kafka_broker.bootstrap_servers, topic, [(0, UNTIL_MS + 1)])
    event = asyncio.run(first_event(deferred.trigger))
    writer.join()
    assert event.payload["status"] == "complete"

    other = kafka_topic(partitions=1)
    produce(kafka_broker.bootstrap_servers, other, [(0, UNTIL_MS - 1)])
    sensor = window_sensor(other, deferrable=True, timeout=1.5, soft_fail=True)
    deferred = defer(sensor)
    event = asyncio.run(first_event(deferred.trigger))
    assert event.payload["status"] == "timeout"
    assert f"{other}[0] latest record 2026-03-01T23:59:59.999Z" in event.payload["message"]
    with pytest.raises(AirflowSkipException):
        sensor.resume_execution(deferred.method_name, {"event": event.payload}, CONTEXT.copy())
    with pytest.raises(AirflowSensorTimeout, match=rf"{other}\[0\] latest record"):
        window_sensor(other, deferrable=True).resume_execution(
            deferred.method_name, {"event": event.payload}, CONTEXT.copy())


def test_deferrable_returns_at_once_when_the_window_is_already_complete(kafka_broker, kafka_topic):
    """Backfills of past days: no deferral at all."""
    topic = kafka_topic(partitions=2)
    produce(kafka_broker.bootstrap_servers, topic, [(0, UNTIL_MS + 3_600_000), (1, UNTIL_MS)])
    result = window_sensor(topic, deferrable=True).execute(CONTEXT.copy())
    assert [p["status"] for p in result["partitions"]] == ["passed", "passed"]


# -- a whole DAG run ------------------------------------------------------------------------------


def test_dag_test_runs_the_deferrable_sensor(kafka_broker, kafka_topic, airflow_db):
    """dag.test() runs the trigger inline: one sensor completes, one times out and soft-fails."""
    from airflow.sdk import DAG
    from airflow.timetables.interval import CronDataIntervalTimetable
    from airflow.utils.state import DagRunState, TaskInstanceState

    ready, stuck = kafka_topic(partitions=2), kafka_topic(partitions=1)
    produce(kafka_broker.bootstrap_servers, ready, [(0, UNTIL_MS + 1), (1, UNTIL_MS - 1)])
    produce(kafka_broker.bootstrap_servers, stuck, [(0, UNTIL_MS - 1)])
    with DAG(dag_id=f"kafka_window_sensor_{ready}", schedule=CronDataIntervalTimetable("@daily", timezone="UTC"),
             start_date=SINCE - dt.timedelta(days=3), catchup=False) as dag:
        KafkaWindowCompleteSensor(task_id="window_complete", topics=[ready], deferrable=True,
                                  idle_timeout=dt.timedelta(seconds=2), poke_interval=0.5, timeout=60)
        KafkaWindowCompleteSensor(task_id="window_stuck", topics=[stuck], deferrable=True, idle_timeout=None,
                                  poke_interval=0.5, timeout=2, soft_fail=True)

    register_dag(dag)
    # With the cron-interval timetable, logical date D covers [D - 1 day, D).
    dag_run = dag.test(logical_date=UNTIL)
    assert dag_run.data_interval_start == SINCE and dag_run.data_interval_end == UNTIL
    states = {ti.task_id: ti.state for ti in dag_run.get_task_instances()}
    assert states == {"window_complete": TaskInstanceState.SUCCESS, "window_stuck": TaskInstanceState.SKIPPED}
    assert dag_run.state == DagRunState.SUCCESS
    result = next(ti for ti in dag_run.get_task_instances() if ti.task_id == "window_complete").xcom_pull(
        task_ids="window_complete")
    assert {p["partition"]: p["status"] for p in result["partitions"]} == {0: "passed", 1: "idle"}
