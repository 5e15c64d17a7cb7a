"""Jobs and tasks of the local Batch service, and how they render as Batch REST documents."""

from __future__ import annotations

import asyncio
import datetime as dt
import itertools
import re
import time
from dataclasses import dataclass, field
from email.utils import format_datetime
from typing import Any
from urllib.parse import quote

ID_PATTERN = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
# What the service reports for an unlimited wall clock (TimeSpan.MaxValue) and the default retention.
UNLIMITED_DURATION = "P10675199DT2H48M5.4775807S"
DEFAULT_RETENTION = "P7D"
_DURATION = re.compile(
    r"^P(?:(?P<days>\d+(?:\.\d+)?)D)?"
    r"(?:T(?:(?P<hours>\d+(?:\.\d+)?)H)?(?:(?P<minutes>\d+(?:\.\d+)?)M)?(?:(?P<seconds>\d+(?:\.\d+)?)S)?)?$"
)


class BatchApiError(Exception):
    """An error answer in Batch's JSON error shape (``code``, ``message.value``, ``values``)."""

    def __init__(self, status: int, code: str, message: str, values: dict[str, str] | None = None,
                 headers: dict[str, str] | None = None):
        details = "".join(f"; {key}={value}" for key, value in (values or {}).items())
        super().__init__(f"{status} {code}: {message}{details}")
        self.status = status
        self.code = code
        self.message = message
        self.values = values or {}
        self.headers = headers or {}

    def body(self, request_id: str) -> dict[str, Any]:
        stamp = utc_now().strftime("%Y-%m-%dT%H:%M:%S.%f0Z")
        body: dict[str, Any] = {
            "code": self.code,
            "message": {"lang": "en-US", "value": f"{self.message}\nRequestId:{request_id}\nTime:{stamp}"},
        }
        if self.values:
            body["values"] = [{"key": key, "value": value} for key, value in self.values.items()]
        return body


def bad_property(name: str, reason: str, value: Any = None) -> BatchApiError:
    values = {"PropertyName": name, "Reason": reason}
    if value is not None:
        values["PropertyValue"] = str(value)[:200]
    return BatchApiError(400, "InvalidPropertyValue",
                         "The value provided for one of the properties in the request body is invalid.", values)


def missing_property(name: str) -> BatchApiError:
    return BatchApiError(400, "MissingRequiredProperty", "A required property was not specified in the request body.",
                         {"PropertyName": name})


def unsupported_property(name: str, why: str) -> BatchApiError:
    return BatchApiError(400, "UnsupportedProperty",
                         "One of the properties specified in the request body is not supported.",
                         {"PropertyName": name, "Reason": why})


def utc_now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def iso(value: dt.datetime) -> str:
    return value.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def rfc1123(value: dt.datetime) -> str:
    return format_datetime(value.astimezone(dt.UTC), usegmt=True)


def parse_duration(text: str, name: str) -> float:
    """Seconds in an ISO 8601 duration such as ``PT30S``, ``PT1H30M`` or ``P1DT2H``."""
    match = _DURATION.match(text) if isinstance(text, str) else None
    if not match or text in ("P", "PT"):
        raise bad_property(name, "not an ISO 8601 duration such as PT30S or P1DT2H", text)
    parts = {key: float(value) for key, value in match.groupdict().items() if value}
    return (parts.get("days", 0.0) * 86400 + parts.get("hours", 0.0) * 3600
            + parts.get("minutes", 0.0) * 60 + parts.get("seconds", 0.0))


_etag_counter = itertools.count(1)
_last_etag_seq = 0


def new_etag() -> str:
    """Batch-style ETag: ``0x`` and hex digits, different after every change."""
    global _last_etag_seq
    _last_etag_seq = next(_etag_counter)
    return f"0x{time.time_ns() // 100 + _last_etag_seq:X}"


def change_count() -> int:
    """How many entity versions were made so far (every change of a job or task makes one)."""
    return _last_etag_seq


