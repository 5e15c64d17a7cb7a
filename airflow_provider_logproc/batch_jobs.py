"""Pure logic of the Azure Batch job operator: ids, task specs, result evaluation, backoff.

Nothing here talks to a server or imports Airflow, so every rule can be unit-tested on its own.
Task specs are built as Batch REST JSON (api-version 2025-06-01, camelCase); the azure-batch 15
models accept such a mapping as is (``BatchTaskCreateOptions(spec)``).
"""

from __future__ import annotations

import hashlib
import math
import posixpath
import re
import shlex
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar
from urllib.parse import quote, unquote, urlsplit

BATCH_ID_MAX_LENGTH = 64
MAX_TASKS_PER_COLLECTION = 100
_INVALID_ID_CHARS = re.compile(r"[^A-Za-z0-9_-]+")
_PLACEHOLDER = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")

# Least privilege for the SAS the operator issues: tasks only read their input blob, and only
# create/write blobs in the output container (no list, no delete, no read of other results).
INPUT_SAS_PERMISSION = "r"
OUTPUT_SAS_PERMISSION = "cw"
# Tasks may wait in the pool queue until the job's timeout; the SAS must outlive that, but no more.
SAS_EXPIRY_MARGIN = timedelta(minutes=30)

INPUTS_DIR = "inputs"
OUTPUT_DIR = "output"
TEMPLATE_PLACEHOLDERS = ("input_file", "output_dir", "task_id", "part_name")

# Task counts as the trigger reports them.
COUNT_NAMES = ("active", "running", "completed", "succeeded", "failed")

T = TypeVar("T")


class BatchSpecError(ValueError):
    """A task spec, template or input that cannot become a Batch task; the message says where."""


# ---------------------------------------------------------------------------------------------
# Ids


def sanitize_batch_id(raw: str, max_length: int = BATCH_ID_MAX_LENGTH) -> str:
    """Make ``raw`` a valid Batch id: letters, digits, hyphen, underscore, at most ``max_length``.

    Other characters become ``-``. An id that had to be changed or shortened gets a hash of the raw
    value appended, so two different raw values never collapse onto one id.
    """
    cleaned = _INVALID_ID_CHARS.sub("-", raw).strip("-")
    if cleaned == raw and len(cleaned) <= max_length and cleaned:
        return cleaned
    digest = hashlib.sha256(raw.encode()).hexdigest()[:10]
    head = cleaned[: max_length - len(digest) - 1].rstrip("-")
    return f"{head}-{digest}" if head else digest


def derive_job_id(
    dag_id: str,
    task_id: str,
    data_interval_start: datetime | None,
    data_interval_end: datetime | None,
    *,
    run_id: str | None = None,
) -> str:
    """The job id of one (dag, task, data interval): the same window always gives the same id.

    Without a data interval (e.g. a manual run of an asset-triggered DAG) the run id stands in.
    """
    if data_interval_start is not None and data_interval_end is not None:
        window = f"{_compact_utc(data_interval_start)}-{_compact_utc(data_interval_end)}"
    elif run_id:
        window = run_id
    else:
        raise BatchSpecError("job_id: no data interval and no run id to derive a job id from; pass job_id")
    return sanitize_batch_id(f"{dag_id}-{task_id}-{window}")


def _compact_utc(moment: datetime) -> str:
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    moment = moment.astimezone(UTC)
    if moment.hour == moment.minute == moment.second == 0:
        return moment.strftime("%Y%m%d")
    return moment.strftime("%Y%m%dT%H%M%S")


def validate_batch_id(value: str, what: str) -> str:
    if not value or len(value) > BATCH_ID_MAX_LENGTH or _INVALID_ID_CHARS.search(value):
        raise BatchSpecError(
            f"{what}={value!r} is not a valid Batch id (letters, digits, '-' and '_', 1 to "
            f"{BATCH_ID_MAX_LENGTH} characters)"
        )
    return value


# ---------------------------------------------------------------------------------------------
# Command lines


