"""Task execution semantics: no shell, environment, states, slots, wall clock, retries, termination."""

from __future__ import annotations

import datetime as dt
import os
import time
import uuid
from pathlib import Path

import pytest
from azure.batch import models as m

from logproc_local.processes import group_alive
from tests.fixtures.batch import execution_info, failure_info

pytestmark = pytest.mark.integration


def new_job(client, job_id: str, **kwargs) -> None:
    client.create_job(m.BatchJobCreateOptions(id=job_id, pool_info=m.BatchPoolInfo(pool_id="local-pool"), **kwargs))


def wait_until(predicate, timeout: float = 30.0, what: str = "condition"):
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def completed(client, job_id: str, task_id: str, timeout: float = 30.0) -> m.BatchTask:
    return wait_until(lambda: (t := client.get_task(job_id, task_id)).state == m.BatchTaskState.COMPLETED and t,
                      timeout, f"{task_id} to complete")


def read_file(client, job_id: str, task_id: str, name: str) -> str:
    return b"".join(client.download_task_file(job_id, task_id, name)).decode()


def processes_with(marker: str) -> list[int]:
    found = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                if marker.encode() in Path(f"/proc/{entry}/cmdline").read_bytes():
                    found.append(int(entry))
            except OSError:
                continue
    return found


def test_command_line_runs_without_a_shell_with_batch_environment(batch_client, batch_job_id):
    new_job(batch_client, batch_job_id,
            common_environment_settings=[m.EnvironmentSetting(name="FROM_JOB", value="job-value")])
    batch_client.create_task(batch_job_id, m.BatchTaskCreateOptions(
        id="literal", command_line="/bin/echo $AZ_BATCH_TASK_ID 'two  words' | x"))
    batch_client.create_task(batch_job_id, m.BatchTaskCreateOptions(
        id="shell", command_line="/bin/sh -c 'echo $AZ_BATCH_JOB_ID $AZ_BATCH_TASK_ID $FROM_JOB $FROM_TASK; pwd; "
                                 "echo $AZ_BATCH_TASK_DIR; echo $AZ_BATCH_NODE_ROOT_DIR; echo oops >&2'",
        environment_settings=[m.EnvironmentSetting(name="FROM_TASK", value="task-value")]))
    completed(batch_client, batch_job_id, "literal")
    assert read_file(batch_client, batch_job_id, "literal", "stdout.txt") == "$AZ_BATCH_TASK_ID two  words | x\n"

    task = completed(batch_client, batch_job_id, "shell")
    lines = read_file(batch_client, batch_job_id, "shell", "stdout.txt").splitlines()
    assert lines[0] == f"{batch_job_id} shell job-value task-value"
    task_dir = Path(lines[2])
    assert Path(lines[1]) == task_dir / "wd"
    assert task_dir.is_relative_to(Path(lines[3]))
    assert read_file(batch_client, batch_job_id, "shell", "stderr.txt") == "oops\n"
    assert task.node_info is not None and task.node_info.pool_id == "local-pool"
    assert execution_info(task).exit_code == 0


def test_python_on_the_task_path_is_the_services_interpreter(batch_client, batch_job_id):
    import sys

    new_job(batch_client, batch_job_id)
    batch_client.create_task(batch_job_id, m.BatchTaskCreateOptions(
        id="py", command_line="python3 -c 'import sys, azure.batch; print(sys.prefix)'"))
    task = completed(batch_client, batch_job_id, "py")
    assert execution_info(task).exit_code == 0, read_file(batch_client, batch_job_id, "py", "stderr.txt")
    assert read_file(batch_client, batch_job_id, "py", "stdout.txt").strip() == sys.prefix


def test_max_parallel_tasks_limits_a_job(batch_client, batch_job_id):
    new_job(batch_client, batch_job_id, max_parallel_tasks=1)
    batch_client.create_tasks(batch_job_id, [m.BatchTaskCreateOptions(id=f"t{i}", command_line="/bin/sleep 0.2")
                                             for i in range(3)])
    wait_until(lambda: batch_client.get_job_task_counts(batch_job_id).task_counts.completed == 3, 20)
    assert max_overlap(list(batch_client.list_tasks(batch_job_id))) == 1


