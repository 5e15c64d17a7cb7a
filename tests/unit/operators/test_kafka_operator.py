"""KafkaBatchConsumeOperator: arguments, templating and naming (the reads are in tests/integration)."""

from __future__ import annotations

import datetime as dt
from types import SimpleNamespace

import pytest

from airflow_provider_logproc.operators.kafka import KafkaBatchConsumeOperator

START = dt.datetime(2024, 3, 2, tzinfo=dt.UTC)
END = dt.datetime(2024, 3, 3, tzinfo=dt.UTC)


def test_template_fields_cover_what_users_template():
    assert {"topics", "since", "until", "max_lateness", "output_uri", "staging_base", "group_id",
            "max_records", "max_duration", "partitions"} <= set(KafkaBatchConsumeOperator.template_fields)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"value_deserializer": "avro"}, "value_deserializer must be one of"),
        ({"key_deserializer": "int"}, "key_deserializer must be one of"),
        ({"max_bad_share": 1.5}, r"max_bad_share must be within \[0, 1\]"),
        ({"on_retention_gap": "ignore"}, "on_retention_gap must be 'fail' or 'warn'"),
        ({"ion_encoding": "json"}, "ion_encoding must be one of"),
        ({"partitions": [0], "group_id": "g"}, "cannot be combined with group_id"),
    ],
)
def test_bad_arguments_fail_when_the_dag_is_parsed(kwargs, message):
    with pytest.raises(ValueError, match=message):
        KafkaBatchConsumeOperator(task_id="c", topics="t", **kwargs)


def test_window_defaults_to_the_data_interval_and_lateness_from_a_template():
    operator = KafkaBatchConsumeOperator(task_id="c", topics="t", max_lateness="600")
    window = operator._window({"data_interval_start": START, "data_interval_end": END})  # type: ignore[typeddict-item]
    assert window.since_ms == 1_709_337_600_000
    assert window.stop_ms == window.until_ms + 600_000
    explicit = KafkaBatchConsumeOperator(task_id="c", topics="t", since="2024-03-01T00:00:00Z", until=START)
    assert explicit._window({}).until_ms == window.since_ms  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="since was not given and this DAG run has no data interval"):
        KafkaBatchConsumeOperator(task_id="c", topics="t")._window({})  # type: ignore[arg-type]
    # Airflow 3's schedule="@daily" gives zero-length intervals: refused, with the fix.
    with pytest.raises(ValueError, match="CronDataIntervalTimetable"):
        KafkaBatchConsumeOperator(task_id="c", topics="t")._window(
            {"data_interval_start": START, "data_interval_end": START})  # type: ignore[typeddict-item]


def test_default_output_is_named_by_dag_task_and_interval(monkeypatch, tmp_path):
    from airflow.providers.common.compat.sdk import DAG

    monkeypatch.setenv("LOGPROC_STAGING_BASE", f"file://{tmp_path}")
    with DAG("daily_logs", schedule=None):
        operator = KafkaBatchConsumeOperator(task_id="consume", topics="t")
    context = {"data_interval_start": START, "data_interval_end": END}
    assert str(operator._output_path(context)) == (  # type: ignore[arg-type]
        f"file://{tmp_path}/daily_logs/consume/20240302T000000Z--20240303T000000Z/raw.ion")
    with DAG("events", schedule=None):
        group = KafkaBatchConsumeOperator(task_id="consume", topics="t", group_id="g", staging_base="file:///s")
    run = SimpleNamespace(run_after=dt.datetime(2024, 3, 2, 12, 30, tzinfo=dt.UTC))
    assert str(group._output_path({"dag_run": run})) == (  # type: ignore[arg-type]
        "file:///s/events/consume/batch-20240302T123000Z/raw.ion")


def test_group_limits_from_templates():
    operator = KafkaBatchConsumeOperator(task_id="c", topics=["a", "b"], group_id="g", max_records="500",
                                         max_duration="30")
    assert operator._max_records() == 500 and operator._max_duration_s() == 30.0
    assert operator.topic_list == ["a", "b"]
    with pytest.raises(ValueError, match="max_records must be positive"):
        KafkaBatchConsumeOperator(task_id="c", topics="t", max_records="0")._max_records()
    with pytest.raises(ValueError, match="topics must be"):
        _ = KafkaBatchConsumeOperator(task_id="c", topics=[]).topic_list


def test_partitions_select_the_plans_of_one_group_and_name_unknown_ones():
    from airflow_provider_logproc.kafka.groups import PartitionGroupError

    plans = [SimpleNamespace(topic="t", partition=p) for p in range(4)]
    operator = KafkaBatchConsumeOperator(task_id="c", topics="t", partitions=[["t", 1], ["t", 2]])
    assert [p.partition for p in operator._selected(plans)] == [1, 2]
    assert KafkaBatchConsumeOperator(task_id="c", topics="t")._selected(plans) == plans
    with pytest.raises(PartitionGroupError, match=r"\[\('t', 7\)\] are not partitions of \['t'\]"):
        KafkaBatchConsumeOperator(task_id="c", topics="t", partitions=[1, 7])._selected(plans)
