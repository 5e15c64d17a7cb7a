"""KafkaWindowCompleteSensor without a broker: arguments, and what it does with the trigger's events."""

from __future__ import annotations

import datetime as dt
import inspect

import pytest
from airflow.providers.common.compat.sdk import AirflowException, AirflowSensorTimeout, AirflowSkipException, Context

from airflow_provider_logproc.kafka.progress import KafkaWindowConfigError
from airflow_provider_logproc.sensors.kafka import KafkaWindowCompleteSensor, KafkaWindowTimeoutError

DAY = dt.datetime(2026, 3, 1, tzinfo=dt.UTC)
# A stand-in for Airflow's task context: only the data interval, as plain datetimes.
CONTEXT: Context = {"data_interval_start": DAY, "data_interval_end": DAY + dt.timedelta(days=1)}  # type: ignore[typeddict-item]
SUMMARY = {"topics": ["logs"], "threshold": "2026-03-02T00:00:00.000Z", "partitions": []}


def sensor(**kwargs) -> KafkaWindowCompleteSensor:
    return KafkaWindowCompleteSensor(task_id="wait_for_window", topics=["logs"], **kwargs)


def test_user_facing_arguments_are_templated():
    assert set(KafkaWindowCompleteSensor.template_fields) >= {
        "topics", "kafka_config_id", "since", "until", "max_lateness", "idle_timeout"}


def test_defaults_line_up_with_the_consume_operator():
    parameters = inspect.signature(KafkaWindowCompleteSensor.__init__).parameters
    assert parameters["kafka_config_id"].default == "kafka_default"
    assert parameters["since"].default is None
    assert parameters["until"].default is None
    assert parameters["max_lateness"].default == dt.timedelta(0)
    assert parameters["deferrable"].default is False  # [operators] default_deferrable unset here


def test_reschedule_mode_cannot_keep_the_idle_clock():
    with pytest.raises(ValueError, match="reschedule"):
        sensor(mode="reschedule")
    assert sensor(mode="reschedule", idle_timeout=None).mode == "reschedule"


def test_bad_rendered_argument_fails_before_any_request():
    with pytest.raises(KafkaWindowConfigError, match="max_lateness='five minutes'"):
        sensor(max_lateness="five minutes")._prepare(CONTEXT)


def test_complete_event_returns_the_window_and_partitions():
    result = sensor().execute_complete(CONTEXT, {"status": "complete", "summary": SUMMARY})
    assert result["since"] == "2026-03-01T00:00:00+00:00"
    assert result["until"] == "2026-03-02T00:00:00+00:00"
    assert result["threshold"] == SUMMARY["threshold"]


def test_timeout_event_is_a_sensor_timeout_with_the_trigger_message():
    event = {"status": "timeout", "message": "logs[1] latest record 2026-03-01T23:58:30.000Z", "behind": []}
    with pytest.raises(AirflowSensorTimeout, match=r"logs\[1\] latest record 2026-03-01T23:58:30.000Z"):
        sensor().resume_execution("execute_complete", {"event": event}, CONTEXT)


def test_soft_fail_turns_the_timeout_into_a_skip():
    event = {"status": "timeout", "message": "behind", "behind": []}
    with pytest.raises(AirflowSkipException):
        sensor(soft_fail=True).resume_execution("execute_complete", {"event": event}, CONTEXT)


def test_error_event_fails_the_task():
    with pytest.raises(AirflowException, match="does not exist"):
        sensor().execute_complete(CONTEXT, {"status": "error", "message": "topic 'x' does not exist"})


class _StillBehind:
    """A check result that never completes (what _check returns while partitions are behind)."""

    complete = False


def _poke_mode_sensor(monkeypatch, *, elapsed: float) -> KafkaWindowCompleteSensor:
    """A poke-mode sensor whose checks are always behind; no broker, no connection."""
    from airflow_provider_logproc.kafka.progress import timeout_message

    waiting = sensor(timeout=0.0, poke_interval=0.0)

    def prepare(context):
        waiting._topics, waiting._window_start, waiting._window_end = ["logs"], DAY, DAY + dt.timedelta(days=1)

    monkeypatch.setattr(waiting, "_prepare", prepare)
    monkeypatch.setattr(waiting, "_check", lambda: _StillBehind())
    monkeypatch.setattr(waiting, "_elapsed", lambda: elapsed)
    monkeypatch.setattr(waiting, "_timeout_message", lambda: timeout_message(
        topics=["logs"], window_start=DAY, window_end=DAY + dt.timedelta(days=1), timeout=0.0, progress=None,
        last_error="still behind"))
    return waiting


class _Ti:
    def get_first_reschedule_date(self, context):
        return None


def test_core_generic_timeout_is_retold_with_the_window_whatever_its_wording(monkeypatch):
    # poke() does not time out itself (its clock reads -1 s), so BaseSensorOperator's own timeout
    # fires: whatever core's message says, the task fails with the sensor's message.
    waiting = _poke_mode_sensor(monkeypatch, elapsed=-1.0)
    with pytest.raises(KafkaWindowTimeoutError, match=r"Kafka window \[.*still behind") as caught:
        waiting.execute({**CONTEXT, "ti": _Ti()})  # type: ignore[typeddict-item]
    assert type(caught.value.__cause__) is AirflowSensorTimeout


def test_own_timeout_from_poke_passes_through_unchanged(monkeypatch):
    waiting = _poke_mode_sensor(monkeypatch, elapsed=10.0)
    with pytest.raises(KafkaWindowTimeoutError, match="still behind") as caught:
        waiting.execute({**CONTEXT, "ti": _Ti()})  # type: ignore[typeddict-item]
    assert caught.value.__cause__ is None
    assert isinstance(caught.value, AirflowSensorTimeout)  # what soft_fail and callers catch