def test_missing_program_is_a_user_error_without_exit_code(batch_client, batch_job_id):
    new_job(batch_client, batch_job_id)
    batch_client.create_task(batch_job_id, m.BatchTaskCreateOptions(id="t", command_line="no-such-program --x"))
    task = completed(batch_client, batch_job_id, "t")
    assert execution_info(task).result == m.BatchTaskExecutionResult.FAILURE
    assert failure_info(task).code == "CommandProgramNotFound"
    assert failure_info(task).category == m.BatchErrorSourceCategory.USER_ERROR
    assert execution_info(task).exit_code is None


def test_nonzero_exit_code_gives_failure_info(batch_client, batch_job_id):
    new_job(batch_client, batch_job_id)
    batch_client.create_task(batch_job_id, m.BatchTaskCreateOptions(id="t", command_line="/bin/sh -c 'exit 42'"))
    task = completed(batch_client, batch_job_id, "t")
    info = execution_info(task)
    assert (info.exit_code, info.result, info.retry_count) == (42, m.BatchTaskExecutionResult.FAILURE, 0)
    assert failure_info(task).code == "FailureExitCode"
    assert info.start_time is not None and info.end_time is not None
    assert info.start_time <= info.end_time


def test_wall_clock_limit_kills_the_task_tree(batch_client, batch_job_id):
    new_job(batch_client, batch_job_id)
    marker = f"{uuid.uuid4().int % 1000 + 100}.{uuid.uuid4().int % 997}"
    batch_client.create_task(batch_job_id, m.BatchTaskCreateOptions(
        id="slow", command_line=f"/bin/sh -c 'sleep {marker}; echo never'",
        constraints=m.BatchTaskConstraints(max_wall_clock_time=dt.timedelta(seconds=1), max_task_retry_count=3)))
    task = completed(batch_client, batch_job_id, "slow", timeout=20)
    info = execution_info(task)
    assert info.result == m.BatchTaskExecutionResult.FAILURE
    failure = failure_info(task)
    assert failure.code == "TaskEnded"
    assert failure.details is not None
    assert {d.name: d.value for d in failure.details}["Reason"] == "MaxWallClockTimeExpiry"
    assert info.retry_count == 0  # the service ended it: not retried
    assert info.start_time is not None and info.end_time is not None
    assert (info.end_time - info.start_time).total_seconds() < 10
    assert task.constraints is not None and task.constraints.max_wall_clock_time == dt.timedelta(seconds=1)
    wait_until(lambda: not processes_with(f"sleep {marker}"), 5, "the task's child process to be gone")


def test_retries_until_max_task_retry_count(batch_client, batch_job_id):
    new_job(batch_client, batch_job_id)
    batch_client.create_task(batch_job_id, m.BatchTaskCreateOptions(
        id="always-fails", command_line="/bin/sh -c 'echo attempt >> ../attempts.txt; exit 3'",
        constraints=m.BatchTaskConstraints(max_task_retry_count=2)))
    batch_client.create_task(batch_job_id, m.BatchTaskCreateOptions(
        id="second-time-lucky",
        command_line="/bin/sh -c 'echo x >> attempts; test $(wc -l < attempts) -ge 2'",
        constraints=m.BatchTaskConstraints(max_task_retry_count=5)))
    fails = completed(batch_client, batch_job_id, "always-fails")
    assert execution_info(fails).retry_count == 2
    assert execution_info(fails).exit_code == 3
    assert execution_info(fails).last_retry_time is not None
    assert read_file(batch_client, batch_job_id, "always-fails", "attempts.txt") == "attempt\n" * 3
    lucky = completed(batch_client, batch_job_id, "second-time-lucky")
    assert execution_info(lucky).result == m.BatchTaskExecutionResult.SUCCESS
    assert execution_info(lucky).retry_count == 1


def test_job_level_retry_count_applies_to_tasks(batch_client, batch_job_id):
    new_job(batch_client, batch_job_id, constraints=m.BatchJobConstraints(max_task_retry_count=1))
    batch_client.create_task(batch_job_id, m.BatchTaskCreateOptions(id="t", command_line="/bin/false"))
    assert execution_info(completed(batch_client, batch_job_id, "t")).retry_count == 1


def max_overlap(tasks: list[m.BatchTask]) -> int:
    events = sorted([(execution_info(t).start_time, 1) for t in tasks] + [(execution_info(t).end_time, -1)
                                                                           for t in tasks],
                    key=lambda event: (event[0], event[1]))
    running = peak = 0
    for _, delta in events:
        running += delta
        peak = max(peak, running)
    return peak


