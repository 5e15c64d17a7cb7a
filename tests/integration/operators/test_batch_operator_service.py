"""AzureBatchJobOperator and AzureBatchJobTrigger against the local Batch service and Azurite.

Tasks are real local processes started by the service; inputs are Azurite blobs downloaded through
read SAS; outputs are uploaded through a create/write container SAS.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import importlib
import json
import logging
import shlex
import sys
import time
import uuid
from typing import Any

import pytest
from airflow.providers.common.compat.sdk import AirflowException
from airflow.sdk import DAG
from airflow.sdk.exceptions import TaskDeferred
from azure.batch import models as batch_models

from airflow_provider_logproc.operators.batch import AzureBatchJobOperator, first_event
from airflow_provider_logproc.triggers.batch import AzureBatchJobTrigger
from tests.fixtures.airflow_dags import register_dag

pytestmark = pytest.mark.integration

DAY = dt.datetime(2026, 3, 1, tzinfo=dt.UTC)
TASK_COUNTS = "Jobs_GetJobTaskCounts"
POOL = "local-pool"

# The analyzer stand-in run on the "node": counts lines, fails (exit 3) on a part holding FAIL,
# sleeps on a part holding SLEEP, writes {output_dir}/partial.json.
ANALYZE = """
import json, os, sys, time
source, output_dir, part = sys.argv[1:4]
lines = open(source).read().splitlines()
if any("SLEEP" in line for line in lines):
    time.sleep(30)
if any("FAIL" in line for line in lines):
    print(f"analyzing {part}", flush=True)
    print(f"bad record in {part}: {lines[0]!r}", file=sys.stderr)
    sys.exit(3)
os.makedirs(output_dir, exist_ok=True)
with open(os.path.join(output_dir, "partial.json"), "w") as out:
    json.dump({"part": part, "lines": len(lines)}, out)
