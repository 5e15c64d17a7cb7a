"""Fan-out: one task per input, placeholders per argument, unique ids, output patterns."""

from __future__ import annotations

import re
import shlex

import pytest

from airflow_provider_logproc.azure_batch.errors import BatchSpecError
from airflow_provider_logproc.azure_batch.fan_out import (
    FanOutInput,
    OutputDestination,
    build_fan_out_task_specs,
    fan_out_task_ids,
    output_file_target,
)
from airflow_provider_logproc.azure_batch.task_specs import (
    unknown_placeholders,
)

VALID_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
PARTS = [f"http://127.0.0.1:10000/devstoreaccount1/logs/app/2026/03/01/part-{index:05d}.jsonl" for index in range(5)]


def fan_out(template: dict, output: OutputDestination | None = None, parts: list[str] = PARTS) -> list[dict]:
    return build_fan_out_task_specs([FanOutInput(uri, uri + "?sv=sig") for uri in parts], template, output)


def test_fan_out_one_task_per_input_with_placeholders_per_argument() -> None:
    template = {
        "command": [
            "logproc-analyze",
            "{input_file}",
            "--output",
            "{output_dir}/partial.json",
            "--tag={part_name};rm -rf /",
        ],
        "environment": {"TASK": "{task_id}"},
        "constraints": {"max_wall_clock_time": "PT1H", "max_task_retry_count": 1},
        "output_file_pattern": "partial.json",
    }
    output = OutputDestination("http://127.0.0.1:10000/devstoreaccount1/results?sv=w", "app/2026/03/01/partials")
    tasks = fan_out(template, output)
    assert [task["id"] for task in tasks] == [f"part-{index:05d}" for index in range(5)]
    first = tasks[0]
    assert shlex.split(first["commandLine"]) == [
        "logproc-analyze",
        "inputs/part-00000.jsonl",
        "--output",
        "output/partial.json",
        "--tag=part-00000;rm -rf /",
    ]
    assert first["resourceFiles"] == [{"httpUrl": PARTS[0] + "?sv=sig", "filePath": "inputs/part-00000.jsonl"}]
    assert first["environmentSettings"] == [{"name": "TASK", "value": "part-00000"}]
    assert first["constraints"] == {"maxWallClockTime": "PT1H", "maxTaskRetryCount": 1}
    assert first["outputFiles"] == [
        {
            "filePattern": "output/partial.json",
            "destination": {
                "container": {
                    "containerUrl": "http://127.0.0.1:10000/devstoreaccount1/results?sv=w",
                    "path": "app/2026/03/01/partials/part-00000/partial.json",
                }
            },
            "uploadOptions": {"uploadCondition": "taskSuccess"},
        }
    ]


def test_output_patterns_with_wildcards_map_to_a_directory() -> None:
    assert output_file_target(None, "p/t1") == ("output/**/*", "p/t1")
    assert output_file_target("**/*.json", "p/t1") == ("output/**/*.json", "p/t1")
    assert output_file_target("sub/*.json", "p/t1") == ("output/sub/*.json", "p/t1/sub")
    assert output_file_target("output/partial.json", "p/t1") == ("output/partial.json", "p/t1/partial.json")
    with pytest.raises(BatchSpecError, match="inside"):
        output_file_target("../secrets", "p")


def test_fan_out_refuses_shell_strings_and_leaves_other_braces_alone() -> None:
    with pytest.raises(BatchSpecError, match="list of arguments"):
        fan_out({"command": "x {input_file}"})
    with pytest.raises(BatchSpecError, match="unknown key"):
        fan_out({"command": ["x"], "comand": []})
    with pytest.raises(BatchSpecError, match="empty"):
        fan_out({"command": ["x"]}, parts=[])
    template = {"command": ["python", "-c", "print(f'{part}')", "{input_file}", '{"a": 1}', "{input}"]}
    argv = shlex.split(fan_out(template)[0]["commandLine"])
    assert argv[2:] == ["print(f'{part}')", "inputs/part-00000.jsonl", '{"a": 1}', "{input}"]
    assert unknown_placeholders(template) == ["input", "part"]


def test_fan_out_ids_stay_unique_when_part_names_collide() -> None:
    inputs = [FanOutInput(f"https://a/c/{day}/part-00000.jsonl", "u") for day in ("01", "02")]
    ids = fan_out_task_ids(inputs)
    assert len(set(ids)) == 2 and all(VALID_ID.match(task_id) for task_id in ids)
    assert ids == fan_out_task_ids(inputs)


