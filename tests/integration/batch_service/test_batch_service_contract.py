"""Contract: every route the local Batch service serves answers as the official OpenAPI spec says.

Each answer is validated against ``tests/contracts/azure-batch-BatchService-2025-06-01.json``
(Microsoft's spec, api-version 2025-06-01): the route must exist there with the same operation id,
the status must be one the operation declares (or an error with the ``BatchError`` body of its
``default`` response), the JSON body must validate against the response schema with every ``$ref``
resolved, and the headers the spec declares for that status must be present with the right types.
Objects are validated strictly: a property the spec does not define (other than ``odata.*``
annotations) fails, so a typo in the service cannot pass unnoticed.
"""

from __future__ import annotations

import copy
import datetime as dt
import email.utils
import json
import re
import time
from pathlib import Path
from typing import Any

import jsonschema
import pytest
from azure.batch._patch import BatchSharedKeyAuthPolicy
from azure.core import PipelineClient
from azure.core.credentials import AzureNamedKeyCredential
from azure.core.rest import HttpRequest

from logproc_local.batch_service.model import parse_duration

pytestmark = pytest.mark.integration

SPEC_PATH = Path(__file__).resolve().parents[2] / "contracts" / "azure-batch-BatchService-2025-06-01.json"
API = "api-version=2025-06-01"
JSON_TYPE = "application/json; odata=minimalmetadata"


def _strict(definitions: dict[str, Any]) -> dict[str, Any]:
    strict = copy.deepcopy(definitions)
    for definition in strict.values():
        if definition.get("type") == "object" and "properties" in definition:
            definition.setdefault("additionalProperties", False)
            definition.setdefault("patternProperties", {r"^odata\.": {}})
    return strict


FORMATS = jsonschema.FormatChecker()


@FORMATS.checks("date-time", raises=ValueError)
def _date_time(value: object) -> bool:
    return not isinstance(value, str) or bool(
        re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)", value)
        and dt.datetime.fromisoformat(value.replace("Z", "+00:00")))


@FORMATS.checks("uri", raises=ValueError)
def _uri(value: object) -> bool:
    return not isinstance(value, str) or bool(re.match(r"^https?://[^/\s]+", value))


@FORMATS.checks("duration", raises=Exception)
def _duration(value: object) -> bool:
    return not isinstance(value, str) or parse_duration(value, "duration") >= 0


@FORMATS.checks("int32")
def _int32(value: object) -> bool:
    return not isinstance(value, int) or -(2**31) <= value < 2**31


@FORMATS.checks("int64")
def _int64(value: object) -> bool:
    return not isinstance(value, str) or bool(re.fullmatch(r"-?\d+", value))


class Spec:
    def __init__(self, path: Path):
        self.document = json.loads(path.read_text())
        self.definitions = _strict(self.document["definitions"])
        # $select leaves out properties the spec marks required: answers to it are checked without them.
        self.selected_definitions = copy.deepcopy(self.definitions)
        for definition in self.selected_definitions.values():
            definition.pop("required", None)

    def operation(self, method: str, template: str) -> dict[str, Any]:
        path_item = self.document["paths"].get(template)
        assert path_item is not None, f"{template} is not a path of the spec"
        operation = path_item.get(method.lower())
        assert operation is not None, f"{method} {template} is not an operation of the spec"
        return operation

    def validate(self, schema_ref: dict[str, Any], body: Any, where: str, *, selected: bool = False) -> None:
        schema = {**schema_ref, "definitions": self.selected_definitions if selected else self.definitions}
        validator = jsonschema.Draft4Validator(schema, format_checker=FORMATS)
        errors = sorted(validator.iter_errors(body), key=lambda e: list(e.absolute_path))
        assert not errors, f"{where}: " + "; ".join(
            f"{'/'.join(map(str, e.absolute_path)) or '<root>'}: {e.message}" for e in errors[:10])


SPEC = Spec(SPEC_PATH)


