"""IonToJsonOperator: arguments and naming (conversions are in tests/unit/consume and tests/integration)."""

from __future__ import annotations

import datetime as dt

import pytest

from airflow_provider_logproc.operators.ion import IonToJsonOperator


def test_template_fields():
    assert {"source_uri", "output_uri", "staging_base"} <= set(IonToJsonOperator.template_fields)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"output_format": "csv"}, "output_format must be one of jsonl, json_array"),
        ({"timezone": "Nowhere/City"}, "unknown time zone"),
        ({"validate_records": {"status": "int"}}, "unknown type"),
        ({"workers": 0}, "workers must be at least 1"),
    ],
)
def test_bad_arguments_fail_when_the_dag_is_parsed(kwargs, message):
    with pytest.raises(ValueError, match=message):
        IonToJsonOperator(task_id="j", source_uri="file:///x.ion", **kwargs)


def test_default_output_uri(monkeypatch, tmp_path):
    from airflow.providers.common.compat.sdk import DAG

    monkeypatch.setenv("LOGPROC_STAGING_BASE", f"file://{tmp_path}")
    with DAG("daily_logs", schedule=None):
        lines = IonToJsonOperator(task_id="to_json", source_uri="file:///x.ion")
        array = IonToJsonOperator(task_id="to_array", source_uri="file:///x.ion", output_format="json_array")
    context = {"data_interval_start": dt.datetime(2024, 3, 2, tzinfo=dt.UTC),
               "data_interval_end": dt.datetime(2024, 3, 3, tzinfo=dt.UTC)}
    label = "20240302T000000Z--20240303T000000Z"
    assert str(lines._output_path(context)) == f"file://{tmp_path}/daily_logs/to_json/{label}/raw.jsonl"  # type: ignore[arg-type]
    assert str(array._output_path(context)) == f"file://{tmp_path}/daily_logs/to_array/{label}/raw.json"  # type: ignore[arg-type]


def test_a_local_file_in_slices_gives_the_same_outputs_as_one_process(monkeypatch, tmp_path, capsys):
    from airflow_provider_logproc.consume import ion_split
    from tests.unit.consume.test_ion_split import write_envelopes

    monkeypatch.setattr(ion_split, "MIN_SLICE_BYTES", 1)
    source = write_envelopes(tmp_path / "raw.ion", "text", 3000, bad_every=11)
    outputs = {}
    for workers in (1, 2):
        out = tmp_path / f"w{workers}" / "raw.jsonl"
        ti = RecordingTaskInstance()
        IonToJsonOperator(task_id="j", source_uri=f"file://{source}", output_uri=f"file://{out}",
                          validate_records={"status": "integer"}, workers=workers).execute({"ti": ti})  # type: ignore[typeddict-item]
        invalid = out.with_name("raw.invalid.jsonl")
        outputs[workers] = (out.read_bytes(), invalid.read_bytes(), ti.xcom["record_count"], ti.xcom["invalid_count"])
    assert "converted 2 slices" in capsys.readouterr().out
    assert outputs[1] == outputs[2]
    assert outputs[2][2:] == (2727, 273)


class RecordingTaskInstance:
    def __init__(self) -> None:
        self.xcom: dict[str, object] = {}

    def xcom_push(self, key: str, value: object) -> None:
        self.xcom[key] = value
