"""The local Batch account: jobs, tasks, the scheduler over the pool's task slots, and task execution.

Task execution follows Batch on Linux: the command line is split like a POSIX shell would split it
(``shlex``) and run directly, without a shell; ``environmentSettings`` plus the ``AZ_BATCH_*``
variables; a directory per task (``stdout.txt``, ``stderr.txt``, ``wd/``); resource files downloaded
before the start; output files uploaded after the process exits, per their ``uploadCondition``.

Task processes stay in the server's process group, so killing the server's group kills them too.
"""

from __future__ import annotations

import asyncio
import contextlib
import glob
import logging
import os
import shlex
import shutil
import signal
import sys
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp

from logproc_local.batch_service import blobs, store
from logproc_local.batch_service.model import (
    ID_PATTERN,
    BatchApiError,
    Job,
    Task,
    bad_property,
    change_count,
    missing_property,
    parse_duration,
    unsupported_property,
    utc_now,
)

log = logging.getLogger("localbatch")

NODE_ID = "tvmps_local_0"
MAX_TASKS_PER_COLLECTION = 100
# What a task inherits from the server's environment: enough to find programs and a home, no secrets.
DEFAULT_TASK_ENV_PASSTHROUGH = ("PATH", "HOME", "LANG", "LC_ALL", "TZ", "TMPDIR", "VIRTUAL_ENV", "PYTHONPATH")
UNSUPPORTED_TASK_PROPERTIES = {
    "multiInstanceSettings": "multi-instance tasks need several nodes; the local pool has one",
    "dependsOn": "task dependencies are not implemented by the local Batch service",
    "exitConditions": "exit conditions are not implemented by the local Batch service",
    "applicationPackageReferences": "application packages are not available locally",
    "authenticationTokenSettings": "authentication tokens are not issued by the local Batch service",
}
UNSUPPORTED_JOB_PROPERTIES = {
    "jobManagerTask": "job manager tasks are not implemented by the local Batch service",
    "jobPreparationTask": "job preparation tasks are not implemented by the local Batch service",
    "jobReleaseTask": "job release tasks are not implemented by the local Batch service",
}


@dataclass
class PoolConfig:
    pool_id: str = "local-pool"
    task_slots: int = 4
    vm_size: str = "standard_local"


def _exists_error(kind: str, entity_id: str) -> BatchApiError:
    return BatchApiError(409, f"{kind}Exists", f"The specified {kind.lower()} already exists.",
                         {f"{kind}Id": entity_id} if kind != "Job" else None)


def job_not_found(job_id: str) -> BatchApiError:
    return BatchApiError(404, "JobNotFound", "The specified job does not exist.")


def task_not_found(task_id: str) -> BatchApiError:
    return BatchApiError(404, "TaskNotFound", "The specified task does not exist.")


def _check_id(value: Any, name: str = "id") -> str:
    if value is None:
        raise missing_property(name)
    if not isinstance(value, str) or not ID_PATTERN.match(value):
        raise bad_property(name, "ids have 1 to 64 characters: letters, digits, hyphens and underscores", value)
    return value


def _check_environment(settings: Any, name: str) -> None:
    if settings is None:
        return
    if not isinstance(settings, list) or not all(isinstance(item, dict) and item.get("name") for item in settings):
        raise bad_property(name, "a list of {name, value} objects")


def validate_job(spec: Any) -> dict[str, Any]:
    if not isinstance(spec, dict):
        raise BatchApiError(400, "InvalidRequestBody", "The request body is not a JSON object.")
    _check_id(spec.get("id"))
    pool_info = spec.get("poolInfo")
    if not isinstance(pool_info, dict):
        raise missing_property("poolInfo")
    if pool_info.get("autoPoolSpecification") is not None:
        raise unsupported_property("poolInfo.autoPoolSpecification",
                                   "the local Batch service has one fixed pool; give poolInfo.poolId")
    if not pool_info.get("poolId"):
        raise missing_property("poolInfo.poolId")
    for name, why in UNSUPPORTED_JOB_PROPERTIES.items():
        if spec.get(name) is not None:
            raise unsupported_property(name, why)
    _check_environment(spec.get("commonEnvironmentSettings"), "commonEnvironmentSettings")
    _validate_job_mutable(spec)
    return spec