@dataclass
class Stamped:
    """Identity and version of a REST entity (``eTag``, ``lastModified``) and its state history."""

    id: str
    state: str
    creation_time: dt.datetime = field(default_factory=utc_now)
    etag: str = field(default_factory=new_etag)
    last_modified: dt.datetime = field(default_factory=utc_now)
    state_transition_time: dt.datetime = field(default_factory=utc_now)
    previous_state: str | None = None
    previous_state_transition_time: dt.datetime | None = None

    def touch(self) -> None:
        self.etag = new_etag()
        self.last_modified = utc_now()

    def set_state(self, state: str) -> None:
        if state == self.state:
            return
        self.previous_state, self.previous_state_transition_time = self.state, self.state_transition_time
        self.state, self.state_transition_time = state, utc_now()

    def state_fields(self) -> dict[str, Any]:
        fields: dict[str, Any] = {
            "state": self.state,
            "stateTransitionTime": iso(self.state_transition_time),
        }
        if self.previous_state is not None and self.previous_state_transition_time is not None:
            fields["previousState"] = self.previous_state
            fields["previousStateTransitionTime"] = iso(self.previous_state_transition_time)
        return fields


@dataclass(eq=False)
class Task(Stamped):
    job: Job | None = None
    seq: int = 0
    spec: dict[str, Any] = field(default_factory=dict)
    retry_count: int = 0
    requeue_count: int = 0
    start_time: dt.datetime | None = None
    end_time: dt.datetime | None = None
    last_retry_time: dt.datetime | None = None
    exit_code: int | None = None
    result: str | None = None
    failure_info: dict[str, Any] | None = None
    eligible_at: float = 0.0  # monotonic time before which the scheduler leaves it active
    ran_on_node: bool = False
    end_reason: str | None = None  # why the service ends it: "user", "job-terminated", "job-deleted"
    process: asyncio.subprocess.Process | None = None
    runner: asyncio.Task[None] | None = None

    @property
    def required_slots(self) -> int:
        return int(self.spec.get("requiredSlots") or 1)

    @property
    def command_line(self) -> str:
        return str(self.spec["commandLine"])

    def constraints(self) -> dict[str, Any]:
        job_constraints = (self.job.spec.get("constraints") if self.job else None) or {}
        own = self.spec.get("constraints") or {}
        retries = own.get("maxTaskRetryCount", job_constraints.get("maxTaskRetryCount", 0))
        return {
            "maxWallClockTime": own.get("maxWallClockTime", UNLIMITED_DURATION),
            "retentionTime": own.get("retentionTime", DEFAULT_RETENTION),
            "maxTaskRetryCount": int(retries),
        }

    def url(self, base_url: str) -> str:
        assert self.job is not None
        return f"{base_url}/jobs/{quote(self.job.id, safe='')}/tasks/{quote(self.id, safe='')}"

    def execution_info(self) -> dict[str, Any]:
        info: dict[str, Any] = {"retryCount": self.retry_count, "requeueCount": self.requeue_count}
        if self.start_time:
            info["startTime"] = iso(self.start_time)
        if self.end_time:
            info["endTime"] = iso(self.end_time)
        if self.exit_code is not None:
            info["exitCode"] = self.exit_code
        if self.failure_info:
            info["failureInfo"] = self.failure_info
        if self.last_retry_time:
            info["lastRetryTime"] = iso(self.last_retry_time)
        if self.result:
            info["result"] = self.result
        return info

    def to_rest(self, base_url: str, node: dict[str, Any]) -> dict[str, Any]:
        doc: dict[str, Any] = {
            "id": self.id,
            "url": self.url(base_url),
            "eTag": self.etag,
            "creationTime": iso(self.creation_time),
            "lastModified": iso(self.last_modified),
            **self.state_fields(),
            "commandLine": self.command_line,
        }
        for name in ("displayName", "containerSettings", "resourceFiles", "outputFiles", "environmentSettings",
                     "affinityInfo", "userIdentity"):
            if self.spec.get(name) is not None:
                doc[name] = self.spec[name]
        doc["constraints"] = self.constraints()
        doc["requiredSlots"] = self.required_slots
        if self.state != "active" or self.retry_count or self.start_time:
            doc["executionInfo"] = self.execution_info()
        if self.ran_on_node:
            doc["nodeInfo"] = {
                **node,
                "taskRootDirectory": f"workitems/{self.job.id if self.job else ''}/job-1/{self.id}",
                "taskRootDirectoryUrl": f"{base_url}/pools/{node['poolId']}/nodes/{node['nodeId']}/files/"
                                        f"workitems/{quote(self.job.id if self.job else '', safe='')}/job-1/"
                                        f"{quote(self.id, safe='')}",
            }
        return doc


