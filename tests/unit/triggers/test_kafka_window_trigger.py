"""KafkaWindowCompleteTrigger without a broker: its serialized form and how it is rebuilt."""

from __future__ import annotations

import asyncio
import datetime as dt
import inspect

import pytest

from airflow_provider_logproc.triggers.kafka import KafkaWindowCompleteTrigger

UNTIL = dt.datetime(2026, 3, 2, tzinfo=dt.UTC)
STATE = [{"topic": "logs", "partition": 0, "high_watermark": 12, "watermark_seen_at": 1_795_000_000.25,
          "latest_timestamp_ms": 1_772_409_599_000, "passed": False, "status": "behind"}]


def full_trigger() -> KafkaWindowCompleteTrigger:
    return KafkaWindowCompleteTrigger(
        topics=["logs", "audit"], until=UNTIL, since=UNTIL - dt.timedelta(days=1), kafka_config_id="kafka_eu",
        max_lateness=300.0, idle_timeout=900.0, poll_interval=30.0,
        timeout_at=dt.datetime(2026, 3, 2, 6, tzinfo=dt.UTC), timeout=21_600.0, partition_state=STATE,
        request_timeout=7.0)


def test_serialize_names_the_class_and_matches_init():
    classpath, kwargs = full_trigger().serialize()
    assert classpath == "airflow_provider_logproc.triggers.kafka.KafkaWindowCompleteTrigger"
    init_parameters = set(inspect.signature(KafkaWindowCompleteTrigger.__init__).parameters) - {"self"}
    assert set(kwargs) == init_parameters


def test_rebuilt_trigger_serializes_identically():
    classpath, kwargs = full_trigger().serialize()
    assert KafkaWindowCompleteTrigger(**kwargs).serialize() == (classpath, kwargs)


def test_round_trip_through_the_trigger_table_encoding():
    """The triggerer stores kwargs with Airflow's serde (encrypted); datetimes and state survive it."""
    from airflow.models.trigger import Trigger

    classpath, kwargs = full_trigger().serialize()
    # Renamed in Airflow 3 (_encrypt_kwargs on 2.x); the stored form is the same serde encoding.
    encrypt = getattr(Trigger, "encrypt_kwargs", None) or Trigger._encrypt_kwargs
    stored = Trigger._decrypt_kwargs(encrypt(kwargs))
    rebuilt = KafkaWindowCompleteTrigger(**stored)
    assert rebuilt.serialize() == (classpath, kwargs)
    assert rebuilt.until == UNTIL
    assert rebuilt.partition_state == STATE


def test_edges_given_as_strings_are_normalized_to_utc():
    trigger = KafkaWindowCompleteTrigger(topics=["logs"], until="2026-03-02T01:00:00+01:00",
                                         timeout_at="2026-03-02T06:00:00Z")
    assert trigger.until == UNTIL
    assert trigger.timeout_at == dt.datetime(2026, 3, 2, 6, tzinfo=dt.UTC)


def test_serialize_has_no_side_effect_on_the_state():
    trigger = full_trigger()
    _, kwargs = trigger.serialize()
    kwargs["partition_state"][0]["high_watermark"] = 99
    assert trigger.partition_state[0]["high_watermark"] == 12


def test_unusable_connection_is_an_error_event(monkeypatch):
    monkeypatch.setenv("AIRFLOW_CONN_KAFKA_BROKEN", '{"conn_type": "kafka", "extra": {"group.id": "g"}}')
    trigger = KafkaWindowCompleteTrigger(topics=["logs"], until=UNTIL, kafka_config_id="kafka_broken")

    async def first():
        async for event in trigger.run():
            return event
        return None

    event = asyncio.run(asyncio.wait_for(first(), 30))
    assert event.payload["status"] == "error"
    assert "kafka_broken" in event.payload["message"]
    assert "bootstrap.servers" in event.payload["message"]


@pytest.mark.parametrize("bad", [{"until": "tomorrow"}, {"until": 12}])
def test_bad_until_is_refused(bad):
    with pytest.raises(ValueError, match="until"):
        KafkaWindowCompleteTrigger(topics=["logs"], **bad)
