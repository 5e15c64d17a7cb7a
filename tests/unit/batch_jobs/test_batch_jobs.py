"""Pure logic of the Batch job operator: ids, task specs, fan-out, add results, result rules."""

from __future__ import annotations

import re
import shlex
from datetime import UTC, datetime, timedelta

import pytest
from azure.batch import models as batch_models
from hypothesis import given
from hypothesis import strategies as st

from airflow_provider_logproc.batch_jobs import (
    BATCH_ID_MAX_LENGTH,
    BatchSpecError,
    FanOutInput,
    OutputDestination,
    backoff_delay,
    build_fan_out_task_specs,
    build_task_spec,
    build_task_specs,
    chunked,
    classify_add_results,
    command_line_from_argv,
    counts_state,
    derive_job_id,
    evaluate_tasks,
    fan_out_task_ids,
    iso8601_duration,
    output_blob_urls,
    output_file_target,
    retry_after_seconds,
    sanitize_batch_id,
    sas_lifetime,
    split_blob_url,
    tail_text,
    unknown_placeholders,
)

VALID_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
DAY = datetime(2026, 3, 1, tzinfo=UTC)


# -- ids ------------------------------------------------------------------------------------------


def test_job_id_is_deterministic_per_window() -> None:
    first = derive_job_id("logproc_daily", "analyze", DAY, DAY + timedelta(days=1))
    assert first == derive_job_id("logproc_daily", "analyze", DAY, DAY + timedelta(days=1))
    assert first == "logproc_daily-analyze-20260301-20260302"
    other_day = derive_job_id("logproc_daily", "analyze", DAY + timedelta(days=1), DAY + timedelta(days=2))
    assert other_day != first


def test_job_id_keeps_sub_day_windows_apart() -> None:
    hour = derive_job_id("d", "t", DAY + timedelta(hours=1), DAY + timedelta(hours=2))
    assert hour == "d-t-20260301T010000-20260301T020000"


def test_job_id_without_interval_uses_run_id_and_is_valid() -> None:
    job_id = derive_job_id("d", "t", None, None, run_id="manual__2026-03-01T00:00:00+00:00")
    assert VALID_ID.match(job_id)
    with pytest.raises(BatchSpecError, match="job_id"):
        derive_job_id("d", "t", None, None)


def test_long_ids_are_hash_shortened_without_collisions() -> None:
    long_dag = "a" * 80
    one = derive_job_id(long_dag, "task-one", DAY, DAY + timedelta(days=1))
    two = derive_job_id(long_dag, "task-two", DAY, DAY + timedelta(days=1))
    assert len(one) <= BATCH_ID_MAX_LENGTH and VALID_ID.match(one)
    assert one != two


@given(st.text(min_size=1, max_size=200))
def test_sanitized_ids_are_always_valid(raw: str) -> None:
    assert VALID_ID.match(sanitize_batch_id(raw))


def test_sanitize_changes_nothing_valid_and_separates_what_it_changes() -> None:
    assert sanitize_batch_id("already_valid-1") == "already_valid-1"
    assert sanitize_batch_id("a.b") != sanitize_batch_id("a/b")


# -- command lines --------------------------------------------------------------------------------


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


def test_split_blob_url_only_inside_the_connection_account() -> None:
    account = "http://127.0.0.1:10000/devstoreaccount1/"
    assert split_blob_url(PARTS[0], account) == ("logs", "app/2026/03/01/part-00000.jsonl")
    assert split_blob_url("https://acct.blob.core.windows.net/c/a%20b.txt?x", "https://acct.blob.core.windows.net") == (
        "c",
        "a b.txt",
    )
    with pytest.raises(BatchSpecError, match="not a blob of the storage account"):
        split_blob_url("https://other.blob.core.windows.net/c/b", account)


def test_sas_lives_past_the_timeout_and_not_much_longer() -> None:
    assert timedelta(hours=2) < sas_lifetime(timedelta(hours=2)) <= timedelta(hours=3)


def test_sas_permissions_are_least_privilege() -> None:
    from azure.storage.blob import BlobSasPermissions, ContainerSasPermissions

    from airflow_provider_logproc.batch_jobs import INPUT_SAS_PERMISSION, OUTPUT_SAS_PERMISSION

    read = BlobSasPermissions.from_string(INPUT_SAS_PERMISSION)
    assert read.read and not (read.write or read.create or read.delete)
    write = ContainerSasPermissions.from_string(OUTPUT_SAS_PERMISSION)
    assert write.create and write.write and not (write.read or write.list or write.delete)