@dataclass(eq=False)
class Job(Stamped):
    seq: int = 0
    spec: dict[str, Any] = field(default_factory=dict)
    tasks: dict[str, Task] = field(default_factory=dict)  # by lower-cased id: ids are case-insensitive
    pending: dict[str, Task] = field(default_factory=dict)  # active tasks, in the order they were queued
    start_time: dt.datetime = field(default_factory=utc_now)
    end_time: dt.datetime | None = None
    terminate_reason: str | None = None
    deadline: float | None = None  # monotonic: the job's maxWallClockTime

    @property
    def pool_id(self) -> str | None:
        return (self.spec.get("poolInfo") or {}).get("poolId")

    @property
    def on_all_tasks_complete(self) -> str:
        return str(self.spec.get("onAllTasksComplete") or "noaction").lower()

    @property
    def priority(self) -> int:
        return int(self.spec.get("priority") or 0)

    @property
    def max_parallel_tasks(self) -> int:
        value = self.spec.get("maxParallelTasks")
        return -1 if value is None else int(value)

    def url(self, base_url: str) -> str:
        return f"{base_url}/jobs/{quote(self.id, safe='')}"

    def to_rest(self, base_url: str) -> dict[str, Any]:
        constraints = self.spec.get("constraints") or {}
        doc: dict[str, Any] = {
            "id": self.id,
            "url": self.url(base_url),
            "eTag": self.etag,
            "lastModified": iso(self.last_modified),
            "creationTime": iso(self.creation_time),
            **self.state_fields(),
            "priority": self.priority,
            "allowTaskPreemption": bool(self.spec.get("allowTaskPreemption", False)),
            "maxParallelTasks": self.max_parallel_tasks,
            "usesTaskDependencies": bool(self.spec.get("usesTaskDependencies", False)),
            "constraints": {
                "maxWallClockTime": constraints.get("maxWallClockTime", UNLIMITED_DURATION),
                "maxTaskRetryCount": int(constraints.get("maxTaskRetryCount", 0)),
            },
            "poolInfo": self.spec.get("poolInfo") or {},
            "onAllTasksComplete": self.on_all_tasks_complete,
            "onTaskFailure": str(self.spec.get("onTaskFailure") or "noaction").lower(),
        }
        for name in ("displayName", "commonEnvironmentSettings", "metadata", "networkConfiguration"):
            if self.spec.get(name) is not None:
                doc[name] = self.spec[name]
        execution: dict[str, Any] = {"startTime": iso(self.start_time), "poolId": self.pool_id}
        if self.end_time:
            execution["endTime"] = iso(self.end_time)
        if self.terminate_reason:
            execution["terminateReason"] = self.terminate_reason
        doc["executionInfo"] = {key: value for key, value in execution.items() if value is not None}
        return doc


def task_counts(job: Job) -> dict[str, Any]:
    """Count a job's tasks (and their slots) by state, as ``Jobs_GetJobTaskCounts`` answers."""
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


def startable_tasks(job: Job, now: float, free_slots: int) -> tuple[list[tuple[str, Task]], float | None]:
    """Pick the job's pending tasks that start now, and when the next held-back one becomes eligible.

    First come, first served within ``free_slots`` and the job's ``maxParallelTasks``: a task that
    does not fit stops the pick, so a big task is not overtaken forever by small ones. Returns the
    (pending key, task) pairs in order and the monotonic time at which a task now waiting out its
    retry or scheduling delay becomes eligible (None: none is waiting).
    """
    picked: list[tuple[str, Task]] = []
    eligible_at: float | None = None
    running = 0
    if job.max_parallel_tasks != -1:
        running = sum(1 for task in job.tasks.values() if task.state in ("preparing", "running"))
    for key, task in job.pending.items():
        if job.max_parallel_tasks != -1 and running >= job.max_parallel_tasks:
            break
        if task.eligible_at > now:
            eligible_at = task.eligible_at if eligible_at is None else min(eligible_at, task.eligible_at)
            continue
        if task.required_slots > free_slots:
            break
        picked.append((key, task))
        free_slots -= task.required_slots
        running += 1
    return picked, eligible_at
