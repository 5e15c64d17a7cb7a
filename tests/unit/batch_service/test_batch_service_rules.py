"""Pure pieces of the local Batch service: fault rules, durations, validation, output file matching."""

from __future__ import annotations

from pathlib import Path

import pytest

from logproc_local.batch_service.faults import FaultInjector, RequestLog
from logproc_local.batch_service.model import BatchApiError, parse_duration
from logproc_local.batch_service.node import match_output_files
from logproc_local.batch_service.validation import validate_job, validate_task


def test_count_rules_apply_in_order_then_vanish():
    faults = FaultInjector()
    faults.add(status=503, count=2)
    faults.add(drop=True, method="POST")
    decisions = [faults.decide("GET", "/jobs", "Jobs_ListJobs") for _ in range(3)]
    assert [d.status for d in decisions] == [503, 503, None]
    assert faults.decide("POST", "/jobs", "Jobs_CreateJob").drop_before
    assert faults.rules() == []


def test_matching_by_operation_method_and_path():
    faults = FaultInjector()
    faults.add(status=500, operation="Jobs_GetJobTaskCounts", count=5)
    faults.add(status=429, path=r"^/jobs/[^/]+/tasks$", method="GET", count=5)
    assert faults.decide("GET", "/jobs/j/taskcounts", "Jobs_GetJobTaskCounts").status == 500
    assert faults.decide("GET", "/jobs/j/tasks", "Tasks_ListTasks").status == 429
    assert faults.decide("POST", "/jobs/j/tasks", "Tasks_CreateTask").status is None
    assert faults.decide("GET", "/pools", "Pools_ListPools").status is None


def test_latency_adds_up_and_continues_to_a_status_rule():
    faults = FaultInjector()
    faults.add(latency=0.25, count=1)
    faults.add(latency=0.5, status=503, count=1)
    decision = faults.decide("GET", "/jobs", "Jobs_ListJobs")
    assert (decision.latency, decision.status) == (0.75, 503)
    assert decision.describe() == "latency:0.75s,status:503"


def test_share_rules_are_seeded_and_stay_until_cleared():
    def hits(seed: int) -> list[bool]:
        faults = FaultInjector()
        faults.add(status=500, share=0.3, seed=seed)
        return [faults.decide("GET", "/jobs", "x").status == 500 for _ in range(200)]

    first = hits(7)
    assert first == hits(7)
    assert 30 < sum(first) < 90


@pytest.mark.parametrize(("rule", "message"), [
    ({}, "give one of status, drop or latency"),
    ({"status": 302}, "4xx or 5xx"),
    ({"drop": "sideways"}, "drop must be"),
    ({"status": 500, "share": 1.5}, "share must be"),
    ({"status": 500, "count": -1}, "count must be"),
    ({"status": 500, "colour": "red"}, "unknown keys"),
])
def test_bad_rules_are_refused(rule, message):
    with pytest.raises(ValueError, match=message):
        FaultInjector().add(**rule)


def test_request_log_since_and_capacity():
    log = RequestLog(capacity=3)
    for i in range(5):
        log.add(method="GET", path=f"/{i}", query={}, operation="x", status=200, duration_ms=1.0,
                client_request_id=None, fault=None)
    assert [entry["path"] for entry in log.entries()] == ["/2", "/3", "/4"]
    assert [entry["path"] for entry in log.entries(since=4)] == ["/4"]
    assert log.last_seq() == 5


@pytest.mark.parametrize(("text", "seconds"), [
    ("PT30S", 30), ("PT1H30M", 5400), ("P1DT2H", 93600), ("PT0.5S", 0.5), ("P7D", 604800),
    ("P10675199DT2H48M5.4775807S", 10675199 * 86400 + 2 * 3600 + 48 * 60 + 5.4775807),
])
def test_durations(text, seconds):
    assert parse_duration(text, "x") == pytest.approx(seconds)


@pytest.mark.parametrize("text", ["30s", "P", "PT", "T30S", "", "PT-1S"])
def test_bad_durations_name_the_property(text):
    with pytest.raises(BatchApiError) as caught:
        parse_duration(text, "constraints.maxWallClockTime")
    assert caught.value.values["PropertyName"] == "constraints.maxWallClockTime"


