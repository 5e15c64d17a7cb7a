"""The local Batch service's pick of tasks to start: slots, maxParallelTasks, held-back tasks, order."""

from __future__ import annotations

from logproc_local.batch_service.model import Job, Task, startable_tasks, task_counts
from logproc_local.batch_service.node import process_failure


def make_job(*tasks: Task, max_parallel_tasks: int = -1) -> Job:
    job = Job(id="job", state="active", spec={"poolInfo": {"poolId": "local-pool"},
                                              "maxParallelTasks": max_parallel_tasks})
    for task in tasks:
        task.job = job
        job.tasks[task.id.lower()] = task
        job.pending[task.id.lower()] = task
    return job


def make_task(task_id: str, slots: int = 1, eligible_at: float = 0.0) -> Task:
    return Task(id=task_id, state="active", spec={"commandLine": "true", "requiredSlots": slots},
                eligible_at=eligible_at)


def picked_ids(job: Job, now: float, free_slots: int) -> list[str]:
    return [task.id for _key, task in startable_tasks(job, now, free_slots)[0]]


def test_tasks_start_in_queue_order_within_the_free_slots():
    job = make_job(make_task("a"), make_task("b"), make_task("c"))
    assert picked_ids(job, now=10.0, free_slots=2) == ["a", "b"]
    assert picked_ids(job, now=10.0, free_slots=0) == []


def test_a_big_task_that_does_not_fit_is_not_overtaken_by_smaller_ones():
    job = make_job(make_task("small"), make_task("big", slots=3), make_task("after"))
    assert picked_ids(job, now=10.0, free_slots=3) == ["small"]


def test_max_parallel_tasks_counts_the_running_ones():
    running = make_task("running")
    job = make_job(running, make_task("next"), make_task("later"), max_parallel_tasks=2)
    del job.pending["running"]
    running.state = "running"
    assert picked_ids(job, now=10.0, free_slots=4) == ["next"]


def test_a_task_waiting_out_its_delay_is_skipped_and_says_when_it_is_due():
    job = make_job(make_task("retrying", eligible_at=15.0), make_task("ready"), make_task("also", eligible_at=12.0))
    picked, eligible_at = startable_tasks(job, 10.0, 4)
    assert [task.id for _key, task in picked] == ["ready"]
    assert eligible_at == 12.0
    assert startable_tasks(job, 20.0, 4)[1] is None


def test_task_counts_split_completed_tasks_by_result_and_count_slots():
    done, failed, active = make_task("done", slots=2), make_task("failed"), make_task("active")
    job = make_job(done, failed, active)
    for task, result in ((done, "success"), (failed, "failure")):
        task.state, task.result = "completed", result
    counts = task_counts(job)
    assert counts["taskCounts"] == {"active": 1, "running": 0, "completed": 2, "succeeded": 1, "failed": 1}
    assert counts["taskSlotCounts"]["succeeded"] == 2


def test_process_failure_names_the_exit_code_or_the_services_ending():
    task = make_task("t")
    assert process_failure(task, 0, None, timed_out=False) is None
    failure = process_failure(task, 3, None, timed_out=False)
    assert failure is not None and failure["code"] == "FailureExitCode"
    task.end_reason = "job-terminated"
    ended = process_failure(task, 137, None, timed_out=False)
    assert ended is not None and ended["code"] == "TaskEnded" and "Job was terminated" in ended["message"]
