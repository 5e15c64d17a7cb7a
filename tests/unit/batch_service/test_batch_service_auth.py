"""SharedKey verification agrees with the azure-batch SDK's own signing policy, and refuses the rest."""

from __future__ import annotations

import base64
from urllib.parse import urlsplit

import pytest
from azure.batch._patch import BatchSharedKeyAuthPolicy
from azure.core.credentials import AzureNamedKeyCredential
from azure.core.pipeline import PipelineContext, PipelineRequest
from azure.core.rest import HttpRequest

from logproc_local.batch_service import auth

ACCOUNT = "localbatch"
KEY = base64.b64encode(b"k" * 64).decode()
OTHER_KEY = base64.b64encode(b"x" * 64).decode()


def signed_by_sdk(method: str, url: str, headers: dict[str, str] | None = None, body: str | None = None,
                  key: str = KEY, account: str = ACCOUNT) -> HttpRequest:
    request = HttpRequest(method, url, headers=headers or {}, content=body)
    policy = BatchSharedKeyAuthPolicy(AzureNamedKeyCredential(account, key))
    policy.on_request(PipelineRequest(request, PipelineContext(None)))
    return request


def verify(request: HttpRequest, key: str = KEY):
    parts = urlsplit(request.url)
    return auth.verify(request.method, parts.path, parts.query, dict(request.headers), ACCOUNT, key)


@pytest.mark.parametrize(("method", "url", "headers", "body"), [
    ("GET", "http://127.0.0.1:1/jobs?api-version=2025-06-01", {}, None),
    ("GET", "http://127.0.0.1:1/jobs/j/tasks?api-version=2025-06-01&maxresults=10"
            "&%24filter=state%20eq%20%27completed%27&%24select=id%2Cstate", {"Accept": "application/json"}, None),
    ("POST", "http://127.0.0.1:1/jobs?api-version=2025-06-01",
     {"Content-Type": "application/json; odata=minimalmetadata"}, '{"id": "j", "poolInfo": {"poolId": "p"}}'),
    ("POST", "http://127.0.0.1:1/jobs/j/terminate?api-version=2025-06-01", {}, None),
    ("DELETE", "http://127.0.0.1:1/jobs/j?api-version=2025-06-01", {"If-Match": "0xABC"}, None),
    ("HEAD", "http://127.0.0.1:1/jobs/j/tasks/t/files/wd%2Fout%20file.txt?api-version=2025-06-01", {}, None),
    ("GET", "http://127.0.0.1:1/jobs/j/tasks/t/files/stdout.txt?api-version=2025-06-01",
     {"ocp-range": "bytes=0-9", "client-request-id": "abc"}, None),
])
def test_requests_signed_by_the_sdk_verify(method, url, headers, body):
    request = signed_by_sdk(method, url, headers, body)
    assert request.headers["Authorization"].startswith(f"SharedKey {ACCOUNT}:")
    assert verify(request) is None


def test_wrong_key_is_403_and_the_detail_keeps_the_key_out():
    request = signed_by_sdk("GET", "http://127.0.0.1:1/jobs?api-version=2025-06-01", key=OTHER_KEY)
    failure = verify(request)
    assert failure is not None
    assert (failure.status, failure.code) == (403, "AuthenticationFailed")
    assert KEY not in failure.detail and OTHER_KEY not in failure.detail


@pytest.mark.parametrize("tamper", ["path", "query", "ocp-date", "body-length", "content-type"])
def test_any_change_after_signing_breaks_the_signature(tamper):
    request = signed_by_sdk("POST", "http://127.0.0.1:1/jobs/j/tasks?api-version=2025-06-01&timeOut=30",
                            {"Content-Type": "application/json"}, '{"id": "t", "commandLine": "x"}')
    parts = urlsplit(request.url)
    path, query, headers = parts.path, parts.query, dict(request.headers)
    if tamper == "path":
        path = "/jobs/other/tasks"
    elif tamper == "query":
        query = query.replace("timeOut=30", "timeOut=31")
    elif tamper == "ocp-date":
        headers["ocp-date"] = "Mon, 01 Jan 2001 00:00:00 GMT"
    elif tamper == "body-length":
        headers["Content-Length"] = str(int(headers["Content-Length"]) + 1)
    else:
        headers["Content-Type"] = "text/plain"
    failure = auth.verify("POST", path, query, headers, ACCOUNT, KEY)
    assert failure is not None and failure.status == 403


def test_missing_or_foreign_authorization():
    missing = auth.verify("GET", "/jobs", "api-version=x", {}, ACCOUNT, KEY)
    assert missing is not None and missing.status == 401
    bearer = auth.verify("GET", "/jobs", "", {"Authorization": "Bearer abc"}, ACCOUNT, KEY)
    assert bearer is not None and bearer.status == 401 and "SharedKey" in bearer.detail
    request = signed_by_sdk("GET", "http://127.0.0.1:1/jobs?api-version=2025-06-01", account="otheraccount")
    parts = urlsplit(request.url)
    failure = auth.verify("GET", parts.path, parts.query, dict(request.headers), ACCOUNT, KEY)
    assert failure is not None and failure.status == 403 and "otheraccount" in failure.detail


def test_key_must_be_base64():
    assert auth.valid_account_key(KEY)
    assert not auth.valid_account_key("not base64!")


def test_stale_or_missing_date_is_refused():
    import datetime as dt

    request = signed_by_sdk("GET", "http://127.0.0.1:1/jobs?api-version=2025-06-01")
    parts = urlsplit(request.url)
    headers = dict(request.headers)
    later = dt.datetime.now(dt.UTC) + dt.timedelta(minutes=20)
    stale = auth.verify("GET", parts.path, parts.query, headers, ACCOUNT, KEY, now=later)
    assert stale is not None and stale.status == 403 and "too old" in stale.detail
    assert auth.verify("GET", parts.path, parts.query, headers, ACCOUNT, KEY,
                       now=dt.datetime.now(dt.UTC) + dt.timedelta(minutes=5)) is None
    # Without ocp-date the signature itself covers no date: refused.
    undated = {name: value for name, value in headers.items() if name.lower() != "ocp-date"}
    undated["Authorization"] = "SharedKey {}:{}".format(ACCOUNT, auth.sign(
        KEY, auth.string_to_sign("GET", parts.path, parts.query, undated, ACCOUNT)))
    failure = auth.verify("GET", parts.path, parts.query, undated, ACCOUNT, KEY)
    assert failure is not None and "neither an ocp-date nor a Date" in failure.detail