@pytest.mark.parametrize(("spec", "code", "property_name"), [
    ({"commandLine": "x"}, "MissingRequiredProperty", "id"),
    ({"id": "a b", "commandLine": "x"}, "InvalidPropertyValue", "id"),
    ({"id": "x" * 65, "commandLine": "x"}, "InvalidPropertyValue", "id"),
    ({"id": "t"}, "MissingRequiredProperty", "commandLine"),
    ({"id": "t", "commandLine": "  "}, "InvalidPropertyValue", "commandLine"),
    ({"id": "t", "commandLine": "x", "dependsOn": {"taskIds": ["a"]}}, "UnsupportedProperty", "dependsOn"),
    ({"id": "t", "commandLine": "x", "resourceFiles": [{"httpUrl": "http://a/b"}]},
     "MissingRequiredProperty", "resourceFiles[0].filePath"),
    ({"id": "t", "commandLine": "x", "resourceFiles": [{"httpUrl": "http://a/b", "filePath": "../up"}]},
     "InvalidPropertyValue", "resourceFiles[0].filePath"),
    ({"id": "t", "commandLine": "x", "resourceFiles": [{"autoStorageContainerName": "c"}]},
     "UnsupportedProperty", "resourceFiles[0].autoStorageContainerName"),
    ({"id": "t", "commandLine": "x", "outputFiles": [{"filePattern": "*.txt", "destination": {"container": {
        "containerUrl": "http://a/c"}}, "uploadOptions": {"uploadCondition": "always"}}]},
     "InvalidPropertyValue", "outputFiles[0].uploadOptions.uploadCondition"),
    ({"id": "t", "commandLine": "x", "constraints": {"maxTaskRetryCount": -2}},
     "InvalidPropertyValue", "constraints.maxTaskRetryCount"),
    ({"id": "t", "commandLine": "x", "requiredSlots": 5}, "InvalidPropertyValue", "requiredSlots"),
])
def test_task_validation_names_the_property(spec, code, property_name):
    with pytest.raises(BatchApiError) as caught:
        validate_task(spec, task_slots=4)
    assert caught.value.code == code
    assert caught.value.values["PropertyName"] == property_name


def test_job_validation():
    assert validate_job({"id": "j", "poolInfo": {"poolId": "p"}})
    with pytest.raises(BatchApiError, match="poolInfo"):
        validate_job({"id": "j"})
    with pytest.raises(BatchApiError) as caught:
        validate_job({"id": "j", "poolInfo": {"autoPoolSpecification": {}}})
    assert caught.value.code == "UnsupportedProperty"
    with pytest.raises(BatchApiError) as caught:
        validate_job({"id": "j", "poolInfo": {"poolId": "p"}, "onAllTasksComplete": "explode"})
    assert caught.value.values["PropertyName"] == "onAllTasksComplete"


def make_tree(root: Path) -> Path:
    work_dir = root / "wd"
    for relative in ("out/a.json", "out/sub/b.json", "out/sub/deeper/c.txt", "top.txt"):
        (work_dir / relative).parent.mkdir(parents=True, exist_ok=True)
        (work_dir / relative).write_text(relative)
    (root / "stdout.txt").write_text("o")
    (root / "stderr.txt").write_text("e")
    return work_dir


def test_output_file_patterns(tmp_path):
    wd = make_tree(tmp_path)

    def names(pattern: str, path: str | None) -> list[str]:
        return [blob for _source, blob in match_output_files(wd, pattern, path)]

    assert names("top.txt", None) == ["top.txt"]
    assert names("top.txt", "results/day.txt") == ["results/day.txt"]
    assert names("missing.txt", "x") == []
    assert names("out/*.json", "r") == ["r/a.json"]
    assert names("out/**/*.json", "r") == ["r/a.json", "r/sub/b.json"]
    assert names("out/**/*", None) == ["a.json", "sub/b.json", "sub/deeper/c.txt"]
    assert names("../std*.txt", "logs/") == ["logs/stderr.txt", "logs/stdout.txt"]
    assert names("**/*.txt", "all") == ["all/out/sub/deeper/c.txt", "all/top.txt"]