def raw_client(service: Any) -> PipelineClient:
    """A pipeline with only the SDK's SharedKey signing: every answer comes back, errors included."""
    credential = AzureNamedKeyCredential(service.account_name, service.account_key)
    return PipelineClient(base_url=service.account_url, policies=[BatchSharedKeyAuthPolicy(credential)])


class Contract:
    """Sends signed requests through the SDK's pipeline and checks every answer against the spec."""

    def __init__(self, service: Any):
        self.service = service
        self.client = raw_client(service)
        self.sdk = service.client(retry_total=0)
        self.routes = {(r["method"], r["path"]): r["operation"] for r in service.routes()}
        self.exercised: set[tuple[str, str]] = set()

    def call(self, method: str, template: str, path: str, *, query: str = "", body: Any = None,
             headers: dict[str, str] | None = None, expect: int) -> Any:
        operation = SPEC.operation(method, template)
        assert self.routes.get((method, template)) == operation["operationId"], (method, template)
        url = f"{self.service.account_url}{path}?{API}{'&' + query if query else ''}"
        request_headers = {"client-request-id": "contract-test", **(headers or {})}
        if body is not None:
            request_headers["Content-Type"] = JSON_TYPE
        response = self.client.send_request(HttpRequest(method, url, headers=request_headers,
                                                        content=None if body is None else json.dumps(body)))
        where = f"{method} {path}?{query} ({operation['operationId']})"
        assert response.status_code == expect, f"{where}: {response.status_code} {response.text()[:500]}"
        self.exercised.add((method, template))
        declared = operation["responses"].get(str(response.status_code))
        is_error = response.status_code >= 400
        if declared is None:
            assert is_error, f"{where}: status {response.status_code} is not declared"
            declared = operation["responses"]["default"]
        assert response.headers.get("request-id"), f"{where}: no request-id header"
        for name, header in declared.get("headers", {}).items():
            value = response.headers.get(name)
            assert value is not None, f"{where}: header {name} missing"
            if header.get("format") == "date-time-rfc7231":
                assert email.utils.parsedate_to_datetime(value), f"{where}: {name}={value!r}"
            if header.get("type") == "boolean":
                assert value in ("true", "false"), f"{where}: {name}={value!r}"
            if header.get("type") == "integer":
                assert value.isdigit(), f"{where}: {name}={value!r}"
        if response.headers.get("client-request-id") is not None:
            assert response.headers["client-request-id"] == "contract-test"
        schema = declared.get("schema")
        if schema is not None and schema.get("type") == "file":
            assert response.headers["Content-Type"] == "application/octet-stream", where
            return response.content
        if method == "HEAD" or schema is None:
            assert not response.content, f"{where}: a body where the spec declares none"
            return None
        document = response.json()
        assert response.headers["Content-Type"].startswith("application/json"), where
        SPEC.validate(schema, document, where, selected="$select" in query)
        return document


def _wait(contract: Contract, job_id: str, completed: int) -> None:
    deadline = time.monotonic() + 30
    while contract.sdk.get_job_task_counts(job_id).task_counts.completed < completed:
        assert time.monotonic() < deadline
        time.sleep(0.05)


