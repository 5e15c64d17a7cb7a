"""AzureBatchJobSensor against the local Batch service: jobs started by plain SDK calls."""

from __future__ import annotations

import asyncio
import importlib
import sys
from typing import Any

import pytest
from airflow.sdk import DAG
from airflow.sdk.exceptions import AirflowException, AirflowSensorTimeout, TaskDeferred
from azure.batch import models as batch_models

from airflow_provider_logproc.operators.batch import first_event
from airflow_provider_logproc.sensors.batch import AzureBatchJobSensor

pytestmark = pytest.mark.integration

TASK_COUNTS = "Jobs_GetJobTaskCounts"


def start_job(client: Any, job_id: str, pool_id: str, scripts: list[str]) -> None:
    """What "elsewhere" does: create a job and add its tasks with the SDK, nothing of this provider."""
    pool_info = batch_models.BatchPoolInfo(pool_id=pool_id)
    client.create_job(batch_models.BatchJobCreateOptions(id=job_id, pool_info=pool_info))
    tasks = [
        batch_models.BatchTaskCreateOptions(id=f"t{index}", command_line=f"{sys.executable} -c \"{script}\"")
        for index, script in enumerate(scripts)
    ]
    client.create_tasks(job_id, tasks)


def sensor(job_id: str, **kwargs: Any) -> AzureBatchJobSensor:
    arguments: dict[str, Any] = {"task_id": "wait_for_job", "job_id": job_id, "poke_interval": 0.2, "timeout": 60}
    arguments.update(kwargs)
    with DAG("batch_sensor_test", schedule=None):
        return AzureBatchJobSensor(**arguments)


def run_deferred(waiter: AzureBatchJobSensor) -> Any:
    with pytest.raises(TaskDeferred) as deferred:
        waiter.execute({})  # type: ignore[arg-type]
    classpath, kwargs = deferred.value.trigger.serialize()
    module_name, class_name = classpath.rsplit(".", 1)
    trigger = getattr(importlib.import_module(module_name), class_name)(**kwargs)
    payload = asyncio.run(first_event(trigger))
    return waiter.resume_execution(deferred.value.method_name, {"event": payload}, {})  # type: ignore[arg-type]


def test_poke_mode_senses_a_job_to_completion(batch_service, batch_client, batch_job_id):
    start_job(batch_client, batch_job_id, batch_service.pool_id, ["import time; time.sleep(1)"] * 3)
    result = sensor(batch_job_id).execute({})  # type: ignore[arg-type]
    assert result == {"job_id": batch_job_id, "tasks": [
        {"id": f"t{index}", "state": "completed", "exit_code": 0} for index in range(3)
    ]}
    # Each poke was one task-counts request; the tasks were listed once, at the end.
    assert batch_service.request_log.count(operation=TASK_COUNTS) >= 2
    assert batch_service.request_log.count(operation="Tasks_ListTasks") == 1


def test_deferrable_senses_a_job_to_completion(batch_service, batch_client, batch_job_id):
    start_job(batch_client, batch_job_id, batch_service.pool_id, ["import time; time.sleep(1)"] * 2)
    result = run_deferred(sensor(batch_job_id, deferrable=True))
    assert [task["exit_code"] for task in result["tasks"]] == [0, 0]


def test_a_failing_job_fails_the_sensor_with_exit_codes_and_stderr(batch_service, batch_client, batch_job_id,
                                                                    capsys):
    script = "import sys; print('broken input', file=sys.stderr); sys.exit(7)"
    start_job(batch_client, batch_job_id, batch_service.pool_id, ["pass", script])
    with pytest.raises(AirflowException, match=r"1 of 2 task\(s\) failed: t1 \(exit code 7"):
        run_deferred(sensor(batch_job_id, deferrable=True))
    assert "broken input" in capsys.readouterr().out
    with pytest.raises(AirflowException, match=r"t1 \(exit code 7"):
        sensor(batch_job_id).execute({})  # type: ignore[arg-type]


def test_timeout_names_the_counts_and_soft_fail_skips(batch_service, batch_client, batch_job_id):
    start_job(batch_client, batch_job_id, batch_service.pool_id, ["import time; time.sleep(30)"])
    with pytest.raises(AirflowSensorTimeout, match=r"did not finish within 1(\.0)? s \(active \d, running \d"):
        run_deferred(sensor(batch_job_id, deferrable=True, timeout=1))
    batch_client.begin_terminate_job(batch_job_id, {"terminateReason": "test done"}, polling_interval=0.2)


def test_missing_job_fails_clearly(batch_service, batch_reset):
    with pytest.raises(AirflowException, match="Batch job no-such-job does not exist"):
        sensor("no-such-job").execute({})  # type: ignore[arg-type]
