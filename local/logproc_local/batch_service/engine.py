"""The local Batch account: jobs, tasks and the scheduler over the pool's task slots.

What a task does once it has a slot (its process, resource and output files) is in ``node``; what
a job or task spec may say is checked in ``validation``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import shutil
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp

from logproc_local.batch_service import store
from logproc_local.batch_service.model import (
    BatchApiError,
    Job,
    Task,
    change_count,
    parse_duration,
    startable_tasks,
    utc_now,
)
from logproc_local.batch_service.node import (
    DEFAULT_TASK_ENV_PASSTHROUGH,
    NodeSettings,
    download_resources,
    end_message,
    kill_tree,
    process_failure,
    run_command_line,
    task_ended,
    upload_outputs,
)
from logproc_local.batch_service.validation import (
    job_not_found,
    task_not_found,
    validate_job,
    validate_job_update,
    validate_task,
)

__all__ = ["BatchAccount", "PoolConfig"]

log = logging.getLogger("localbatch")



@dataclass
class PoolConfig:
    pool_id: str = "local-pool"
    task_slots: int = 4
    vm_size: str = "standard_local"


class BatchAccount:
    """The state of the local Batch account and the machinery that runs its tasks."""

    def __init__(
        self,
        data_dir: Path,
        account_name: str,
        base_url: str,
        pool: PoolConfig,
        scheduling_delay: float = 0.0,
        task_env_passthrough: Iterable[str] = DEFAULT_TASK_ENV_PASSTHROUGH,
    ):
        self.data_dir = data_dir
        self.account_name = account_name
        self.base_url = base_url.rstrip("/")
        self.pool = pool
        self.scheduling_delay = scheduling_delay
        self.task_env_passthrough = tuple(task_env_passthrough)
        self.node_root = data_dir / "node"
        self.jobs: dict[str, Job] = {}
        self.slots_in_use = 0
        self.created = utc_now()
        self.tasks_run = 0
        self.tasks_succeeded = 0
        self._seq = 0
        self._wake = asyncio.Event()
        self._scheduler: asyncio.Task[None] | None = None
        self._session: aiohttp.ClientSession | None = None
        self._background: set[asyncio.Task[Any]] = set()
        self._saver: asyncio.Task[None] | None = None
        self._saved_changes = -1
        self.shutting_down = False

    # -- lifecycle -------------------------------------------------------------------------------

    async def start(self) -> None:
        for sub in ("shared", "startup", "workitems"):
            (self.node_root / sub).mkdir(parents=True, exist_ok=True)
        self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=None, sock_connect=30))
        self._restore()
        self._scheduler = asyncio.create_task(self._schedule_loop(), name="localbatch-scheduler")
        self._saver = asyncio.create_task(self._save_loop(), name="localbatch-saver")

    @property
    def state_path(self) -> Path:
        return self.data_dir / store.STATE_FILE

    def _restore(self) -> None:
        self.jobs, self._seq = store.load(self.state_path)
        for job in list(self.jobs.values()):
            if job.state == "terminating":
                self._spawn(self._finish_termination(job, []))
            elif job.state == "deleting":
                self._spawn(self._finish_delete(job))
            else:
                self._check_all_complete(job)

    async def _save_loop(self, interval: float = 1.0) -> None:
        while True:
            await asyncio.sleep(interval)
            try:
                await self.save()
            except OSError:
                log.exception("could not save the state to %s", self.state_path)

    async def save(self) -> None:
        """Write the jobs and tasks to disk if anything changed since the last write."""
        changes = change_count()
        if changes == self._saved_changes:
            return
        document = store.snapshot(self.jobs)
        await asyncio.to_thread(store.write, self.state_path, document)
        self._saved_changes = changes

    async def close(self) -> None:
        self.shutting_down = True
        for background in (self._scheduler, self._saver):
            if background:
                background.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await background
        # Saved before the tasks are killed: a running task is requeued when the service comes back.
        with contextlib.suppress(OSError):
            await self.save()
        for job in self.jobs.values():
            for task in job.tasks.values():
                self._kill(task)
        runners = [task.runner for job in self.jobs.values() for task in job.tasks.values() if task.runner]
        for runner in runners:
            runner.cancel()
        await asyncio.gather(*runners, *self._background, return_exceptions=True)
        if self._session:
            await self._session.close()

    @property
    def node_settings(self) -> NodeSettings:
        return NodeSettings(account_name=self.account_name, base_url=self.base_url, pool_id=self.pool.pool_id,
                            root=self.node_root, env_passthrough=self.task_env_passthrough)

    def _require_session(self) -> aiohttp.ClientSession:
        if self._session is None:
            raise RuntimeError("the Batch account has not been started")
        return self._session

    def _next_seq(self) -> int:
        self._seq += 1
        return self._seq

    def wake(self) -> None:
        self._wake.set()

    # -- jobs ------------------------------------------------------------------------------------

    def get_job(self, job_id: str) -> Job:
        job = self.jobs.get(job_id.lower())
        if job is None:
            raise job_not_found(job_id)
        return job

    def add_job(self, spec: Any) -> Job:
        spec = validate_job(spec)
        if spec["id"].lower() in self.jobs:
            raise BatchApiError(409, "JobExists", "The specified job already exists.")
        job = Job(id=spec["id"], state="active", seq=self._next_seq(), spec=spec)
        wall_clock = (spec.get("constraints") or {}).get("maxWallClockTime")
        if wall_clock is not None:
            job.deadline = time.monotonic() + parse_duration(wall_clock, "constraints.maxWallClockTime")
        self.jobs[job.id.lower()] = job
        if job.pool_id != self.pool.pool_id:
            log.warning("job %s names pool %r, which does not exist here (the local pool is %r): "
                        "its tasks will stay active", job.id, job.pool_id, self.pool.pool_id)
        self._check_all_complete(job)
        self.wake()
        return job

    def update_job(self, job: Job, patch: Any) -> None:
        """Jobs_UpdateJob (PATCH): the properties given replace the job's."""
        if not isinstance(patch, dict):
            raise BatchApiError(400, "InvalidRequestBody", "The request body is not a JSON object.")
        self.require_job_changeable(job)
        validate_job_update(job.spec, patch)
        job.spec.update(patch)
        job.touch()
        self._check_all_complete(job)
        self.wake()

    def require_job_changeable(self, job: Job) -> None:
        if job.state == "completed":
            raise BatchApiError(409, "JobCompleted", "The specified job is already in a completed state.")
        if job.state == "terminating":
            raise BatchApiError(409, "JobBeingTerminated", "The specified job is being terminated.")
        if job.state == "deleting":
            raise BatchApiError(409, "JobBeingDeleted", "The specified job has been marked for deletion and is "
                                                        "being garbage collected.")

    def terminate_job(self, job: Job, reason: str | None) -> None:
        self.require_job_changeable(job)
        self._terminate(job, reason or "UserTerminate")

    def _terminate(self, job: Job, reason: str) -> None:
        job.set_state("terminating")
        job.terminate_reason = reason
        job.touch()
        running = [task for task in job.tasks.values() if task.state in ("preparing", "running")]
        for task in running:
            task.end_reason = "job-terminated"
            self._kill(task)
        self._spawn(self._finish_termination(job, running))

    async def _finish_termination(self, job: Job, running: list[Task]) -> None:
        runners = [task.runner for task in running if task.runner]
        await asyncio.gather(*runners, return_exceptions=True)
        if job.state == "terminating":
            job.set_state("completed")
            job.end_time = utc_now()
            job.touch()
            log.info("job %s completed (%s)", job.id, job.terminate_reason)

    def delete_job(self, job: Job) -> None:
        if job.state == "deleting":
            raise BatchApiError(409, "JobBeingDeleted", "The specified job has been marked for deletion and is "
                                                        "being garbage collected.")
        job.set_state("deleting")
        job.touch()
        for task in job.tasks.values():
            task.end_reason = "job-deleted"
            self._kill(task)
        job.pending.clear()
        self._spawn(self._finish_delete(job))

    async def _finish_delete(self, job: Job) -> None:
        runners = [task.runner for task in job.tasks.values() if task.runner]
        await asyncio.gather(*runners, return_exceptions=True)
        directory = self.node_root / "workitems" / job.id
        await asyncio.to_thread(shutil.rmtree, directory, True)
        if self.jobs.get(job.id.lower()) is job:
            del self.jobs[job.id.lower()]
        log.info("job %s deleted", job.id)

    # -- tasks -----------------------------------------------------------------------------------

    def get_task(self, job: Job, task_id: str) -> Task:
        task = job.tasks.get(task_id.lower())
        if task is None:
            raise task_not_found(task_id)
        return task

    def add_task(self, job: Job, spec: Any) -> Task:
        self.require_job_changeable(job)
        spec = validate_task(spec, self.pool.task_slots)
        if spec["id"].lower() in job.tasks:
            raise BatchApiError(409, "TaskExists", "The specified task already exists.")
        task = Task(id=spec["id"], state="active", job=job, seq=self._next_seq(), spec=spec,
                    eligible_at=time.monotonic() + self.scheduling_delay)
        job.tasks[task.id.lower()] = task
        job.pending[task.id.lower()] = task
        job.touch()
        self.wake()
        return task

    def terminate_task(self, task: Task) -> None:
        assert task.job is not None
        if task.job.state in ("completed", "deleting"):
            self.require_job_changeable(task.job)
        if task.state == "completed":
            return  # the service answers 204 and leaves a completed task alone
        task.end_reason = "user"
        if task.state == "active":
            task.job.pending.pop(task.id.lower(), None)
            self._complete(task, result="failure", failure=task_ended("Task Was Ended by User Request"))
        else:
            self._kill(task)

    def _kill(self, task: Task) -> None:
        if task.process is not None and task.process.returncode is None:
            kill_tree(task.process.pid)
        elif task.runner is not None and not task.runner.done() and task.state == "preparing":
            task.runner.cancel()

    def task_dir(self, task: Task) -> Path:
        assert task.job is not None
        return self.node_root / "workitems" / task.job.id / "job-1" / task.id

    # -- scheduling ------------------------------------------------------------------------------

    async def _schedule_loop(self) -> None:
        while True:
            self._wake.clear()
            try:
                next_due = self._dispatch()
            except Exception:
                log.exception("scheduler pass failed")
                next_due = time.monotonic() + 1.0
            timeout = None if next_due is None else max(0.0, next_due - time.monotonic())
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout)

    def _dispatch(self) -> float | None:
        """Start what fits into free slots; the monotonic time of the next thing to look at again."""
        now = time.monotonic()
        next_due: float | None = None
        for job in sorted(self.jobs.values(), key=lambda j: (-j.priority, j.seq)):
            if job.deadline is not None and job.state == "active":
                if now >= job.deadline:
                    self._terminate(job, "MaxWallClockTimeExpiry")
                    continue
                next_due = job.deadline if next_due is None else min(next_due, job.deadline)
            if job.state != "active" or job.pool_id != self.pool.pool_id or not job.pending:
                continue
            startable, eligible_at = startable_tasks(job, now, self.pool.task_slots - self.slots_in_use)
            if eligible_at is not None:
                next_due = eligible_at if next_due is None else min(next_due, eligible_at)
            for key, task in startable:
                del job.pending[key]
                self.slots_in_use += task.required_slots
                task.set_state("preparing")
                task.ran_on_node = True
                task.touch()
                task.runner = asyncio.create_task(self._run(task), name=f"task-{job.id}-{task.id}")
        return next_due

    def _spawn(self, coroutine: Any) -> None:
        background = asyncio.create_task(coroutine)
        self._background.add(background)
        background.add_done_callback(self._background.discard)

    # -- execution -------------------------------------------------------------------------------

    async def _run(self, task: Task) -> None:
        assert task.job is not None
        requeue = False
        try:
            requeue = await self._attempt(task)
        except asyncio.CancelledError:
            if task.state != "completed" and not self.shutting_down:
                self._complete(task, result="failure", failure=task_ended(end_message(task)))
            raise
        except Exception as exc:  # a bug here must not leave the task running forever
            log.exception("task %s/%s: the local service failed to run it", task.job.id, task.id)
            self._complete(task, result="failure", failure={
                "category": "servererror", "code": "LocalServiceError", "message": f"{type(exc).__name__}: {exc}"})
        finally:
            self.slots_in_use -= task.required_slots
            task.process = None
            if requeue:
                task.job.pending[task.id.lower()] = task
            self._check_all_complete(task.job)
            self.wake()

    async def _attempt(self, task: Task) -> bool:
        """One try of a task; True when it is to be retried (back to active)."""
        assert task.job is not None
        job = task.job
        task_dir = self.task_dir(task)
        work_dir = task_dir / "wd"
        work_dir.mkdir(parents=True, exist_ok=True)
        task.exit_code = None
        task.failure_info = None
        task.result = None
        task.end_time = None
        task.start_time = utc_now()

        failure = await download_resources(self._require_session(), task, work_dir)
        if failure is not None:
            self._complete(task, result="failure", failure=failure)
            return False
        if task.end_reason:
            self._complete(task, result="failure", failure=task_ended(end_message(task)))
            return False

        container = task.spec.get("containerSettings")
        if container:
            log.info("task %s/%s: containerSettings recorded (imageName=%s); there is no Docker engine here, "
                     "so the command line runs directly on this machine", job.id, task.id,
                     container.get("imageName"))
        task.set_state("running")
        task.touch()
        self.tasks_run += 1
        exit_code, failure, timed_out = await run_command_line(task, task_dir, work_dir, self.node_settings)
        if exit_code is not None and exit_code > 128 and not task.end_reason and not timed_out:
            # Stopping the service signals its whole process group, tasks included. Give the
            # service's own signal handler a moment: a task killed by the shutdown is not a task
            # failure; it stays running in the saved state and is requeued after a restart.
            await asyncio.sleep(0.1)
            if self.shutting_down:
                raise asyncio.CancelledError
        failure = process_failure(task, exit_code, failure, timed_out=timed_out)
        if exit_code is not None and not task.end_reason:
            succeeded = exit_code == 0 and not timed_out
            upload_failure = await upload_outputs(self._require_session(), task, work_dir, succeeded=succeeded)
            if upload_failure is not None and failure is None:
                failure = upload_failure
        task.exit_code = exit_code
        retryable = (exit_code not in (None, 0) and not timed_out and not task.end_reason
                     and failure is not None and failure.get("code") == "FailureExitCode")
        max_retries = task.constraints()["maxTaskRetryCount"]
        if retryable and (max_retries == -1 or task.retry_count < max_retries) and job.state == "active":
            task.retry_count += 1
            task.last_retry_time = utc_now()
            task.set_state("active")
            task.touch()
            log.info("task %s/%s: exit code %s, retry %d of %s", job.id, task.id, exit_code, task.retry_count,
                     "unlimited" if max_retries == -1 else max_retries)
            return True
        self._complete(task, result="success" if failure is None else "failure", failure=failure)
        return False

    def _complete(self, task: Task, *, result: str, failure: dict[str, Any] | None) -> None:
        task.result = result
        task.failure_info = failure
        task.end_time = utc_now()
        if task.start_time is None:
            task.start_time = task.end_time
        task.set_state("completed")
        task.touch()
        if result == "success":
            self.tasks_succeeded += 1

    def _check_all_complete(self, job: Job) -> None:
        """onAllTasksComplete=terminatejob: a job with every task completed (or none) terminates."""
        if job.state != "active" or job.on_all_tasks_complete != "terminatejob":
            return
        if all(task.state == "completed" for task in job.tasks.values()):
            self._terminate(job, "AllTasksComplete")