def test_every_served_route_answers_as_the_spec_says(batch_service_factory):
    contract = Contract(batch_service_factory(task_slots=2))
    c = contract.call
    pool = "local-pool"

    c("GET", "/pools", "/pools", expect=200)
    c("GET", "/pools", "/pools", query="maxresults=1&$select=id,state", expect=200)
    c("POST", "/pools", "/pools", body={"id": pool, "vmSize": "standard_d2s_v3"}, expect=409)
    c("GET", "/pools/{poolId}", f"/pools/{pool}", expect=200)
    c("GET", "/pools/{poolId}", "/pools/nope", expect=404)
    c("HEAD", "/pools/{poolId}", f"/pools/{pool}", expect=200)
    c("HEAD", "/pools/{poolId}", "/pools/nope", expect=404)
    nodes = c("GET", "/pools/{poolId}/nodes", f"/pools/{pool}/nodes", expect=200)
    c("GET", "/pools/{poolId}/nodes/{nodeId}", f"/pools/{pool}/nodes/{nodes['value'][0]['id']}", expect=200)
    c("GET", "/pools/{poolId}/nodes/{nodeId}", f"/pools/{pool}/nodes/nope", expect=404)

    for job_id in ("contract-a", "contract-b"):
        c("POST", "/jobs", "/jobs", expect=201, body={
            "id": job_id, "poolInfo": {"poolId": pool}, "priority": 10,
            "constraints": {"maxTaskRetryCount": 1},
            "commonEnvironmentSettings": [{"name": "A", "value": "1"}],
            "metadata": [{"name": "owner", "value": "contract"}]})
    c("POST", "/jobs", "/jobs", body={"id": "contract-a", "poolInfo": {"poolId": pool}}, expect=409)
    c("POST", "/jobs", "/jobs", body={"id": "bad id!", "poolInfo": {"poolId": pool}}, expect=400)
    c("POST", "/jobs", "/jobs", body={"id": "no-pool"}, expect=400)
    listed = c("GET", "/jobs", "/jobs", query="maxresults=1", expect=200)
    assert "odata.nextLink" in listed
    c("GET", "/jobs", "/jobs", query="$filter=" + "state%20eq%20'active'", expect=200)
    c("GET", "/jobs", "/jobs", query="$filter=" + "state%20eq", expect=400)
    c("GET", "/jobs/{jobId}", "/jobs/contract-a", expect=200)
    c("GET", "/jobs/{jobId}", "/jobs/contract-a", query="$select=id,state", expect=200)
    c("GET", "/jobs/{jobId}", "/jobs/missing", expect=404)
    c("PATCH", "/jobs/{jobId}", "/jobs/contract-b", body={"priority": 20}, expect=200)

    c("POST", "/jobs/{jobId}/tasks", "/jobs/contract-a/tasks", expect=201, body={
        "id": "single", "commandLine": "/bin/sh -c 'echo out; echo err >&2'",
        "environmentSettings": [{"name": "B", "value": "2"}],
        "constraints": {"maxWallClockTime": "PT1M", "maxTaskRetryCount": 0}})
    c("POST", "/jobs/{jobId}/tasks", "/jobs/contract-a/tasks", body={"id": "no-command"}, expect=400)
    c("POST", "/jobs/{jobId}/tasks", "/jobs/missing/tasks", body={"id": "x", "commandLine": "/bin/true"},
      expect=404)
    collection = c("POST", "/jobs/{jobId}/addtaskcollection", "/jobs/contract-a/addtaskcollection", expect=200,
                   body={"value": [{"id": "single", "commandLine": "/bin/true"},
                                   {"id": "fails", "commandLine": "/bin/sh -c 'exit 3'"},
                                   {"id": "bad", "commandLine": ""},
                                   {"id": "ok", "commandLine": "/bin/true", "requiredSlots": 1}]})
    assert [r["status"] for r in collection["value"]] == ["clienterror", "success", "clienterror", "success"]
    c("POST", "/jobs/{jobId}/addtaskcollection", "/jobs/contract-a/addtaskcollection", expect=400,
      body={"value": [{"id": f"t{i}", "commandLine": "/bin/true"} for i in range(101)]})
    _wait(contract, "contract-a", 3)

    c("GET", "/jobs/{jobId}/taskcounts", "/jobs/contract-a/taskcounts", expect=200)
    c("GET", "/jobs/{jobId}/taskcounts", "/jobs/missing/taskcounts", expect=404)
    page = c("GET", "/jobs/{jobId}/tasks", "/jobs/contract-a/tasks", query="maxresults=1", expect=200)
    assert "odata.nextLink" in page
    c("GET", "/jobs/{jobId}/tasks", "/jobs/contract-a/tasks",
      query="$filter=" + "executionInfo/result%20eq%20'failure'&$select=id,executionInfo", expect=200)
    c("GET", "/jobs/{jobId}/tasks", "/jobs/contract-a/tasks", query="maxresults=5000", expect=400)
    failed = c("GET", "/jobs/{jobId}/tasks/{taskId}", "/jobs/contract-a/tasks/fails", expect=200)
    assert failed["executionInfo"]["failureInfo"]["code"] == "FailureExitCode"
    c("GET", "/jobs/{jobId}/tasks/{taskId}", "/jobs/contract-a/tasks/single", expect=200)
    c("GET", "/jobs/{jobId}/tasks/{taskId}", "/jobs/contract-a/tasks/missing", expect=404)

    c("GET", "/jobs/{jobId}/tasks/{taskId}/files", "/jobs/contract-a/tasks/single/files", expect=200)
    c("GET", "/jobs/{jobId}/tasks/{taskId}/files", "/jobs/contract-a/tasks/single/files",
      query="recursive=true", expect=200)
    c("GET", "/jobs/{jobId}/tasks/{taskId}/files/{filePath}", "/jobs/contract-a/tasks/single/files/stdout.txt",
      expect=200)
    c("HEAD", "/jobs/{jobId}/tasks/{taskId}/files/{filePath}", "/jobs/contract-a/tasks/single/files/stderr.txt",
      expect=200)
    c("HEAD", "/jobs/{jobId}/tasks/{taskId}/files/{filePath}", "/jobs/contract-a/tasks/single/files/wd",
      expect=200)
    c("GET", "/jobs/{jobId}/tasks/{taskId}/files/{filePath}", "/jobs/contract-a/tasks/single/files/nope.txt",
      expect=404)
    c("GET", "/jobs/{jobId}/tasks/{taskId}/files/{filePath}",
      "/jobs/contract-a/tasks/single/files/..%2F..%2Fsecret", expect=404)

    c("POST", "/jobs/{jobId}/tasks", "/jobs/contract-b/tasks", body={"id": "sleeper", "commandLine": "/bin/sleep 30"},
      expect=201)
    c("POST", "/jobs/{jobId}/tasks/{taskId}/terminate", "/jobs/contract-b/tasks/sleeper/terminate", expect=204)
    c("POST", "/jobs/{jobId}/tasks/{taskId}/terminate", "/jobs/contract-b/tasks/missing/terminate", expect=404)
    c("POST", "/jobs/{jobId}/terminate", "/jobs/contract-b/terminate", body={"terminateReason": "contract"},
      expect=202)
    time.sleep(0.3)
    c("POST", "/jobs/{jobId}/terminate", "/jobs/contract-b/terminate", expect=409)
    ended = c("GET", "/jobs/{jobId}", "/jobs/contract-b", expect=200)
    assert ended["state"] == "completed"
    c("PATCH", "/jobs/{jobId}", "/jobs/contract-b", body={"priority": 1}, expect=409)
    c("DELETE", "/jobs/{jobId}", "/jobs/contract-a", expect=202)
    c("DELETE", "/jobs/{jobId}", "/jobs/missing", expect=404)

    unserved = {(method, path) for method, path in contract.routes} - contract.exercised
    assert not unserved, f"routes not exercised by the contract test: {sorted(unserved)}"


def test_protocol_errors_have_the_batch_error_shape(batch_service):
    client = raw_client(batch_service)
    schema = {"$ref": "#/definitions/BatchError"}
    for url, status, code in (
        (f"{batch_service.account_url}/jobs", 400, "MissingRequiredQueryParameter"),
        (f"{batch_service.account_url}/jobs?api-version=1999-01-01", 400, "InvalidQueryParameterValue"),
        (f"{batch_service.account_url}/jobschedules?{API}", 404, "UnsupportedOperation"),
    ):
        response = client.send_request(HttpRequest("GET", url))
        assert response.status_code == status, response.text()
        body = response.json()
        assert body["code"] == code
        SPEC.validate(schema, body, url)
    response = client.send_request(HttpRequest("PUT", f"{batch_service.account_url}/jobs/x?{API}", content="{}",
                                               headers={"Content-Type": JSON_TYPE}))
    assert response.status_code == 405
    SPEC.validate(schema, response.json(), "PUT /jobs/x")