def test_slot_limit_and_required_slots(batch_service_factory):
    service = batch_service_factory(task_slots=2)
    client = service.client()
    new_job(client, "slots")
    client.create_tasks("slots", [m.BatchTaskCreateOptions(id=f"t{i}", command_line="/bin/sleep 0.3")
                                  for i in range(6)])
    wait_until(lambda: client.get_job_task_counts("slots").task_counts.completed == 6, 30, "6 tasks")
    tasks = list(client.list_tasks("slots"))
    assert max_overlap(tasks) == 2

    new_job(client, "wide")
    client.create_task("wide", m.BatchTaskCreateOptions(id="a-narrow", command_line="/bin/sleep 0.3"))
    client.create_task("wide", m.BatchTaskCreateOptions(id="b-wide", command_line="/bin/sleep 0.3",
                                                        required_slots=2))
    client.create_task("wide", m.BatchTaskCreateOptions(id="c-narrow", command_line="/bin/sleep 0.3"))
    wait_until(lambda: client.get_job_task_counts("wide").task_counts.completed == 3, 30, "3 tasks")
    by_id = {t.id: t.execution_info for t in client.list_tasks("wide")}
    # The wide task needs the whole node: it runs alone, after the first and before the last.
    assert by_id["b-wide"].start_time >= by_id["a-narrow"].end_time
    assert by_id["c-narrow"].start_time >= by_id["b-wide"].end_time
    with pytest.raises(Exception, match="requiredSlots"):
        client.create_task("wide", m.BatchTaskCreateOptions(id="too-wide", command_line="/bin/true",
                                                            required_slots=3))


def test_scheduling_delay_lets_tests_see_active_then_preparing_running_completed(batch_client, batch_service,
                                                                                 batch_job_id):
    batch_service.set_scheduling_delay(1.0)
    new_job(batch_client, batch_job_id)
    batch_client.create_task(batch_job_id, m.BatchTaskCreateOptions(id="t", command_line="/bin/sleep 0.5"))
    assert batch_client.get_task(batch_job_id, "t").state == m.BatchTaskState.ACTIVE
    assert batch_client.get_job_task_counts(batch_job_id).task_counts.active == 1
    wait_until(lambda: batch_client.get_task(batch_job_id, "t").state == m.BatchTaskState.RUNNING, 10, "running")
    assert batch_client.get_job_task_counts(batch_job_id).task_counts.running == 1
    task = completed(batch_client, batch_job_id, "t")
    assert task.previous_state == m.BatchTaskState.RUNNING


def test_terminate_task_active_and_running(batch_client, batch_service, batch_job_id):
    new_job(batch_client, batch_job_id)
    batch_client.create_task(batch_job_id, m.BatchTaskCreateOptions(id="running", command_line="/bin/sleep 60"))
    wait_until(lambda: batch_client.get_task(batch_job_id, "running").state == m.BatchTaskState.RUNNING, 10)
    batch_service.set_scheduling_delay(30.0)
    batch_client.create_task(batch_job_id, m.BatchTaskCreateOptions(id="queued", command_line="/bin/true"))
    batch_client.terminate_task(batch_job_id, "queued")
    batch_client.terminate_task(batch_job_id, "running")
    for task_id in ("queued", "running"):
        task = completed(batch_client, batch_job_id, task_id, timeout=10)
        assert failure_info(task).code == "TaskEnded"
        assert execution_info(task).result == m.BatchTaskExecutionResult.FAILURE
    batch_client.terminate_task(batch_job_id, "queued")  # a completed task: accepted, nothing changes


def test_on_all_tasks_complete_terminates_the_job(batch_client, batch_job_id):
    new_job(batch_client, batch_job_id)
    batch_client.create_tasks(batch_job_id, [m.BatchTaskCreateOptions(id=f"t{i}", command_line="/bin/true")
                                             for i in range(5)])
    batch_client.update_job(batch_job_id, m.BatchJobUpdateOptions(
        all_tasks_complete_mode=m.BatchAllTasksCompleteMode.TERMINATE_JOB))
    job = wait_until(lambda: (j := batch_client.get_job(batch_job_id)).state == m.BatchJobState.COMPLETED and j,
                     20, "the job to complete")
    assert job.execution_info.termination_reason == "AllTasksComplete"
    assert job.execution_info.end_time is not None


