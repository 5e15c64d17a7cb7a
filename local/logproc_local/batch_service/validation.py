"""What the local Batch service accepts: the checks of job and task specs, before anything runs.

The error codes and messages are the Batch service's own (``MissingRequiredProperty``,
``InvalidPropertyValue``, ...): a client sees here what the real service would refuse.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from logproc_local.batch_service.model import (
    ID_PATTERN,
    BatchApiError,
    bad_property,
    missing_property,
    parse_duration,
    unsupported_property,
)

__all__ = [
    "MAX_TASKS_PER_COLLECTION",
    "job_not_found",
    "task_not_found",
    "validate_job",
    "validate_job_update",
    "validate_task",
]

MAX_TASKS_PER_COLLECTION = 100
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


def validate_job_update(current: dict[str, Any], patch: dict[str, Any]) -> None:
    """Check a Jobs_UpdateJob (PATCH) body against the job's current spec: what may change, and to what."""
    allowed = {"priority", "allowTaskPreemption", "maxParallelTasks", "constraints", "poolInfo",
               "onAllTasksComplete", "metadata", "networkConfiguration"}
    unknown = set(patch) - allowed
    if unknown:
        raise unsupported_property(sorted(unknown)[0], "this property cannot be updated")
    _validate_job_mutable(patch)
    if "poolInfo" in patch and not (patch["poolInfo"] or {}).get("poolId"):
        raise missing_property("poolInfo.poolId")
    if (str(current.get("onAllTasksComplete") or "noaction").lower() == "terminatejob"
            and str(patch.get("onAllTasksComplete", "terminatejob")).lower() == "noaction"):
        raise bad_property("onAllTasksComplete", "cannot change from terminatejob to noaction")