def command_line_from_argv(argv: Sequence[str], where: str) -> str:
    """Quote an argv list into the command line Batch runs (without a shell on Linux).

    Quoting keeps each argument one argument and makes shell metacharacters in templated values
    inert even if a shell were involved.
    """
    if isinstance(argv, str) or not isinstance(argv, Sequence) or not argv:
        raise BatchSpecError(f"{where}: the command must be a non-empty list of arguments (argv), not {argv!r}")
    for position, argument in enumerate(argv):
        if not isinstance(argument, str):
            raise BatchSpecError(f"{where}[{position}]: arguments must be strings, got {type(argument).__name__}")
    return shlex.join(argv)


def substitute_placeholders(text: str, values: Mapping[str, str]) -> str:
    """Replace the known ``{name}`` placeholders inside one argument.

    Other ``{...}`` are left as they are: an inline script or a JSON argument may hold braces.
    :func:`unknown_placeholders` finds them so the operator can warn about likely typos.
    """
    return _PLACEHOLDER.sub(lambda match: values.get(match.group(1), match.group(0)), text)


def unknown_placeholders(template: Mapping[str, Any]) -> list[str]:
    """``{name}`` in the template's command that are not placeholders (typos, or braces meant literally)."""
    found: set[str] = set()
    arguments = [*template.get("command", []), *(template.get("environment") or {}).values()]
    for argument in arguments:
        found.update(name for name in _PLACEHOLDER.findall(str(argument)) if name not in TEMPLATE_PLACEHOLDERS)
    return sorted(found)


# ---------------------------------------------------------------------------------------------
# Task specs

_TASK_KEYS = {
    "id",
    "display_name",
    "command_line",
    "command",
    "commands",
    "interpreter",
    "container",
    "environment",
    "resource_files",
    "output_files",
    "constraints",
    "required_slots",
}
_CONTAINER_KEYS = {"image", "run_options", "registry", "working_directory"}
_REGISTRY_KEYS = {"server", "username", "password", "identity_resource_id"}
_RESOURCE_FILE_KEYS = {
    "http_url",
    "storage_container_url",
    "auto_storage_container_name",
    "blob_prefix",
    "file_path",
    "file_mode",
}
_OUTPUT_FILE_KEYS = {"file_pattern", "container_url", "path", "upload_condition"}
_CONSTRAINT_KEYS = {"max_wall_clock_time", "retention_time", "max_task_retry_count"}
_UPLOAD_CONDITIONS = {"tasksuccess": "taskSuccess", "taskfailure": "taskFailure", "taskcompletion": "taskCompletion"}
_TEMPLATE_KEYS = {
    "command",
    "environment",
    "constraints",
    "output_file_pattern",
    "container",
    "required_slots",
    "resource_files",
    "display_name",
}


def _check_keys(spec: Mapping[str, Any], allowed: set[str], where: str) -> None:
    if not isinstance(spec, Mapping):
        raise BatchSpecError(f"{where}: expected a mapping, got {type(spec).__name__}")
    unknown = sorted(set(spec) - allowed)
    if unknown:
        raise BatchSpecError(
            f"{where}: unknown key(s) {', '.join(map(repr, unknown))} (allowed: {', '.join(sorted(allowed))})"
        )


