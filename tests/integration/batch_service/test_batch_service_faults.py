"""Fault injection and the request log, through the Python API and the admin HTTP endpoint."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from azure.batch import models as m
from azure.core.exceptions import HttpResponseError, ResourceExistsError, ServiceRequestError, ServiceResponseError
from azure.core.rest import HttpResponse

pytestmark = pytest.mark.integration


def test_injected_503s_are_retried_by_the_sdk_and_logged(batch_client, batch_service):
    batch_service.faults.add(status=503, count=2)
    assert batch_client.get_pool("local-pool").id == "local-pool"
    entries = batch_service.request_log.entries()
    assert [(e["operation"], e["status"], e["fault"]) for e in entries] == [
        ("Pools_GetPool", 503, "status:503"),
        ("Pools_GetPool", 503, "status:503"),
        ("Pools_GetPool", 200, None),
    ]
    assert batch_service.faults.rules() == []  # used up


def test_status_faults_reach_a_client_without_retries_in_batch_error_shape(batch_service, batch_reset):
    client = batch_service.client(retry_total=0)
    for status, code in ((429, "TooManyRequests"), (500, "InternalServerError"), (503, "ServerBusy")):
        batch_service.faults.add(status=status, operation="Jobs_ListJobs", retry_after=0)
        with pytest.raises(HttpResponseError) as caught:
            list(client.list_jobs())
        assert caught.value.status_code == status
        assert caught.value.error is not None and caught.value.error.code == code
        response = caught.value.response
        assert isinstance(response, HttpResponse)  # the exception types it as a Protocol without headers
        assert response.headers["Retry-After"] == "0"
    assert client.get_pool("local-pool")  # rules matched only Jobs_ListJobs


def test_dropped_connections_before_and_after_the_operation(batch_service, batch_reset, batch_job_id):
    client = batch_service.client(retry_total=0)
    batch_service.faults.add(drop=True, method="GET")
    with pytest.raises((ServiceRequestError, ServiceResponseError)):
        client.get_pool("local-pool")

    batch_service.faults.add(drop="after", operation="Jobs_CreateJob")
    job = m.BatchJobCreateOptions(id=batch_job_id, pool_info=m.BatchPoolInfo(pool_id="local-pool"))
    with pytest.raises((ServiceRequestError, ServiceResponseError)):
        client.create_job(job)
    # The job was created although its answer was lost: a retry meets JobExists.
    with pytest.raises(ResourceExistsError):
        client.create_job(job)
    assert client.get_job(batch_job_id).id == batch_job_id


def test_share_and_latency_rules(batch_client, batch_service):
    batch_service.faults.add(status=500, share=0.5, seed=3, operation="Pools_GetPool")
    client = batch_service.client(retry_total=0)
    outcomes: list[int | None] = []
    for _ in range(20):
        try:
            client.get_pool("local-pool")
            outcomes.append(200)
        except HttpResponseError as exc:
            outcomes.append(exc.status_code)
    assert 0 < outcomes.count(500) < 20
    assert batch_service.faults.rules()[0]["applied"] == outcomes.count(500)
    batch_service.faults.clear()

    batch_service.faults.add(latency=0.2, count=1)
    seq = batch_service.request_log.last_seq()
    batch_client.get_pool("local-pool")
    (entry,) = batch_service.request_log.entries(since=seq)
    assert entry["fault"] == "latency:0.2s"
    assert entry["duration_ms"] >= 200


def test_request_log_counts_requests_per_poll(batch_client, batch_service, batch_job_id):
    batch_client.create_job(m.BatchJobCreateOptions(id=batch_job_id, pool_info=m.BatchPoolInfo(pool_id="local-pool")))
    seq = batch_service.request_log.last_seq()
    for _ in range(3):
        batch_client.get_job_task_counts(batch_job_id)
    assert batch_service.request_log.count(operation="Jobs_GetJobTaskCounts", since=seq) == 3
    assert batch_service.request_log.count(since=seq) == 3
    entry = batch_service.request_log.entries(since=seq)[0]
    assert entry["path"] == f"/jobs/{batch_job_id}/taskcounts"
    assert entry["client_request_id"]
    assert "Authorization" not in json.dumps(entry)


def test_admin_endpoint_from_another_process(batch_client, batch_service):
    script = (
        "import json, sys, urllib.request\n"
        "base = sys.argv[1]\n"
        "req = urllib.request.Request(base + '/_local/faults', method='POST',\n"
        "    data=json.dumps({'status': 503, 'count': 1, 'operation': 'Pools_ListPools'}).encode(),\n"
        "    headers={'Content-Type': 'application/json'})\n"
        "print(urllib.request.urlopen(req).status)\n"
    )
    out = subprocess.run([sys.executable, "-c", script, batch_service.account_url], capture_output=True, text=True,
                         check=True, timeout=30)
    assert out.stdout.strip() == "201"
    assert [p.id for p in batch_client.list_pools()] == ["local-pool"]  # retried past the 503
    log = json.loads(subprocess.run(
        [sys.executable, "-c", "import sys, urllib.request; print(urllib.request.urlopen(sys.argv[1]).read().decode())",
         f"{batch_service.account_url}/_local/requests"], capture_output=True, text=True, check=True,
        timeout=30).stdout)
    assert [r["status"] for r in log["requests"]] == [503, 200]


def test_bad_fault_rules_are_refused_with_the_reason(batch_service, batch_reset):
    with pytest.raises(ValueError, match="unknown keys"):
        batch_service.faults.add(status=503, cuont=2)
    with pytest.raises(ValueError, match="4xx or 5xx"):
        batch_service.faults.add(status=200)