"""
TEMPLATE = {
    "command": [sys.executable, "-c", ANALYZE, "{input_file}", "{output_dir}", "{part_name}"],
    "output_file_pattern": "partial.json",
    "constraints": {"max_wall_clock_time": "PT2M"},
}


class RecordingTaskInstance:
    def __init__(self) -> None:
        self.xcom: dict[str, Any] = {}

    def xcom_push(self, key: str, value: Any) -> None:
        self.xcom[key] = value


def make_context(start: dt.datetime = DAY) -> dict[str, Any]:
    from types import SimpleNamespace

    return {
        "data_interval_start": start,
        "data_interval_end": start + dt.timedelta(days=1),
        "dag_run": SimpleNamespace(run_id=f"scheduled__{start.isoformat()}"),
        "ti": RecordingTaskInstance(),
    }


@pytest.fixture
def parts(azurite, blob_service_client, blob_container) -> Any:
    """``parts(contents)`` → input blob URLs, one part per item, in a fresh container."""

    def upload(contents: list[str]) -> list[str]:
        container = blob_container("logs")
        urls = []
        for index, text in enumerate(contents):
            name = f"app/2026/03/01/part-{index:05d}.jsonl"
            blob_service_client.get_blob_client(container, name).upload_blob(text.encode())
            urls.append(f"{azurite.blob_endpoint}/{container}/{name}")
        return urls

    return upload


def operator(dag_id: str | None = None, **kwargs: Any) -> AzureBatchJobOperator:
    arguments: dict[str, Any] = {
        "task_id": "analyze", "pool_id": "local-pool", "poll_interval": 0.3, "deferrable": True,
    }
    arguments.update(kwargs)
    with DAG(dag_id or f"batch_{uuid.uuid4().hex[:8]}", schedule=None):
        return AzureBatchJobOperator(**arguments)


def rebuild(trigger: AzureBatchJobTrigger, **changes: Any) -> AzureBatchJobTrigger:
    """What the triggerer does: import the class path and build it from the serialized kwargs."""
    classpath, kwargs = trigger.serialize()
    module_name, class_name = classpath.rsplit(".", 1)
    return getattr(importlib.import_module(module_name), class_name)(**{**kwargs, **changes})


def defer(op: AzureBatchJobOperator, context: dict[str, Any]) -> TaskDeferred:
    with pytest.raises(TaskDeferred) as deferred:
        op.execute(context)  # type: ignore[arg-type]
    return deferred.value


def resume(op: AzureBatchJobOperator, deferred: TaskDeferred, context: dict[str, Any], **changes: Any) -> Any:
    payload = asyncio.run(first_event(rebuild(deferred.trigger, **changes)))  # type: ignore[arg-type]
    return op.resume_execution(deferred.method_name, {"event": payload, **(deferred.kwargs or {})}, context)  # type: ignore[arg-type]


def result_of(results_container: str, blob_service_client: Any, url: str) -> dict[str, Any]:
    name = url.split(f"/{results_container}/", 1)[1]
    return json.loads(blob_service_client.get_blob_client(results_container, name).download_blob().readall())


# -- fan-out ----------------------------------------------------------------------------------------


def test_fan_out_over_five_parts_lists_the_outputs(batch_service, batch_reset, parts, blob_container,
                                                   blob_service_client):
    inputs = parts([f"{index}\n" * (index + 1) for index in range(5)])
    results = blob_container("results")
    op = operator(fan_out_inputs=inputs, task_template=TEMPLATE, wasb_conn_id="wasb_default",
                  output_container=results, output_prefix="app/2026/03/01/partials")
    context = make_context()
    deferred = defer(op, context)
    job_id = deferred.trigger.job_id  # type: ignore[attr-defined]
    assert job_id == f"{op.dag_id}-analyze-20260301-20260302"

    result = resume(op, deferred, context)

    assert result["job_id"] == job_id
    assert [(task["id"], task["state"], task["exit_code"]) for task in result["tasks"]] == [
        (f"part-{index:05d}", "completed", 0) for index in range(5)
    ]
    assert len(result["outputs"]) == 5
    assert all("?" not in url and "sig=" not in url for url in result["outputs"])
    assert result["outputs"][0].endswith(f"/{results}/app/2026/03/01/partials/part-00000/partial.json")
    assert [result_of(results, blob_service_client, url)["lines"] for url in result["outputs"]] == [1, 2, 3, 4, 5]
    job = batch_service.client().get_job(job_id)
    assert job.all_tasks_complete_mode == "terminatejob" and job.state == "completed"
    assert context["ti"].xcom["batch_job_portal_url"].startswith("https://portal.azure.com/")
    # The SAS issued for the tasks are least privilege: read for inputs, create/write for outputs.
    task = batch_service.client().get_task(job_id, "part-00000")
    assert "sp=r&" in task.resource_files[0].http_url
    assert "sp=cw&" in task.output_files[0].destination.container.container_url


def test_a_missing_output_container_is_created_before_the_tasks_upload(batch_service, batch_reset, parts,
                                                                     blob_service_client):
    inputs = parts(["1\n", "2\n2\n"])
    results = f"fresh-{uuid.uuid4().hex[:10]}"  # not created: Batch's uploads would answer ContainerNotFound
    op = operator(fan_out_inputs=inputs, task_template=TEMPLATE, wasb_conn_id="wasb_default",
                  output_container=results, output_prefix="partials")
    context = make_context()
    result = resume(op, defer(op, context), context)
    assert [result_of(results, blob_service_client, url)["lines"] for url in result["outputs"]] == [1, 2]


def test_non_deferrable_mode_waits_inline_with_the_same_rules(batch_service, batch_reset, parts):
    inputs = parts(["a\n", "FAIL\n"])
    op = operator(fan_out_inputs=inputs, task_template=TEMPLATE, deferrable=False, wasb_conn_id="wasb_default")
    with pytest.raises(AirflowException, match=r"1 of 2 task\(s\) failed: part-00001 \(exit code 3"):
        op.execute(make_context())  # type: ignore[arg-type]


# -- failures ---------------------------------------------------------------------------------------


def test_failing_task_fails_with_its_exit_code_and_stderr_tail_in_the_log(batch_service, batch_reset, parts,
                                                                          caplog, capsys):
    inputs = parts(["ok\n", "FAIL here\n", "ok\n"])
    op = operator(fan_out_inputs=inputs, task_template=TEMPLATE, wasb_conn_id="wasb_default")
    context = make_context()
    deferred = defer(op, context)
    with caplog.at_level(logging.INFO), pytest.raises(AirflowException) as failure:
        resume(op, deferred, context)
    assert "1 of 3 task(s) failed: part-00001 (exit code 3" in str(failure.value)
    log = caplog.text + capsys.readouterr().out
    assert "Batch task part-00000: completed, exit code 0" in log
    assert "Batch task part-00001: completed, exit code 3" in log
    assert "bad record in part-00001: 'FAIL here'" in log  # stderr tail
    assert "analyzing part-00001" in log  # stdout tail
    assert "sig=" not in log


def test_timeout_terminates_the_job_and_fails(batch_service, batch_reset, parts):
    inputs = parts(["SLEEP\n", "ok\n"])
    op = operator(fan_out_inputs=inputs, task_template=TEMPLATE, wasb_conn_id="wasb_default",
                  timeout=dt.timedelta(seconds=2))
    context = make_context()
    deferred = defer(op, context)
    started = time.monotonic()
    with pytest.raises(AirflowException, match=r"timed out after 0:00:02 and was terminated \(active \d, running"):
        resume(op, deferred, context)
    assert time.monotonic() - started < 20
    job = batch_service.client().get_job(deferred.trigger.job_id)  # type: ignore[attr-defined]
    assert job.state in ("terminating", "completed")
    assert "timed out" in (job.execution_info.termination_reason or "")


def test_missing_pool_fails_fast_and_clearly(batch_service, batch_reset):
    op = operator(pool_id="no-such-pool", tasks=[{"id": "t", "command": ["true"]}])
    with pytest.raises(AirflowException, match="pool 'no-such-pool' does not exist"):
        op.execute(make_context())  # type: ignore[arg-type]
    assert batch_service.request_log.count(operation="Jobs_CreateJob") == 0


def test_bad_task_spec_fails_before_any_job_is_created(batch_service, batch_reset):
    op = operator(tasks=[{"id": "t", "command": "echo hi"}])
    with pytest.raises(AirflowException, match=r"tasks\[0\]\.command: the command must be a non-empty list"):
        op.execute(make_context())  # type: ignore[arg-type]
    assert batch_service.request_log.count(operation="Jobs_CreateJob") == 0


# -- re-attach ------------------------------------------------------------------------------------


def test_retry_after_job_creation_reuses_the_job_and_adds_nothing_twice(batch_service, batch_reset, parts):
    inputs = parts(["a\n", "b\n", "c\n"])
    dag_id = f"batch_{uuid.uuid4().hex[:8]}"
    first = operator(dag_id, fan_out_inputs=inputs, task_template=TEMPLATE, wasb_conn_id="wasb_default")
    # The tasks must still be waiting when the retry looks (a finished job skips the deferral):
    # they become eligible only 6 s after they are added, however busy the machine.
    batch_service.set_scheduling_delay(6.0)
    # The first attempt created the job, added its tasks and deferred; then the worker died.
    job_id = defer(first, make_context()).trigger.job_id  # type: ignore[attr-defined]
    seq = batch_service.request_log.last_seq()

    retry = operator(dag_id, fan_out_inputs=inputs, task_template=TEMPLATE, wasb_conn_id="wasb_default")
    context = make_context()
    deferred = defer(retry, context)

    assert deferred.trigger.job_id == job_id  # type: ignore[attr-defined]
    operations = [entry["operation"] for entry in batch_service.request_log.entries(since=seq)]
    assert "Jobs_CreateJob" not in operations and "Tasks_CreateTaskCollection" not in operations
    result = resume(retry, deferred, context)
    assert [task["id"] for task in result["tasks"]] == ["part-00000", "part-00001", "part-00002"]

    # A third attempt after the job finished goes straight to the results: no new job, no wait.
    seq = batch_service.request_log.last_seq()
    again = operator(dag_id, fan_out_inputs=inputs, task_template=TEMPLATE, wasb_conn_id="wasb_default")
    outcome = again.execute(make_context())  # type: ignore[arg-type]
    assert outcome is not None and outcome["job_id"] == job_id
    operations = [entry["operation"] for entry in batch_service.request_log.entries(since=seq)]
    assert not set(operations) & {"Jobs_CreateJob", "Tasks_CreateTaskCollection", TASK_COUNTS}


def test_retry_after_a_crash_while_adding_tasks_adds_only_the_missing_ones(batch_service, batch_reset, batch_client):
    """The first attempt died after creating the job and adding part of the tasks (job still noaction)."""
    op = operator(tasks=explicit_tasks(5, seconds=0.2))
    context = make_context()
    job_id = op.resolve_job_id(context)  # type: ignore[arg-type]
    batch_client.create_job(batch_models.BatchJobCreateOptions(
        {"id": job_id, "poolInfo": {"poolId": POOL}, "onAllTasksComplete": "noaction"}))
    specs = [{"id": task["id"], "commandLine": shlex.join(task["command"])} for task in explicit_tasks(2, seconds=0.2)]
    batch_client.create_task_collection(job_id, batch_models.BatchTaskGroup({"value": specs}))
    seq = batch_service.request_log.last_seq()

    deferred = defer(op, context)

    added = [entry for entry in batch_service.request_log.entries(since=seq)
             if entry["operation"] == "Tasks_CreateTaskCollection"]
    assert len(added) == 1
    assert batch_service.request_log.count(operation="Jobs_CreateJob", since=seq) == 0
    assert batch_service.request_log.count(operation="Jobs_UpdateJob", since=seq) == 1  # auto-terminate switched on
    result = resume(op, deferred, context)
    assert [task["id"] for task in result["tasks"]] == [f"t{index:04d}" for index in range(5)]
    assert len(list(batch_client.list_tasks(job_id))) == 5


def test_lost_answer_to_add_tasks_is_retried_without_duplicates(batch_service, batch_reset, parts):
    inputs = parts(["a\n", "b\n", "c\n"])
    batch_service.faults.add(drop="after", operation="Tasks_CreateTaskCollection", count=1)
    op = operator(fan_out_inputs=inputs, task_template=TEMPLATE, wasb_conn_id="wasb_default")
    context = make_context()
    deferred = defer(op, context)
    # The first collection was added but its answer lost; the retry met TaskExists for all three.
    assert batch_service.request_log.count(operation="Tasks_CreateTaskCollection") == 2
    result = resume(op, deferred, context)
    assert [task["id"] for task in result["tasks"]] == ["part-00000", "part-00001", "part-00002"]


def test_a_job_of_another_pool_is_not_reused(batch_service, batch_reset, batch_client, batch_job_id):
    batch_client.create_job(batch_models.BatchJobCreateOptions({"id": batch_job_id, "poolInfo": {"poolId": "other"}}))
    op = operator(job_id=batch_job_id, tasks=[{"id": "t", "command": ["true"]}])
    with pytest.raises(AirflowException, match="already exists on pool 'other'"):
        op.execute(make_context())  # type: ignore[arg-type]


# -- the trigger --------------------------------------------------------------------------------------


def explicit_tasks(count: int, seconds: float = 0.0) -> list[dict[str, Any]]:
    return [{"id": f"t{index:04d}", "command": [sys.executable, "-c", f"import time; time.sleep({seconds})"]}
            for index in range(count)]


def test_trigger_makes_one_taskcounts_request_per_poll(batch_service, batch_reset):
    op = operator(tasks=explicit_tasks(20, seconds=0.5), poll_interval=0.2)
    context = make_context()
    deferred = defer(op, context)
    seq = batch_service.request_log.last_seq()
    result = resume(op, deferred, context)
    assert len(result["tasks"]) == 20
    entries = batch_service.request_log.entries(since=seq)
    polls = [entry for entry in entries if entry["operation"] == TASK_COUNTS]
    assert len(polls) >= 3
    # While waiting, nothing but task counts: the only other requests are the resume step's.
    first_resume = next(index for index, entry in enumerate(entries) if entry["operation"] != TASK_COUNTS)
    assert all(entry["operation"] == TASK_COUNTS for entry in entries[:first_resume])
    assert len(entries[:first_resume]) == len(polls)


def test_throttling_and_server_errors_are_retried_to_completion(batch_service, batch_reset):
    op = operator(tasks=explicit_tasks(3, seconds=0.3), poll_interval=0.2)
    context = make_context()
    deferred = defer(op, context)
    batch_service.faults.add(status=429, count=3, operation=TASK_COUNTS)
    batch_service.faults.add(status=503, count=3, operation=TASK_COUNTS)
    seq = batch_service.request_log.last_seq()
    result = resume(op, deferred, context, max_backoff=0.3)  # the production cap is 30 s
    assert [task["exit_code"] for task in result["tasks"]] == [0, 0, 0]
    statuses = [entry["status"] for entry in batch_service.request_log.entries(since=seq)
                if entry["operation"] == TASK_COUNTS]
    assert statuses.count(429) == 3 and statuses.count(503) == 3 and statuses[-1] == 200


def test_transient_errors_beyond_the_budget_end_in_an_error_event(batch_service, batch_reset, batch_client,
                                                                  batch_job_id):
    batch_client.create_job(batch_models.BatchJobCreateOptions({"id": batch_job_id, "poolInfo": {"poolId": POOL}}))
    batch_service.faults.add(status=503, share=1.0, operation=TASK_COUNTS)
    trigger = AzureBatchJobTrigger(batch_job_id, "azure_batch_default", deadline=time.time() + 60,
                                   poll_interval=0.2, transient_error_budget=2, max_backoff=0.5)
    payload = asyncio.run(first_event(trigger))
    assert payload["status"] == "error"
    assert "gave up after" in payload["message"] and "HTTP 503" in payload["message"]


def test_missing_job_is_an_error_not_a_wait(batch_service, batch_reset):
    trigger = AzureBatchJobTrigger("no-such-job", "azure_batch_default", deadline=time.time() + 60, poll_interval=0.2)
    payload = asyncio.run(first_event(trigger))
    assert payload["status"] == "error" and "404" in payload["message"]


def test_trigger_rebuilt_mid_wait_resumes_with_the_remaining_time(batch_service, batch_reset):
    """A triggerer restart: the running trigger is cancelled, a new one is built from serialize()."""
    op = operator(tasks=explicit_tasks(2, seconds=3), poll_interval=0.2, timeout=dt.timedelta(seconds=30))
    context = make_context()
    deferred = defer(op, context)
    trigger = deferred.trigger

    async def run_then_stop() -> None:
        await asyncio.wait_for(first_event(rebuild(trigger)), timeout=1.0)  # type: ignore[arg-type]

    with pytest.raises(TimeoutError):
        asyncio.run(run_then_stop())
    seq = batch_service.request_log.last_seq()
    restarted = rebuild(trigger)  # type: ignore[arg-type]
    assert restarted.deadline == trigger.deadline  # type: ignore[attr-defined]
    payload = asyncio.run(first_event(restarted))
    assert payload["status"] == "success"
    assert batch_service.request_log.count(operation=TASK_COUNTS, since=seq) >= 1
    result = op.resume_execution(deferred.method_name, {"event": payload, **(deferred.kwargs or {})}, context)  # type: ignore[arg-type]
    assert [task["state"] for task in result["tasks"]] == ["completed", "completed"]


def test_deadline_already_past_gives_timeout_after_one_last_look(batch_service, batch_reset, batch_client,
                                                                 batch_job_id):
    batch_client.create_job(batch_models.BatchJobCreateOptions({"id": batch_job_id, "poolInfo": {"poolId": POOL}}))
    seq = batch_service.request_log.last_seq()
    trigger = AzureBatchJobTrigger(batch_job_id, "azure_batch_default", deadline=time.time() - 1, poll_interval=0.2)
    payload = asyncio.run(first_event(trigger))
    assert payload["status"] == "timeout"
    assert batch_service.request_log.count(operation=TASK_COUNTS, since=seq) == 1


def test_results_read_every_page_of_the_task_list(batch_service, batch_reset, monkeypatch):
    import airflow_provider_logproc.hooks.batch as batch_hook_module

    monkeypatch.setattr(batch_hook_module, "LIST_PAGE_SIZE", 2)
    op = operator(tasks=explicit_tasks(5))
    context = make_context()
    deferred = defer(op, context)
    seq = batch_service.request_log.last_seq()
    result = resume(op, deferred, context)
    assert [task["id"] for task in result["tasks"]] == [f"t{index:04d}" for index in range(5)]
    assert batch_service.request_log.count(operation="Tasks_ListTasks", since=seq) == 3


def test_delete_on_completion_removes_a_successful_job(batch_service, batch_reset):
    op = operator(tasks=explicit_tasks(2), delete_job_on_completion=True)
    context = make_context()
    deferred = defer(op, context)
    result = resume(op, deferred, context)
    assert len(result["tasks"]) == 2
    assert batch_service.request_log.count(operation="Jobs_DeleteJob") == 1


def test_a_job_terminated_elsewhere_with_waiting_tasks_fails_without_waiting_for_the_deadline(
        batch_service, batch_reset, batch_client):
    batch_service.set_scheduling_delay(3600)  # the tasks stay active
    op = operator(tasks=explicit_tasks(2), timeout=dt.timedelta(minutes=10))
    context = make_context()
    deferred = defer(op, context)
    batch_client.begin_terminate_job(deferred.trigger.job_id, {"terminateReason": "operator pulled the plug"},  # type: ignore[attr-defined]
                                     polling_interval=0.2).result()
    started = time.monotonic()
    with pytest.raises(AirflowException, match=r"ended with 2 of 2 task\(s\) not completed \(terminated"):
        resume(op, deferred, context, stall_check_every=3)
    assert time.monotonic() - started < 10


# -- on_kill ----------------------------------------------------------------------------------------


def test_on_kill_terminates_the_job(batch_service, batch_reset):
    op = operator(tasks=explicit_tasks(1, seconds=30))
    deferred = defer(op, make_context())
    op.on_kill()
    job_id = deferred.trigger.job_id  # type: ignore[attr-defined]
    client = batch_service.client()
    for _ in range(50):
        if client.get_job(job_id).state == "completed":
            break
        time.sleep(0.2)
    job = client.get_job(job_id)
    assert job.state == "completed" and "killed" in (job.execution_info.termination_reason or "")


# -- a whole DAG run ------------------------------------------------------------------------------


def test_dag_test_defers_to_the_trigger_and_returns_the_outputs(batch_service, batch_reset, parts, blob_container,
                                                                airflow_db, caplog, capsys):
    from airflow.timetables.interval import CronDataIntervalTimetable
    from airflow.utils.state import DagRunState, TaskInstanceState

    inputs = parts([f"{index}\n" for index in range(5)])
    results = blob_container("results")
    with DAG(dag_id=f"batch_dag_{uuid.uuid4().hex[:8]}", schedule=CronDataIntervalTimetable("@daily", timezone="UTC"),
             start_date=DAY - dt.timedelta(days=3), catchup=False) as dag:
        AzureBatchJobOperator(task_id="analyze", pool_id="local-pool", fan_out_inputs=inputs, task_template=TEMPLATE,
                              wasb_conn_id="wasb_default", output_container=results, poll_interval=0.3,
                              deferrable=True)
    register_dag(dag)
    seq = batch_service.request_log.last_seq()
    with caplog.at_level(logging.INFO):
        dag_run = dag.test(logical_date=DAY + dt.timedelta(days=1))
    assert dag_run.state == DagRunState.SUCCESS
    ti = next(iter(dag_run.get_task_instances()))
    assert ti.state == TaskInstanceState.SUCCESS
    result = ti.xcom_pull(task_ids="analyze")
    assert len(result["tasks"]) == 5 and len(result["outputs"]) == 5
    assert result["job_id"] == f"{dag.dag_id}-analyze-20260301-20260302"
    # The wait happened in the trigger (deferral), polling task counts.
    assert batch_service.request_log.count(operation=TASK_COUNTS, since=seq) >= 1
    assert "trigger reported success" in caplog.text + capsys.readouterr().out
