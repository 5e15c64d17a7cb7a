"""Fan-out: one Batch task per input blob, from a task template with placeholders."""

from __future__ import annotations

import hashlib
import posixpath
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote, urlsplit

from airflow_provider_logproc.azure_batch.errors import BatchSpecError
from airflow_provider_logproc.azure_batch.ids import BATCH_ID_MAX_LENGTH, sanitize_batch_id
from airflow_provider_logproc.azure_batch.task_specs import (
    _TEMPLATE_KEYS,
    INPUTS_DIR,
    OUTPUT_DIR,
    _check_keys,
    _unique_ids,
    build_task_spec,
    command_line_from_argv,
    substitute_placeholders,
)


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


def check_task_sources(
    *, tasks: object, fan_out_inputs: object, task_template: object, output_container: str | None,
    wasb_conn_id: str | None, task_id: str,
) -> None:
    """Raise ``ValueError``, naming ``task_id``, unless the tasks have one source and outputs can be written.

    A job's tasks are either listed (``tasks``) or fanned out over inputs (``fan_out_inputs`` with a
    ``task_template``); an output container needs a ``wasb`` connection to issue the write SAS.
    """
    if (tasks is None) == (fan_out_inputs is None):
        raise ValueError(f"{task_id}: give either tasks or fan_out_inputs (with task_template), not both or neither")
    if fan_out_inputs is not None and task_template is None:
        raise ValueError(f"{task_id}: fan_out_inputs needs a task_template")
    if output_container is not None and wasb_conn_id is None:
        raise ValueError(f"{task_id}: output_container needs wasb_conn_id to issue the write SAS")