def iso8601_duration(value: timedelta | int | float | str, where: str) -> str:
    """Batch wants ISO 8601 durations (``PT1H30M``); accept a timedelta, seconds, or such a string."""
    if isinstance(value, str):
        if not re.fullmatch(r"P(?:\d+D)?(?:T(?:\d+H)?(?:\d+M)?(?:\d+(?:\.\d+)?S)?)?", value) or value in ("P", "PT"):
            raise BatchSpecError(f"{where}: {value!r} is not an ISO 8601 duration like 'PT1H30M'")
        return value
    if isinstance(value, bool) or not isinstance(value, timedelta | int | float):
        raise BatchSpecError(f"{where}: expected a timedelta, seconds or an ISO 8601 duration, got {value!r}")
    seconds = value.total_seconds() if isinstance(value, timedelta) else float(value)
    if seconds <= 0 or not math.isfinite(seconds):
        raise BatchSpecError(f"{where}: the duration must be positive, got {value!r}")
    whole = int(seconds)
    days, rest = divmod(whole, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    fraction = seconds - whole
    text = "P" + (f"{days}D" if days else "")
    time_part = (f"{hours}H" if hours else "") + (f"{minutes}M" if minutes else "")
    if secs or fraction:
        time_part += f"{secs + fraction:g}S"
    return text + ("T" + time_part if time_part else "")


def _constraints(spec: Mapping[str, Any], where: str) -> dict[str, Any]:
    _check_keys(spec, _CONSTRAINT_KEYS, where)
    result: dict[str, Any] = {}
    if spec.get("max_wall_clock_time") is not None:
        result["maxWallClockTime"] = iso8601_duration(spec["max_wall_clock_time"], f"{where}.max_wall_clock_time")
    if spec.get("retention_time") is not None:
        result["retentionTime"] = iso8601_duration(spec["retention_time"], f"{where}.retention_time")
    if spec.get("max_task_retry_count") is not None:
        count = spec["max_task_retry_count"]
        if isinstance(count, bool) or not isinstance(count, int) or count < -1:
            raise BatchSpecError(f"{where}.max_task_retry_count: expected an integer ≥ -1, got {count!r}")
        result["maxTaskRetryCount"] = count
    return result


def _container(spec: Mapping[str, Any], where: str) -> dict[str, Any]:
    _check_keys(spec, _CONTAINER_KEYS, where)
    if not isinstance(spec.get("image"), str) or not spec["image"]:
        raise BatchSpecError(f"{where}.image: a container image name is required")
    result: dict[str, Any] = {"imageName": spec["image"]}
    if spec.get("run_options"):
        result["containerRunOptions"] = str(spec["run_options"])
    if spec.get("working_directory"):
        result["workingDirectory"] = str(spec["working_directory"])
    registry = spec.get("registry")
    if registry:
        _check_keys(registry, _REGISTRY_KEYS, f"{where}.registry")
        entry: dict[str, Any] = {}
        if registry.get("server"):
            entry["registryServer"] = registry["server"]
        if registry.get("username"):
            entry["username"] = registry["username"]
        if registry.get("password"):
            entry["password"] = registry["password"]
        if registry.get("identity_resource_id"):
            entry["identityReference"] = {"resourceId": registry["identity_resource_id"]}
        result["registry"] = entry
    return result


def _environment(spec: Mapping[str, Any], where: str) -> list[dict[str, str]]:
    if not isinstance(spec, Mapping):
        raise BatchSpecError(f"{where}: expected a mapping of variable name to value")
    settings = []
    for name, value in spec.items():
        if not isinstance(name, str) or not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name):
            raise BatchSpecError(f"{where}: {name!r} is not a valid environment variable name")
        settings.append({"name": name, "value": "" if value is None else str(value)})
    return settings


def resource_file(entry: str | Mapping[str, Any], where: str) -> dict[str, Any]:
    """A resource file: a URL string (downloaded by its file name) or a mapping of the REST fields."""
    if isinstance(entry, str):
        name = posixpath.basename(unquote(urlsplit(entry).path))
        if not name:
            raise BatchSpecError(f"{where}: cannot take a file name from this URL; give file_path")
        return {"httpUrl": entry, "filePath": name}
    _check_keys(entry, _RESOURCE_FILE_KEYS, where)
    sources = [key for key in ("http_url", "storage_container_url", "auto_storage_container_name") if entry.get(key)]
    if len(sources) != 1:
        raise BatchSpecError(
            f"{where}: exactly one of http_url, storage_container_url, auto_storage_container_name is required"
        )
    if entry.get("http_url") and not entry.get("file_path"):
        raise BatchSpecError(f"{where}: file_path is required with http_url")
    names = {
        "http_url": "httpUrl",
        "storage_container_url": "storageContainerUrl",
        "auto_storage_container_name": "autoStorageContainerName",
        "blob_prefix": "blobPrefix",
        "file_path": "filePath",
        "file_mode": "fileMode",
    }
    return {names[key]: value for key, value in entry.items() if value is not None}