def test_terminatejob_on_a_job_without_tasks_terminates_it_at_once(batch_client, batch_job_id):
    new_job(batch_client, batch_job_id, all_tasks_complete_mode=m.BatchAllTasksCompleteMode.TERMINATE_JOB)
    job = wait_until(lambda: (j := batch_client.get_job(batch_job_id)).state == m.BatchJobState.COMPLETED and j, 5)
    assert job.execution_info.termination_reason == "AllTasksComplete"


def test_job_wall_clock_terminates_job_and_running_tasks(batch_client, batch_job_id):
    new_job(batch_client, batch_job_id, constraints=m.BatchJobConstraints(max_wall_clock_time=dt.timedelta(seconds=1)))
    batch_client.create_task(batch_job_id, m.BatchTaskCreateOptions(id="t", command_line="/bin/sleep 60"))
    job = wait_until(lambda: (j := batch_client.get_job(batch_job_id)).state == m.BatchJobState.COMPLETED and j, 15)
    assert job.execution_info.termination_reason == "MaxWallClockTimeExpiry"
    assert failure_info(completed(batch_client, batch_job_id, "t")).code == "TaskEnded"


def test_container_settings_are_recorded_and_the_command_runs_locally(batch_client, batch_service, batch_job_id):
    new_job(batch_client, batch_job_id)
    batch_client.create_task(batch_job_id, m.BatchTaskCreateOptions(
        id="in-container", command_line="/bin/echo hi",
        container_settings=m.BatchTaskContainerSettings(image_name="python:3.11-slim")))
    task = completed(batch_client, batch_job_id, "in-container")
    assert task.container_settings is not None and task.container_settings.image_name == "python:3.11-slim"
    assert read_file(batch_client, batch_job_id, "in-container", "stdout.txt") == "hi\n"
    log = batch_service.process.log_path.read_text()
    assert f"task {batch_job_id}/in-container: containerSettings recorded (imageName=python:3.11-slim)" in log
    assert "no Docker engine" in log


@pytest.mark.parametrize("how", ["stop", "kill"])
def test_task_processes_die_with_the_service(batch_service_factory, how):
    service = batch_service_factory(task_slots=2)
    client = service.client(retry_total=0)
    marker = f"{uuid.uuid4().int % 1000 + 200}.{uuid.uuid4().int % 991}"
    new_job(client, "long")
    client.create_task("long", m.BatchTaskCreateOptions(id="t", command_line=f"/bin/sh -c 'sleep {marker}; true'"))
    wait_until(lambda: processes_with(f"sleep {marker}"), 10, "the task process to start")
    getattr(service, how)()
    assert not group_alive(service.pid)
    wait_until(lambda: not processes_with(f"sleep {marker}"), 5, "task processes to be gone")


@pytest.mark.parametrize("how", ["stop", "kill"])
def test_jobs_survive_a_restart_and_running_tasks_are_requeued(batch_service_factory, how):
    from logproc_local.batch_service import LocalBatchService

    service = batch_service_factory(task_slots=2)
    client = service.client()
    new_job(client, "survivor")
    client.create_tasks("survivor", [m.BatchTaskCreateOptions(id="done", command_line="/bin/echo before")])
    completed(client, "survivor", "done")
    client.create_task("survivor", m.BatchTaskCreateOptions(
        id="interrupted", command_line="/bin/sh -c 'echo run >> ../runs.txt; sleep 2'"))
    wait_until(lambda: client.get_task("survivor", "interrupted").state == m.BatchTaskState.RUNNING, 10)
    time.sleep(1.5)  # the state is written about once a second
    getattr(service, how)()

    again = LocalBatchService(service.data_dir, port=service.port, account_key=service.account_key,
                              task_slots=2).start()
    try:
        client = again.client()
        assert client.get_task("survivor", "done").execution_info.result == m.BatchTaskExecutionResult.SUCCESS
        assert read_file(client, "survivor", "done", "stdout.txt") == "before\n"
        task = completed(client, "survivor", "interrupted", timeout=20)
        assert execution_info(task).requeue_count == 1
        assert execution_info(task).result == m.BatchTaskExecutionResult.SUCCESS
        assert read_file(client, "survivor", "interrupted", "runs.txt") == "run\nrun\n"
        assert client.get_job_task_counts("survivor").task_counts.succeeded == 2
    finally:
        again.stop()