def _validate_job_mutable(spec: dict[str, Any]) -> None:
    mode = spec.get("onAllTasksComplete")
    if mode is not None and str(mode).lower() not in ("noaction", "terminatejob"):
        raise bad_property("onAllTasksComplete", "one of noaction, terminatejob", mode)
    failure_mode = spec.get("onTaskFailure")
    if failure_mode is not None and str(failure_mode).lower() not in ("noaction", "performexitoptionsjobaction"):
        raise bad_property("onTaskFailure", "one of noaction, performexitoptionsjobaction", failure_mode)
    constraints = spec.get("constraints")
    if constraints is not None:
        if not isinstance(constraints, dict):
            raise bad_property("constraints", "an object")
        if constraints.get("maxWallClockTime") is not None:
            parse_duration(constraints["maxWallClockTime"], "constraints.maxWallClockTime")
        retries = constraints.get("maxTaskRetryCount")
        if retries is not None and (not isinstance(retries, int) or retries < -1):
            raise bad_property("constraints.maxTaskRetryCount", "an integer >= -1", retries)
    parallel = spec.get("maxParallelTasks")
    if parallel is not None and (not isinstance(parallel, int) or parallel == 0 or parallel < -1):
        raise bad_property("maxParallelTasks", "-1 (no limit) or a positive integer", parallel)


def validate_task(spec: Any, task_slots: int) -> dict[str, Any]:
    if not isinstance(spec, dict):
        raise BatchApiError(400, "InvalidRequestBody", "A task in the request body is not a JSON object.")
    _check_id(spec.get("id"))
    command_line = spec.get("commandLine")
    if command_line is None:
        raise missing_property("commandLine")
    if not isinstance(command_line, str) or not command_line.strip():
        raise bad_property("commandLine", "a non-empty string", command_line)
    for name, why in UNSUPPORTED_TASK_PROPERTIES.items():
        if spec.get(name):
            raise unsupported_property(name, why)
    _check_environment(spec.get("environmentSettings"), "environmentSettings")
    for index, resource in enumerate(spec.get("resourceFiles") or []):
        where = f"resourceFiles[{index}]"
        if not isinstance(resource, dict):
            raise bad_property(where, "an object")
        sources = [key for key in ("httpUrl", "storageContainerUrl", "autoStorageContainerName") if resource.get(key)]
        if len(sources) != 1:
            raise bad_property(where, "exactly one of httpUrl, storageContainerUrl, autoStorageContainerName")
        if sources[0] == "autoStorageContainerName":
            raise unsupported_property(f"{where}.autoStorageContainerName",
                                       "the local account has no auto-storage account; use a container SAS URL")
        if sources[0] == "httpUrl" and not resource.get("filePath"):
            raise missing_property(f"{where}.filePath")
        if resource.get("blobPrefix") and sources[0] != "storageContainerUrl":
            raise bad_property(f"{where}.blobPrefix", "only with storageContainerUrl")
        _check_relative(resource.get("filePath"), f"{where}.filePath")
    for index, output in enumerate(spec.get("outputFiles") or []):
        where = f"outputFiles[{index}]"
        if not isinstance(output, dict):
            raise bad_property(where, "an object")
        if not output.get("filePattern"):
            raise missing_property(f"{where}.filePattern")
        container = (output.get("destination") or {}).get("container")
        if not isinstance(container, dict) or not container.get("containerUrl"):
            raise missing_property(f"{where}.destination.container.containerUrl")
        condition = (output.get("uploadOptions") or {}).get("uploadCondition")
        if condition is None:
            raise missing_property(f"{where}.uploadOptions.uploadCondition")
        if str(condition).lower() not in ("tasksuccess", "taskfailure", "taskcompletion"):
            raise bad_property(f"{where}.uploadOptions.uploadCondition",
                               "one of tasksuccess, taskfailure, taskcompletion", condition)
    constraints = spec.get("constraints") or {}
    if not isinstance(constraints, dict):
        raise bad_property("constraints", "an object")
    for name in ("maxWallClockTime", "retentionTime"):
        if constraints.get(name) is not None:
            parse_duration(constraints[name], f"constraints.{name}")
    retries = constraints.get("maxTaskRetryCount")
    if retries is not None and (not isinstance(retries, int) or retries < -1):
        raise bad_property("constraints.maxTaskRetryCount", "an integer >= -1", retries)
    slots = spec.get("requiredSlots")
    if slots is not None and (not isinstance(slots, int) or not 1 <= slots <= task_slots):
        raise bad_property("requiredSlots", f"an integer from 1 to the pool's taskSlotsPerNode ({task_slots})", slots)
    return spec