def output_file(entry: Mapping[str, Any], where: str) -> dict[str, Any]:
    _check_keys(entry, _OUTPUT_FILE_KEYS, where)
    for required in ("file_pattern", "container_url"):
        if not entry.get(required):
            raise BatchSpecError(f"{where}.{required} is required")
    condition = str(entry.get("upload_condition") or "taskSuccess")
    if condition.lower() not in _UPLOAD_CONDITIONS:
        raise BatchSpecError(
            f"{where}.upload_condition: {condition!r} is not one of {sorted(_UPLOAD_CONDITIONS.values())}"
        )
    container: dict[str, Any] = {"containerUrl": entry["container_url"]}
    if entry.get("path"):
        container["path"] = entry["path"]
    return {
        "filePattern": entry["file_pattern"],
        "destination": {"container": container},
        "uploadOptions": {"uploadCondition": _UPLOAD_CONDITIONS[condition.lower()]},
    }


def build_task_spec(spec: Mapping[str, Any], where: str) -> dict[str, Any]:
    """Turn one user task spec (snake_case, see the operator's docs) into Batch REST JSON."""
    _check_keys(spec, _TASK_KEYS, where)
    task_id = validate_batch_id(spec.get("id", ""), f"{where}.id")
    command_forms = [key for key in ("command_line", "command", "commands") if spec.get(key)]
    if len(command_forms) != 1:
        raise BatchSpecError(f"{where}: exactly one of command_line, command (argv) or commands is required")
    if spec.get("interpreter") and command_forms[0] != "commands":
        raise BatchSpecError(f"{where}.interpreter only applies to commands")
    if command_forms[0] == "command_line":
        if not isinstance(spec["command_line"], str):
            raise BatchSpecError(f"{where}.command_line must be a string")
        command_line = spec["command_line"]
    elif command_forms[0] == "command":
        command_line = command_line_from_argv(spec["command"], f"{where}.command")
    else:
        command_line = commands_command_line(spec["commands"], spec.get("interpreter"), where)
    task: dict[str, Any] = {"id": task_id, "commandLine": command_line}
    if spec.get("display_name"):
        task["displayName"] = str(spec["display_name"])
    if spec.get("container"):
        task["containerSettings"] = _container(spec["container"], f"{where}.container")
    if spec.get("environment"):
        task["environmentSettings"] = _environment(spec["environment"], f"{where}.environment")
    if spec.get("resource_files"):
        task["resourceFiles"] = [
            resource_file(entry, f"{where}.resource_files[{index}]")
            for index, entry in enumerate(spec["resource_files"])
        ]
    if spec.get("output_files"):
        task["outputFiles"] = [
            output_file(entry, f"{where}.output_files[{index}]") for index, entry in enumerate(spec["output_files"])
        ]
    if spec.get("constraints"):
        task["constraints"] = _constraints(spec["constraints"], f"{where}.constraints")
    if spec.get("required_slots") is not None:
        slots = spec["required_slots"]
        if isinstance(slots, bool) or not isinstance(slots, int) or slots < 1:
            raise BatchSpecError(f"{where}.required_slots: expected a positive integer, got {slots!r}")
        task["requiredSlots"] = slots
    return task


def commands_command_line(commands: Sequence[str], interpreter: Sequence[str] | str | None, where: str) -> str:
    """``commands`` run in order by ``interpreter`` (default ``/bin/sh -e -c``), stopping at the first failure."""
    if isinstance(commands, str) or not commands or not all(isinstance(line, str) for line in commands):
        raise BatchSpecError(f"{where}.commands must be a non-empty list of strings")
    if interpreter is None:
        interpreter_argv = ["/bin/sh", "-e", "-c"]
    elif isinstance(interpreter, str):
        interpreter_argv = shlex.split(interpreter)
    else:
        interpreter_argv = list(interpreter)
    if not interpreter_argv:
        raise BatchSpecError(f"{where}.interpreter is empty")
    return shlex.join([*interpreter_argv, "\n".join(commands)])