# -- adding tasks ---------------------------------------------------------------------------------


def test_chunks_of_at_most_100() -> None:
    sizes = [len(chunk) for chunk in chunked(list(range(250)))]
    assert sizes == [100, 100, 50]


def test_add_results_task_exists_is_fine_server_errors_retry_client_errors_reject() -> None:
    outcome = classify_add_results(
        [
            {"taskId": "a", "status": "success"},
            {"taskId": "b", "status": "clientError", "error": {"code": "TaskExists", "message": {"value": "exists"}}},
            {"taskId": "c", "status": "serverError", "error": {"code": "ServerBusy"}},
            {
                "taskId": "d",
                "status": "clientError",
                "error": {"code": "InvalidPropertyValue", "message": {"value": "bad"}},
            },
        ]
    )
    assert outcome.added == ["a"]
    assert outcome.already_there == ["b"]
    assert outcome.retry == ["c"]
    assert outcome.rejected == [("d", "InvalidPropertyValue", "bad")]


# -- waiting and results ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("counts", "state"),
    [
        ({"active": 0, "running": 0, "completed": 0, "succeeded": 0, "failed": 0}, "running"),
        ({"active": 3, "running": 0, "completed": 2, "succeeded": 2, "failed": 0}, "running"),
        ({"active": 0, "running": 1, "completed": 4, "succeeded": 4, "failed": 0}, "running"),
        ({"active": 0, "running": 0, "completed": 5, "succeeded": 5, "failed": 0}, "success"),
        ({"active": 0, "running": 0, "completed": 5, "succeeded": 4, "failed": 1}, "failed"),
    ],
)
def test_counts_state(counts: dict[str, int], state: str) -> None:
    assert counts_state(counts) == state


def test_backoff_doubles_up_to_a_cap() -> None:
    assert [backoff_delay(attempt) for attempt in range(1, 8)] == [1, 2, 4, 8, 16, 30, 30]
    with pytest.raises(ValueError, match="from 1"):
        backoff_delay(0)


def test_retry_after() -> None:
    assert retry_after_seconds("3") == 3.0
    assert retry_after_seconds(None) is None
    assert retry_after_seconds("Wed, 21 Oct 2015 07:28:00 GMT") is None


def test_result_rules_name_failed_tasks_and_exit_codes() -> None:
    outcome = evaluate_tasks(
        "job-1",
        [
            {"id": "b", "state": "completed", "executionInfo": {"exitCode": 0, "result": "success"}},
            {
                "id": "a",
                "state": "completed",
                "executionInfo": {
                    "exitCode": 3,
                    "result": "failure",
                    "failureInfo": {"code": "FailureExitCode", "message": "exit 3"},
                },
            },
            {
                "id": "c",
                "state": "completed",
                "executionInfo": {"result": "failure", "failureInfo": {"code": "TaskEnded", "message": "wall clock"}},
            },
        ],
    )
    assert [task.id for task in outcome.tasks] == ["a", "b", "c"]
    assert [task.id for task in outcome.failed] == ["a", "c"]
    message = outcome.failure_message()
    assert "2 of 3 task(s) failed" in message
    assert "a (exit code 3, FailureExitCode exit 3)" in message
    assert "c (exit code none, TaskEnded wall clock)" in message
    assert outcome.tasks[1].as_xcom() == {"id": "b", "state": "completed", "exit_code": 0}


def test_result_rules_count_unfinished_tasks_and_read_sdk_models() -> None:
    tasks = [
        batch_models.BatchTask({"id": "x", "state": "active"}),
        batch_models.BatchTask(
            {"id": "y", "state": "completed", "executionInfo": {"exitCode": 0, "result": "success"}}
        ),
    ]
    outcome = evaluate_tasks("job", tasks)
    assert [task.id for task in outcome.unfinished] == ["x"]
    assert not outcome.failed and not outcome.succeeded


def test_output_urls_have_no_sas_and_only_the_jobs_tasks() -> None:
    urls = output_blob_urls(
        "http://h/acct/results?sv=secret",
        ["p/t1/partial.json", "p/t2/a b.json", "p/stale/x.json", "q/t1/y"],
        "p",
        ["t1", "t2"],
    )
    assert urls == ["http://h/acct/results/p/t1/partial.json", "http://h/acct/results/p/t2/a%20b.json"]


def test_tail_starts_at_a_line() -> None:
    data = b"".join(f"line {index}\n".encode() for index in range(1000))
    tail = tail_text(data, 100)
    assert tail.startswith("line ") and tail.endswith("line 999\n") and len(tail) <= 100
