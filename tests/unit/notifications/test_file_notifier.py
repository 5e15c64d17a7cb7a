from __future__ import annotations

import json
from types import SimpleNamespace

from airflow.providers.common.compat.sdk import DAG

from airflow_provider_logproc.notifications.file import LogprocFileNotifier

DAG_ = DAG(dag_id="logproc_daily", schedule=None)


def test_notification_is_one_json_line_with_context(tmp_path):
    target = tmp_path / "notes.jsonl"
    notifier = LogprocFileNotifier(message="{{ dag.dag_id }} failed on {{ ds }}", kind="failure", path=str(target),
                                   details={"anomalies": 2})
    context = {"dag": DAG_, "ds": "2026-03-01", "run_id": "r1",
               "ti": SimpleNamespace(task_id="consume", try_number=2), "exception": ValueError("boom")}
    notifier(context)
    notifier(context)
    lines = target.read_text().splitlines()
    assert len(lines) == 2
    entry = json.loads(lines[0])
    assert entry["message"] == "logproc_daily failed on 2026-03-01"
    assert entry["task_id"] == "consume"
    assert entry["exception"] == "ValueError: boom"
    assert entry["details"] == {"anomalies": 2}


def test_secrets_known_to_the_masker_are_redacted(tmp_path):
    from airflow.providers.common.compat.sdk import mask_secret

    mask_secret("s3cr3t-Value-42")
    target = tmp_path / "notes.jsonl"
    LogprocFileNotifier(message="failed", path=str(target))(
        {"dag": DAG_, "exception": RuntimeError("auth failed with key s3cr3t-Value-42")})
    assert "s3cr3t-Value-42" not in target.read_text()


def test_dag_callbacks_with_a_serialized_dag_still_render(tmp_path):
    # `airflow dags test` passes a SerializedDAG (no get_template_env) to DAG-level callbacks.
    target = tmp_path / "notes.jsonl"
    LogprocFileNotifier(message="{{ run_id }} failed", path=str(target))(
        {"dag": SimpleNamespace(dag_id="logproc_daily"), "run_id": "manual__1"})
    assert json.loads(target.read_text())["message"] == "manual__1 failed"


def test_a_dag_rendering_native_objects_still_gets_a_text_message(tmp_path):
    import datetime as dt

    native_dag = DAG(dag_id="native", schedule=None, render_template_as_native_obj=True)
    target = tmp_path / "notes.jsonl"
    start = dt.datetime(2026, 3, 1, tzinfo=dt.UTC)
    LogprocFileNotifier(message="window {{ data_interval_start }} to {{ data_interval_end }}", path=str(target))(
        {"dag": native_dag, "data_interval_start": start, "data_interval_end": start + dt.timedelta(days=1)})
    assert json.loads(target.read_text())["message"] == "window 2026-03-01 00:00:00+00:00 to 2026-03-02 00:00:00+00:00"