def build_task_specs(specs: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    tasks = [build_task_spec(spec, f"tasks[{index}]") for index, spec in enumerate(specs)]
    return _unique_ids(tasks, "tasks")


def _unique_ids(tasks: list[dict[str, Any]], where: str) -> list[dict[str, Any]]:
    seen: dict[str, int] = {}
    for index, task in enumerate(tasks):
        # Batch ids are case-insensitive for uniqueness.
        key = task["id"].lower()
        if key in seen:
            raise BatchSpecError(f"{where}[{index}]: task id {task['id']!r} repeats {where}[{seen[key]}]")
        seen[key] = index
    if not tasks:
        raise BatchSpecError(f"{where}: no tasks to run")
    return tasks


# ---------------------------------------------------------------------------------------------
# Fan-out


@dataclass(frozen=True)
class FanOutInput:
    """One input of a fan-out: its URL as given (never logged) and what the task reads it as."""

    uri: str
    download_url: str  # the URL the task downloads from (with a SAS when the operator issued one)

    @property
    def blob_name(self) -> str:
        return posixpath.basename(unquote(urlsplit(self.uri).path))

    @property
    def part_name(self) -> str:
        name = self.blob_name
        return name.split(".", 1)[0] if not name.startswith(".") else name


@dataclass(frozen=True)
class OutputDestination:
    """Where tasks upload ``{output_dir}``: a container URL carrying a write SAS, and a prefix."""

    container_sas_url: str
    prefix: str

    def task_path(self, task_id: str) -> str:
        return f"{self.prefix}/{task_id}" if self.prefix else task_id


def fan_out_task_ids(inputs: Sequence[FanOutInput]) -> list[str]:
    """One task id per input, from the part name; inputs whose names collide get a hash of their URL."""
    bases = [sanitize_batch_id(item.part_name or "part", BATCH_ID_MAX_LENGTH - 11) for item in inputs]
    counts: dict[str, int] = {}
    for base in bases:
        counts[base.lower()] = counts.get(base.lower(), 0) + 1
    ids = []
    for item, base in zip(inputs, bases, strict=True):
        if counts[base.lower()] > 1:
            base = f"{base}-{hashlib.sha256(item.uri.encode()).hexdigest()[:10]}"
        ids.append(base)
    return ids


def validate_task_template(template: Mapping[str, Any]) -> None:
    _check_keys(template, _TEMPLATE_KEYS, "task_template")
    if "command" not in template:
        raise BatchSpecError("task_template.command is required: a list of arguments (argv) with placeholders")
    command_line_from_argv(template["command"], "task_template.command")


def build_fan_out_task_specs(
    inputs: Sequence[FanOutInput],
    template: Mapping[str, Any],
    output: OutputDestination | None,
) -> list[dict[str, Any]]:
    """One Batch task per input: the input downloaded to ``inputs/<blob>``, the command templated per argument."""
    if not inputs:
        raise BatchSpecError("fan_out_inputs: the list of inputs is empty")
    validate_task_template(template)
    tasks = []
    for index, (item, task_id) in enumerate(zip(inputs, fan_out_task_ids(inputs), strict=True)):
        where = f"fan_out_inputs[{index}]"
        if not item.blob_name:
            raise BatchSpecError(f"{where}: the URL names no blob")
        input_file = f"{INPUTS_DIR}/{item.blob_name}"
        values = {"input_file": input_file, "output_dir": OUTPUT_DIR, "task_id": task_id, "part_name": item.part_name}
        argv = [substitute_placeholders(argument, values) for argument in template["command"]]
        spec: dict[str, Any] = {
            "id": task_id,
            "command": argv,
            "resource_files": [
                {"http_url": item.download_url, "file_path": input_file},
                *template.get("resource_files", []),
            ],
        }
        if template.get("display_name"):
            spec["display_name"] = substitute_placeholders(str(template["display_name"]), values)
        if template.get("environment"):
            spec["environment"] = {
                name: substitute_placeholders(str(value), values) for name, value in template["environment"].items()
            }
        for key in ("constraints", "container", "required_slots"):
            if template.get(key) is not None:
                spec[key] = template[key]
        if output is not None:
            file_pattern, path = output_file_target(template.get("output_file_pattern"), output.task_path(task_id))
            spec["output_files"] = [
                {
                    "file_pattern": file_pattern,
                    "container_url": output.container_sas_url,
                    "path": path,
                    "upload_condition": "taskSuccess",
                }
            ]
        tasks.append(build_task_spec(spec, where))
    return _unique_ids(tasks, "fan_out_inputs")


def output_file_target(pattern: str | None, task_path: str) -> tuple[str, str]:
    """Batch ``filePattern`` and destination ``path`` for files under ``{output_dir}`` matching ``pattern``.

    Batch reads ``path`` as a blob *name* when the pattern names one file, and as a virtual
    directory when it has wildcards; either way the blobs land under ``<task path>/``.
    """
    relative = (pattern or "**/*").strip()
    if relative.startswith(f"{OUTPUT_DIR}/"):
        relative = relative[len(OUTPUT_DIR) + 1 :]
    if not relative or relative.startswith(("/", "../")) or "/../" in relative:
        raise BatchSpecError(
            f"task_template.output_file_pattern: {pattern!r} must be a pattern inside {{output_dir}}, "
            "like 'partial.json' or '**/*'"
        )
    if any(char in relative for char in "*?["):
        # The non-wildcard head of the pattern is not part of the blob names: keep it in the path.
        head, _, _ = relative.partition("*")
        head = head.split("?", 1)[0].split("[", 1)[0]
        directory = posixpath.dirname(head)
        return f"{OUTPUT_DIR}/{relative}", f"{task_path}/{directory}" if directory else task_path
    return f"{OUTPUT_DIR}/{relative}", f"{task_path}/{relative}"


def split_blob_url(url: str, account_url: str) -> tuple[str, str]:
    """``(container, blob name)`` of a blob URL inside the storage account at ``account_url``."""
    base = account_url.rstrip("/") + "/"
    plain = url.split("?", 1)[0]
    if not plain.startswith(base):
        raise BatchSpecError(
            f"input {plain!r} is not a blob of the storage account {account_url!r} of the wasb connection"
        )
    container, _, blob = plain[len(base) :].partition("/")
    if not container or not blob:
        raise BatchSpecError(f"input {plain!r} does not name a container and a blob")
    return unquote(container), unquote(blob)


def sas_lifetime(timeout: timedelta) -> timedelta:
    """SAS lifetime: long enough for a task queued until the job's timeout, and no longer."""
    return timeout + SAS_EXPIRY_MARGIN


def without_query(url: str) -> str:
    """A URL with its query (a SAS, say) removed: what may appear in logs and XCom."""
    return url.split("?", 1)[0]


def chunked(items: Sequence[T], size: int = MAX_TASKS_PER_COLLECTION) -> Iterator[Sequence[T]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


# ---------------------------------------------------------------------------------------------
# Adding tasks: per-task status of an addtaskcollection response


@dataclass
class CollectionOutcome:
    added: list[str] = field(default_factory=list)
    already_there: list[str] = field(default_factory=list)
    retry: list[str] = field(default_factory=list)
    rejected: list[tuple[str, str, str]] = field(default_factory=list)  # (task id, code, message)


def classify_add_results(results: Iterable[Mapping[str, Any]]) -> CollectionOutcome:
    """Sort the per-task statuses of one addtaskcollection response.

    ``TaskExists`` counts as added (a retried operator re-adds what an earlier attempt added);
    server errors are retried; other client errors reject the task.
    """
    outcome = CollectionOutcome()
    for result in results:
        task_id = str(result.get("taskId"))
        status = str(result.get("status", "")).lower()
        error = result.get("error") or {}
        code = str(error.get("code") or "")
        message = error.get("message")
        if isinstance(message, Mapping):
            message = message.get("value")
        if status == "success":
            outcome.added.append(task_id)
        elif code == "TaskExists":
            outcome.already_there.append(task_id)
        elif status == "servererror":
            outcome.retry.append(task_id)
        else:
            outcome.rejected.append((task_id, code or status or "unknown", str(message or "")))
    return outcome


# ---------------------------------------------------------------------------------------------
# Waiting and results


def counts_state(counts: Mapping[str, int]) -> str:
    """``running`` until nothing is active or running; then ``failed`` if any task failed, else ``success``.

    A job whose counts are all zero has no tasks yet (a sensor may look before tasks are added):
    still ``running``.
    """
    if counts.get("active", 0) or counts.get("running", 0) or not counts.get("completed", 0):
        return "running"
    return "failed" if counts.get("failed", 0) else "success"


def format_counts(counts: Mapping[str, int]) -> str:
    return ", ".join(f"{name} {counts.get(name, 0)}" for name in COUNT_NAMES)


def backoff_delay(attempt: int, *, initial: float = 1.0, factor: float = 2.0, maximum: float = 30.0) -> float:
    """Delay before retry number ``attempt`` (1-based) of a transient error: 1, 2, 4, … capped at ``maximum``."""
    if attempt < 1:
        raise ValueError("attempt counts from 1")
    return min(maximum, initial * factor ** (attempt - 1))


def retry_after_seconds(header: str | None) -> float | None:
    """The server's ``Retry-After`` in seconds (only the delta-seconds form, which Batch uses)."""
    if not header:
        return None
    try:
        value = float(header)
    except ValueError:
        return None
    return value if value >= 0 and math.isfinite(value) else None


@dataclass(frozen=True)
class TaskOutcome:
    id: str
    state: str
    exit_code: int | None
    result: str | None  # "success" / "failure" / None while not finished
    failure: str | None = None  # failureInfo code and message (e.g. a wall-clock kill)

    @property
    def failed(self) -> bool:
        if self.state != "completed":
            return False
        if self.result is not None:
            return self.result == "failure"
        return self.exit_code not in (0, None) or self.failure is not None

    def as_xcom(self) -> dict[str, Any]:
        return {"id": self.id, "state": self.state, "exit_code": self.exit_code}


@dataclass(frozen=True)
class JobOutcome:
    job_id: str
    tasks: list[TaskOutcome]

    @property
    def failed(self) -> list[TaskOutcome]:
        return [task for task in self.tasks if task.failed]

    @property
    def unfinished(self) -> list[TaskOutcome]:
        return [task for task in self.tasks if task.state != "completed"]

    @property
    def succeeded(self) -> bool:
        return bool(self.tasks) and not self.failed and not self.unfinished

    def failure_message(self, limit: int = 20) -> str:
        failed = self.failed
        shown = ", ".join(
            f"{task.id} (exit code {task.exit_code if task.exit_code is not None else 'none'}"
            + (f", {task.failure}" if task.failure else "")
            + ")"
            for task in failed[:limit]
        )
        more = f" and {len(failed) - limit} more" if len(failed) > limit else ""
        return f"Batch job {self.job_id}: {len(failed)} of {len(self.tasks)} task(s) failed: {shown}{more}"


def task_outcome(task: Mapping[str, Any]) -> TaskOutcome:
    """A task as the list API returns it (REST JSON) reduced to what the result rules need."""
    info = task.get("executionInfo") or {}
    failure = info.get("failureInfo") or None
    failure_text = None
    if failure:
        failure_text = " ".join(str(part) for part in (failure.get("code"), failure.get("message")) if part)
    exit_code = info.get("exitCode")
    return TaskOutcome(
        id=str(task.get("id")),
        state=str(task.get("state") or "unknown"),
        exit_code=int(exit_code) if exit_code is not None else None,
        result=info.get("result"),
        failure=failure_text or None,
    )


def evaluate_tasks(job_id: str, tasks: Iterable[Mapping[str, Any]]) -> JobOutcome:
    return JobOutcome(job_id, sorted((task_outcome(task) for task in tasks), key=lambda outcome: outcome.id))


def tail_text(data: bytes, max_bytes: int = 2048) -> str:
    """The last ``max_bytes`` of a log as text, starting at a line boundary when one is near."""
    tail = data[-max_bytes:]
    if len(data) > max_bytes and b"\n" in tail[:200]:
        tail = tail[tail.index(b"\n") + 1 :]
    return tail.decode("utf-8", errors="replace")


def output_blob_urls(container_url: str, blob_names: Iterable[str], prefix: str, task_ids: Iterable[str]) -> list[str]:
    """URLs (no SAS) of the blobs the job's tasks wrote: those under ``<prefix>/<task id>/``."""
    task_prefixes = tuple(f"{prefix}/{task_id}/" if prefix else f"{task_id}/" for task_id in task_ids)
    base = without_query(container_url).rstrip("/")
    return [f"{base}/{quote(name)}" for name in sorted(blob_names) if name.startswith(task_prefixes)]


def deadline_after(timeout: timedelta, now: float) -> float:
    return now + timeout.total_seconds()
