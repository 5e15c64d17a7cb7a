"""The real azure-batch 15 SDK (sync) drives the local Batch service unmodified."""

from __future__ import annotations

import time

import pytest
from azure.batch import models as m
from azure.core.exceptions import ResourceExistsError, ResourceNotFoundError

pytestmark = pytest.mark.integration


def wait_for_completed(client, job_id: str, total: int, timeout: float = 60.0) -> m.BatchTaskCountsResult:
    deadline = time.monotonic() + timeout
    while True:
        counts = client.get_job_task_counts(job_id)
        if counts.task_counts.completed >= total:
            return counts
        assert time.monotonic() < deadline, f"tasks of {job_id} not complete after {timeout}s: {counts}"
        time.sleep(0.1)


def new_job(client, job_id: str, pool_id: str = "local-pool", **kwargs) -> None:
    client.create_job(m.BatchJobCreateOptions(id=job_id, pool_info=m.BatchPoolInfo(pool_id=pool_id), **kwargs))


def test_250_tasks_in_collections_then_list_filter_page_stdout_terminate_delete(batch_client, batch_service,
                                                                                 batch_job_id):
    new_job(batch_client, batch_job_id)
    with pytest.raises(ResourceExistsError):
        new_job(batch_client, batch_job_id)

    tasks = [
        m.BatchTaskCreateOptions(id=f"task-{i:03d}",
                                 command_line="/bin/true" if i % 50 else f"/bin/sh -c 'echo part {i}; exit {i % 3}'")
        for i in range(250)
    ]
    seq = batch_service.request_log.last_seq()
    result = batch_client.create_tasks(batch_job_id, tasks)
    assert len(result.result_values) == 250
    assert {r.status for r in result.result_values} == {m.BatchTaskAddStatus.SUCCESS}
    # ≤ 100 tasks per addtaskcollection call: 250 tasks are 3 requests.
    assert batch_service.request_log.count(operation="Tasks_CreateTaskCollection", since=seq) == 3

    counts = wait_for_completed(batch_client, batch_job_id, 250)
    # Tasks 0, 50, 100, 150, 200 echo and exit with i % 3: 0, 2, 1, 0, 2 → three failures.
    assert counts.task_counts.succeeded == 247
    assert counts.task_counts.failed == 3
    assert counts.task_slot_counts.completed == 250

    failed = list(batch_client.list_tasks(batch_job_id, filter="executionInfo/result eq 'failure'"))
    assert sorted(t.id for t in failed) == ["task-050", "task-100", "task-200"]
    assert all(t.execution_info.failure_info.code == "FailureExitCode" for t in failed)
    assert {t.id: t.execution_info.exit_code for t in failed} == {"task-050": 2, "task-100": 1, "task-200": 2}

    # Paging: 250 tasks in pages of 40 → 7 requests, every task exactly once, in order.
    seq = batch_service.request_log.last_seq()
    listed = list(batch_client.list_tasks(batch_job_id, max_results=40, select=["id", "state"]))
    assert [t.id for t in listed] == [f"task-{i:03d}" for i in range(250)]
    assert batch_service.request_log.count(operation="Tasks_ListTasks", since=seq) == 7
    assert listed[0].command_line is None  # $select kept only id and state

    completed_prefix = list(batch_client.list_tasks(
        batch_job_id, filter="startswith(id, 'task-01') and state eq 'completed'"))
    assert len(completed_prefix) == 10

    stdout = b"".join(batch_client.download_task_file(batch_job_id, "task-100", "stdout.txt"))
    assert stdout == b"part 100\n"
    assert b"".join(batch_client.download_task_file(batch_job_id, "task-100", "stdout.txt",
                                                     ocp_range="bytes=5-7")) == b"100"
    properties = batch_client.get_task_file_properties(batch_job_id, "task-100", "stdout.txt")
    assert properties.content_length == len(stdout)
    assert properties.is_directory is False

    batch_client.begin_terminate_job(batch_job_id, {"terminateReason": "test done"}, polling_interval=0.1).result()
    job = batch_client.get_job(batch_job_id)
    assert job.state == m.BatchJobState.COMPLETED
    assert job.execution_info.termination_reason == "test done"
    with pytest.raises(Exception, match="JobCompleted"):
        batch_client.create_task(batch_job_id, m.BatchTaskCreateOptions(id="late", command_line="/bin/true"))

    batch_client.begin_delete_job(batch_job_id, polling_interval=0.1).result()
    with pytest.raises(ResourceNotFoundError):
        batch_client.get_job(batch_job_id)
    assert batch_job_id not in [j.id for j in batch_client.list_jobs()]


def test_duplicate_task_in_a_collection_reports_task_exists(batch_client, batch_job_id):
    new_job(batch_client, batch_job_id)
    batch_client.create_task(batch_job_id, m.BatchTaskCreateOptions(id="a", command_line="/bin/true"))
    with pytest.raises(ResourceExistsError):
        batch_client.create_task(batch_job_id, m.BatchTaskCreateOptions(id="A", command_line="/bin/true"))
    result = batch_client.create_task_collection(batch_job_id, m.BatchTaskGroup(task_values=[
        m.BatchTaskCreateOptions(id="a", command_line="/bin/true"),
        m.BatchTaskCreateOptions(id="b", command_line="/bin/true"),
    ]))
    by_id = {r.task_id: r for r in result.result_values}
    assert by_id["a"].status == m.BatchTaskAddStatus.CLIENT_ERROR
    assert by_id["a"].error.code == "TaskExists"
    assert by_id["b"].status == m.BatchTaskAddStatus.SUCCESS


def test_pool_and_node_are_the_configured_local_pool(batch_client, batch_service):
    pool = batch_client.get_pool("local-pool")
    assert pool.task_slots_per_node == batch_service.task_slots
    assert pool.state == m.BatchPoolState.ACTIVE
    assert [p.id for p in batch_client.list_pools()] == ["local-pool"]
    nodes = list(batch_client.list_nodes("local-pool"))
    assert len(nodes) == 1
    with pytest.raises(ResourceNotFoundError):
        batch_client.get_pool("no-such-pool")