def _check_relative(path: Any, name: str) -> None:
    if path is None:
        return
    if not isinstance(path, str) or path.startswith("/") or ".." in Path(path).parts:
        raise bad_property(name, "a path relative to the task working directory, without '..'", path)


def _descendants(pid: int) -> list[int]:
    """Return the live descendants of ``pid`` (from /proc), deepest last."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            raw = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        parent = int(raw[raw.rfind(")") + 2 :].split()[1])
        children.setdefault(parent, []).append(int(entry))
    found: list[int] = []
    frontier = [pid]
    while frontier:
        current = frontier.pop()
        for child in children.get(current, []):
            found.append(child)
            frontier.append(child)
    return found


def kill_tree(pid: int) -> None:
    """SIGKILL a task process and everything it started (they share the server's process group)."""
    for target in [pid, *_descendants(pid)]:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(target, signal.SIGKILL)


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

    def _next_seq(self) -> int:
        self._seq += 1
        return self._seq

    def wake(self) -> None:
        self._wake.set()

    def node_info(self) -> dict[str, Any]:
        return {
            "affinityId": f"TVM:{NODE_ID}",
            "nodeUrl": f"{self.base_url}/pools/{self.pool.pool_id}/nodes/{NODE_ID}",
            "poolId": self.pool.pool_id,
            "nodeId": NODE_ID,
        }

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
        allowed = {"priority", "allowTaskPreemption", "maxParallelTasks", "constraints", "poolInfo",
                   "onAllTasksComplete", "metadata", "networkConfiguration"}
        unknown = set(patch) - allowed
        if unknown:
            raise unsupported_property(sorted(unknown)[0], "this property cannot be updated")
        _validate_job_mutable(patch)
        if "poolInfo" in patch and not (patch["poolInfo"] or {}).get("poolId"):
            raise missing_property("poolInfo.poolId")
        if (str(job.spec.get("onAllTasksComplete") or "noaction").lower() == "terminatejob"
                and str(patch.get("onAllTasksComplete", "terminatejob")).lower() == "noaction"):
            raise bad_property("onAllTasksComplete", "cannot change from terminatejob to noaction")
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

    def task_counts(self, job: Job) -> dict[str, Any]:
        counts = {"active": 0, "running": 0, "completed": 0, "succeeded": 0, "failed": 0}
        slots = dict(counts)
        for task in job.tasks.values():
            bucket = "running" if task.state in ("preparing", "running") else task.state
            counts[bucket] += 1
            slots[bucket] += task.required_slots
            if task.state == "completed":
                outcome = "succeeded" if task.result == "success" else "failed"
                counts[outcome] += 1
                slots[outcome] += task.required_slots
        return {"taskCounts": counts, "taskSlotCounts": slots}

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
            self._complete(task, result="failure", failure=_task_ended("Task Was Ended by User Request"))
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
            running = 0
            if job.max_parallel_tasks != -1:
                running = sum(1 for task in job.tasks.values() if task.state in ("preparing", "running"))
            for key, task in list(job.pending.items()):
                if job.max_parallel_tasks != -1 and running >= job.max_parallel_tasks:
                    break
                if task.eligible_at > now:
                    next_due = task.eligible_at if next_due is None else min(next_due, task.eligible_at)
                    continue
                if task.required_slots > self.pool.task_slots - self.slots_in_use:
                    break  # first come, first served: a big task is not overtaken forever by small ones
                del job.pending[key]
                self.slots_in_use += task.required_slots
                running += 1
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
                self._complete(task, result="failure", failure=_task_ended(_end_message(task)))
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

        failure = await self._download_resources(task, work_dir)
        if failure is not None:
            self._complete(task, result="failure", failure=failure)
            return False
        if task.end_reason:
            self._complete(task, result="failure", failure=_task_ended(_end_message(task)))
            return False

        container = task.spec.get("containerSettings")
        if container:
            log.info("task %s/%s: containerSettings recorded (imageName=%s); there is no Docker engine here, "
                     "so the command line runs directly on this machine", job.id, task.id,
                     container.get("imageName"))
        task.set_state("running")
        task.touch()
        self.tasks_run += 1
        exit_code, failure, timed_out = await self._execute(task, task_dir, work_dir)
        if exit_code is not None and exit_code > 128 and not task.end_reason and not timed_out:
            # Stopping the service signals its whole process group, tasks included. Give the
            # service's own signal handler a moment: a task killed by the shutdown is not a task
            # failure; it stays running in the saved state and is requeued after a restart.
            await asyncio.sleep(0.1)
            if self.shutting_down:
                raise asyncio.CancelledError
        if task.end_reason and failure is None and not timed_out:
            failure = _task_ended(_end_message(task))
        if exit_code is not None and failure is None and exit_code != 0:
            failure = {
                "category": "usererror",
                "code": "FailureExitCode",
                "message": "The task process exited with an unexpected exit code",
                "details": [{"name": "Message", "value": "The task process exited with an unexpected exit code"}],
            }
        if exit_code is not None and not task.end_reason:
            upload_failure = await self._upload_outputs(task, work_dir, succeeded=exit_code == 0 and not timed_out)
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

    def _environment(self, task: Task, task_dir: Path, work_dir: Path) -> dict[str, str]:
        assert task.job is not None
        env = {name: os.environ[name] for name in self.task_env_passthrough if name in os.environ}
        # `python` in a command line is the interpreter running this service, as a pool's start task
        # would have installed the packages a task needs on a real node.
        interpreter_dir = str(Path(sys.executable).parent)
        env["PATH"] = os.pathsep.join([interpreter_dir, *(p for p in env.get("PATH", "").split(os.pathsep)
                                                          if p and p != interpreter_dir)])
        for setting in (task.job.spec.get("commonEnvironmentSettings") or []) + (task.spec.get("environmentSettings")
                                                                                or []):
            env[str(setting["name"])] = str(setting.get("value") or "")
        env.update({
            "AZ_BATCH_ACCOUNT_NAME": self.account_name,
            "AZ_BATCH_ACCOUNT_URL": self.base_url,
            "AZ_BATCH_POOL_ID": self.pool.pool_id,
            "AZ_BATCH_NODE_ID": NODE_ID,
            "AZ_BATCH_NODE_IS_DEDICATED": "true",
            "AZ_BATCH_NODE_ROOT_DIR": str(self.node_root),
            "AZ_BATCH_NODE_SHARED_DIR": str(self.node_root / "shared"),
            "AZ_BATCH_NODE_STARTUP_DIR": str(self.node_root / "startup"),
            "AZ_BATCH_JOB_ID": task.job.id,
            "AZ_BATCH_TASK_ID": task.id,
            "AZ_BATCH_TASK_DIR": str(task_dir),
            "AZ_BATCH_TASK_WORKING_DIR": str(work_dir),
        })
        return env

    async def _execute(self, task: Task, task_dir: Path, work_dir: Path) -> tuple[int | None, dict | None, bool]:
        """Run the command line: (exit code, failure info, whether the wall clock ended it)."""
        assert task.job is not None
        try:
            argv = shlex.split(task.command_line)
        except ValueError as exc:
            return None, {"category": "usererror", "code": "InvalidCommandLine",
                          "message": f"The command line cannot be split into arguments: {exc}"}, False
        wall_clock = parse_duration(task.constraints()["maxWallClockTime"], "constraints.maxWallClockTime")
        with open(task_dir / "stdout.txt", "wb") as stdout, open(task_dir / "stderr.txt", "wb") as stderr:
            try:
                task.process = await asyncio.create_subprocess_exec(
                    *argv, cwd=work_dir, env=self._environment(task, task_dir, work_dir),
                    stdin=asyncio.subprocess.DEVNULL, stdout=stdout, stderr=stderr)
            except (FileNotFoundError, PermissionError, NotADirectoryError) as exc:
                stderr.write(f"{exc}\n".encode())
                return None, {"category": "usererror", "code": "CommandProgramNotFound",
                              "message": f"The specified command program is not found: {argv[0]!r} ({exc.strerror})"
                              }, False
        if task.end_reason:  # ended while starting
            kill_tree(task.process.pid)
        timed_out = False
        try:
            await asyncio.wait_for(task.process.wait(), timeout=min(wall_clock, 10 * 365 * 86400))
        except TimeoutError:
            timed_out = True
            kill_tree(task.process.pid)
            await task.process.wait()
        returncode = task.process.returncode
        assert returncode is not None
        exit_code = returncode if returncode >= 0 else 128 - returncode  # killed by signal N → 128+N
        if timed_out:
            log.info("task %s/%s: ended after its maxWallClockTime (%s)", task.job.id, task.id,
                     task.constraints()["maxWallClockTime"])
            return exit_code, {
                "category": "usererror",
                "code": "TaskEnded",
                "message": "The task ran longer than its maxWallClockTime and was ended by the Batch service",
                "details": [{"name": "Reason", "value": "MaxWallClockTimeExpiry"},
                            {"name": "MaxWallClockTime", "value": task.constraints()["maxWallClockTime"]}],
            }, True
        return exit_code, None, False

    async def _download_resources(self, task: Task, work_dir: Path) -> dict[str, Any] | None:
        assert self._session is not None
        for resource in task.spec.get("resourceFiles") or []:
            target_base = work_dir / (resource.get("filePath") or "")
            try:
                if resource.get("httpUrl"):
                    await blobs.download(self._session, resource["httpUrl"], target_base)
                    targets = [target_base]
                else:
                    container_url = resource["storageContainerUrl"]
                    names = await blobs.list_blobs(self._session, container_url, resource.get("blobPrefix"))
                    targets = []
                    for name in names:
                        target = target_base / name
                        if ".." in Path(name).parts:
                            raise blobs.BlobTransferError(f"blob name {name!r} escapes the working directory")
                        await blobs.download(self._session, blobs.blob_url(container_url, name), target)
                        targets.append(target)
                if resource.get("fileMode"):
                    for target in targets:
                        target.chmod(int(str(resource["fileMode"]), 8))
            except (blobs.BlobTransferError, OSError, ValueError) as exc:
                status = getattr(exc, "status", None)
                code = {403: "BlobAccessDenied", 404: "BlobNotFound"}.get(status or 0, "BlobDownloadMiscError")
                if resource.get("storageContainerUrl") and code == "BlobAccessDenied":
                    code = "ResourceContainerAccessDenied"
                log.info("task %s: resource file download failed: %s", task.id, exc)
                return {"category": "usererror", "code": code,
                        "message": "One or more resource files failed to download",
                        "details": [{"name": "Message", "value": str(exc)}]}
        return None

    async def _upload_outputs(self, task: Task, work_dir: Path, *, succeeded: bool) -> dict[str, Any] | None:
        assert self._session is not None
        for output in task.spec.get("outputFiles") or []:
            condition = str(output["uploadOptions"]["uploadCondition"]).lower()
            if (condition == "tasksuccess" and not succeeded) or (condition == "taskfailure" and succeeded):
                continue
            container = output["destination"]["container"]
            headers = {str(h["name"]): str(h.get("value") or "") for h in container.get("uploadHeaders") or []}
            try:
                for source, blob_name in match_output_files(work_dir, output["filePattern"], container.get("path")):
                    await blobs.upload(self._session, container["containerUrl"], blob_name, source, headers)
            except (blobs.BlobTransferError, OSError) as exc:
                log.info("task %s: output file upload failed: %s", task.id, exc)
                return {"category": "usererror", "code": "FileUploadError",
                        "message": "One or more output files failed to upload",
                        "details": [{"name": "Message", "value": str(exc)}]}
        return None

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


def _task_ended(message: str) -> dict[str, Any]:
    return {"category": "usererror", "code": "TaskEnded", "message": message}


def _end_message(task: Task) -> str:
    return {
        "job-terminated": "Task Was Ended because the Job was terminated",
        "job-deleted": "Task Was Ended because the Job was deleted",
    }.get(task.end_reason or "", "Task Was Ended by User Request")


def match_output_files(work_dir: Path, pattern: str, path: str | None) -> list[tuple[Path, str]]:
    """Find the files an output file spec uploads, and their blob names.

    ``pattern`` is relative to the working directory (``../stdout.txt`` reaches the task dir).
    Without wildcards, ``path`` is the blob name (default: the file name). With wildcards, ``path``
    is a virtual directory and each blob keeps its path relative to where the wildcards start.
    """
    has_wildcard = any(char in pattern for char in "*?[")
    full_pattern = os.path.normpath(os.path.join(work_dir, pattern))
    if not has_wildcard:
        source = Path(full_pattern)
        if not source.is_file():
            return []
        return [(source, path or source.name)]
    parts = Path(pattern).parts
    fixed = []
    for part in parts:
        if any(char in part for char in "*?["):
            break
        fixed.append(part)
    base = Path(os.path.normpath(os.path.join(work_dir, *fixed))) if fixed else work_dir
    matches = sorted({Path(found) for found in glob.glob(full_pattern, recursive=True) if os.path.isfile(found)})
    prefix = (path or "").strip("/")
    out = []
    for source in matches:
        relative = source.relative_to(base).as_posix()
        out.append((source, f"{prefix}/{relative}" if prefix else relative))
    return out

