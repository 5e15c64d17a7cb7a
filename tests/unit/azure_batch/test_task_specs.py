"""Task specs to Batch REST JSON: argv quoting, full specs, errors that say where."""

from __future__ import annotations

import shlex
from datetime import timedelta

import pytest
from azure.batch import models as batch_models

from airflow_provider_logproc.azure_batch.errors import BatchSpecError
from airflow_provider_logproc.azure_batch.task_specs import (
    build_task_spec,
    build_task_specs,
    command_line_from_argv,
    iso8601_duration,
)


def test_argv_quoting_keeps_metacharacters_inert() -> None:
    argv = ["analyze", "in put.jsonl", "$(rm -rf /); echo `x` | tee y && z > w"]
    line = command_line_from_argv(argv, "cmd")
    assert shlex.split(line) == argv


def test_a_shell_string_command_is_refused() -> None:
    with pytest.raises(BatchSpecError, match="list of arguments"):
        command_line_from_argv("analyze input", "task_template.command")  # type: ignore[arg-type]


# -- explicit task specs ----------------------------------------------------------------------------


def test_full_task_spec_becomes_rest_json_the_sdk_accepts() -> None:
    spec = build_task_spec(
        {
            "id": "t1",
            "command": ["python", "-m", "x", "a b"],
            "container": {
                "image": "ghcr.io/x/y:1",
                "run_options": "--rm",
                "registry": {"server": "ghcr.io", "username": "u"},
            },
            "environment": {"A": 1, "B": "two"},
            "resource_files": [
                "https://h/c/data.csv?sig=1",
                {"storage_container_url": "https://h/c", "blob_prefix": "p/"},
            ],
            "output_files": [
                {
                    "file_pattern": "out/*",
                    "container_url": "https://h/r?sig",
                    "path": "x",
                    "upload_condition": "taskcompletion",
                }
            ],
            "constraints": {
                "max_wall_clock_time": timedelta(minutes=90),
                "max_task_retry_count": 2,
                "retention_time": 3600,
            },
            "required_slots": 2,
        },
        "tasks[0]",
    )
    assert spec["commandLine"] == "python -m x 'a b'"
    assert spec["containerSettings"] == {
        "imageName": "ghcr.io/x/y:1",
        "containerRunOptions": "--rm",
        "registry": {"registryServer": "ghcr.io", "username": "u"},
    }
    assert spec["environmentSettings"] == [{"name": "A", "value": "1"}, {"name": "B", "value": "two"}]
    assert spec["resourceFiles"][0] == {"httpUrl": "https://h/c/data.csv?sig=1", "filePath": "data.csv"}
    assert spec["resourceFiles"][1] == {"storageContainerUrl": "https://h/c", "blobPrefix": "p/"}
    assert spec["outputFiles"][0]["uploadOptions"] == {"uploadCondition": "taskCompletion"}
    assert spec["constraints"] == {"maxWallClockTime": "PT1H30M", "retentionTime": "PT1H", "maxTaskRetryCount": 2}
    assert spec["requiredSlots"] == 2
    model = batch_models.BatchTaskCreateOptions(spec)
    assert model.constraints is not None and model.container_settings is not None
    assert model.constraints.max_wall_clock_time == timedelta(minutes=90)
    assert model.container_settings.image_name == "ghcr.io/x/y:1"


def test_commands_with_interpreter_run_as_one_script() -> None:
    spec = build_task_spec({"id": "t", "commands": ["echo a", "echo b"]}, "tasks[0]")
    assert shlex.split(spec["commandLine"]) == ["/bin/sh", "-e", "-c", "echo a\necho b"]
    spec = build_task_spec({"id": "t", "commands": ["print(1)"], "interpreter": ["python3", "-c"]}, "tasks[0]")
    assert shlex.split(spec["commandLine"]) == ["python3", "-c", "print(1)"]


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ({"id": "t", "comand": ["x"]}, r"tasks\[3\]: unknown key\(s\) 'comand'"),
        ({"id": "t"}, "exactly one of command_line"),
        ({"id": "t", "command": ["x"], "command_line": "x"}, "exactly one of command_line"),
        ({"id": "bad id!", "command": ["x"]}, r"tasks\[3\]\.id='bad id!' is not a valid Batch id"),
        ({"id": "t", "command": ["x"], "required_slots": 0}, "required_slots"),
        ({"id": "t", "command": ["x"], "environment": {"1A": "x"}}, "environment variable name"),
        ({"id": "t", "command": ["x"], "constraints": {"max_wall_clock_time": "1 hour"}}, "ISO 8601"),
        ({"id": "t", "command": ["x"], "resource_files": [{"http_url": "https://h/x"}]}, "file_path is required"),
        ({"id": "t", "command": ["x"], "container": {"run_options": "--rm"}}, "image"),
        ({"id": "t", "command": ["x"], "interpreter": "bash"}, "interpreter only applies"),
    ],
)
def test_bad_task_specs_name_the_problem_and_where(spec: dict, message: str) -> None:
    with pytest.raises(BatchSpecError, match=message):
        build_task_spec(spec, "tasks[3]")


def test_duplicate_task_ids_are_refused_case_insensitively() -> None:
    with pytest.raises(BatchSpecError, match=r"tasks\[1\]: task id 'A' repeats tasks\[0\]"):
        build_task_specs([{"id": "a", "command": ["x"]}, {"id": "A", "command": ["y"]}])


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (timedelta(hours=1), "PT1H"),
        (90, "PT1M30S"),
        (timedelta(days=2, seconds=5), "P2DT5S"),
        (0.5, "PT0.5S"),
        ("PT2H", "PT2H"),
    ],
)
def test_durations(value: object, expected: str) -> None:
    assert iso8601_duration(value, "x") == expected  # type: ignore[arg-type]


# -- fan-out --------------------------------------------------------------------------------------

