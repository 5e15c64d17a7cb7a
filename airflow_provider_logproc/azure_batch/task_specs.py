"""Batch task specs from the operator's arguments, as Batch REST JSON (api-version 2025-06-01).

The azure-batch 15 models accept such a mapping as is (``BatchTaskCreateOptions(spec)``). Nothing
here talks to a server or imports Airflow: every rule is unit-tested on its own. Errors name the
spec and field they come from.
"""

from __future__ import annotations

import math
import posixpath
import re
import shlex
from collections.abc import Mapping, Sequence
from datetime import timedelta
from typing import Any
from urllib.parse import unquote, urlsplit

from airflow_provider_logproc._templating import from_rendered_list
from airflow_provider_logproc.azure_batch.errors import BatchSpecError
from airflow_provider_logproc.azure_batch.ids import validate_batch_id

_PLACEHOLDER = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")

INPUTS_DIR = "inputs"
OUTPUT_DIR = "output"
TEMPLATE_PLACEHOLDERS = ("input_file", "output_dir", "task_id", "part_name")



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
    """Build a resource file from a URL string (downloaded by its file name) or a mapping of the REST fields."""
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


def normalize_inputs(value: Any) -> list[str]:
    """Return the fan-out inputs as a list of URLs, from a list, a JSON/Python list literal (templated), or a
    mapping from the upload step holding them under ``uris``/``parts``/``blobs``."""
    value = from_rendered_list(value, "fan_out_inputs", error=BatchSpecError)
    if isinstance(value, str):
        value = [value.strip()]
    if isinstance(value, Mapping):
        for key in ("uris", "parts", "blobs", "urls"):
            if isinstance(value.get(key), list):
                value = value[key]
                break
        else:
            raise BatchSpecError(
                f"fan_out_inputs: a mapping needs a list under 'uris' or 'parts', got keys {sorted(value)}"
            )
    if not isinstance(value, list | tuple) or not all(isinstance(item, str) and item for item in value):
        raise BatchSpecError("fan_out_inputs must be a list of blob URLs")
    return list(value)
