"""Upload requests are validated before any request; manifests are deterministic; errors are clean."""

from __future__ import annotations

import io
import json
from contextlib import nullcontext

import pytest
from azure.core.exceptions import ClientAuthenticationError, HttpResponseError, ServiceRequestError

from airflow_provider_logproc.blob.errors import BlobUploadError, azure_errors, describe, redact, url_without_query
from airflow_provider_logproc.blob.names import InvalidBlobNameError, InvalidUploadOptionError
from airflow_provider_logproc.blob.options import IfExists
from airflow_provider_logproc.blob.request import BlobUploadRequest, UploadedBlob, build_manifest
from airflow_provider_logproc.blob.split import Source
from airflow_provider_logproc.operators.blob import BlobUploadOperator, source_uris

SOURCE = Source(uri="file:///tmp/in.jsonl", open=lambda: nullcontext(io.BytesIO(b"a\n")), size=2)


def request(**kwargs) -> BlobUploadRequest:
    return BlobUploadRequest(**{"sources": [SOURCE], "container": "logs", "prefix": "t/2024/01/01", **kwargs})


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"container": "Bad_Name"}, InvalidBlobNameError, "container name"),
        ({"prefix": "t/../x"}, InvalidBlobNameError, r"'\.\.'"),
        ({"prefix": "/t"}, InvalidBlobNameError, "starts with '/'"),
        ({"prefix": None, "blob_name": "../x.jsonl"}, InvalidBlobNameError, r"'\.\.'"),
        ({"prefix": None, "blob_name": "/x.jsonl"}, InvalidBlobNameError, "starts with '/'"),
        ({"blob_name": "x.jsonl"}, InvalidUploadOptionError, "exactly one of blob_name"),
        ({"prefix": None}, InvalidUploadOptionError, "exactly one of blob_name"),
        ({"prefix": None, "blob_name": "x", "parts": 2}, InvalidUploadOptionError, "need prefix"),
        ({"parts": 2, "max_part_bytes": 10}, InvalidUploadOptionError, "not both"),
        ({"parts": 0}, InvalidUploadOptionError, "positive integer"),
        ({"max_concurrency": 0}, InvalidUploadOptionError, "positive integer"),
        ({"if_exists": "overwrite"}, InvalidUploadOptionError, "'replace', 'skip_if_same', 'fail'"),
        ({"sources": []}, InvalidUploadOptionError, "no source"),
        ({"access_tier": "Premium"}, InvalidUploadOptionError, "access tier"),
        ({"metadata": {"bad-name": "x"}}, InvalidUploadOptionError, "C# identifier"),
    ],
)
def test_invalid_requests_are_refused(kwargs, error, match):
    with pytest.raises(error, match=match):
        request(**kwargs)


def test_request_normalizes():
    normalized = request(prefix="t/2024/01/01/", if_exists="skip_if_same", access_tier="hot", metadata={"a": 1})
    assert normalized.prefix == "t/2024/01/01"
    assert normalized.mode is IfExists.SKIP_IF_SAME
    assert normalized.access_tier == "Hot"
    assert normalized.metadata == {"a": "1"}
    assert normalized.part_name(7) == "t/2024/01/01/part-00007.jsonl"
    assert request(gzip=True).part_name(0) == "t/2024/01/01/part-00000.jsonl.gz"


def test_content_type_defaults():
    assert request().stored_content_type() == "application/x-ndjson"
    assert request(gzip=True).stored_content_type() == "application/gzip"
    assert request(content_type="text/plain").stored_content_type() == "text/plain"
    assert request(prefix=None, blob_name="x.json").stored_content_type() == "application/json"


def test_manifest_is_deterministic_and_complete():
    blobs = [UploadedBlob(index=i, name=f"t/2024/01/01/part-0000{i}.jsonl", url=f"http://h/a/logs/p{i}", size=10 + i,
                          md5=bytes([i]) * 16, raw_size=10 + i, records=3 + i, uploaded=True) for i in range(2)]
    first = build_manifest(request(), blobs)
    assert first == build_manifest(request(), blobs)
    document = json.loads(first)
    assert document["part_count"] == 2 and document["record_count"] == 7 and document["size"] == 21
    assert document["parts"][1] == {
        "index": 1, "name": "t/2024/01/01/part-00001.jsonl", "url": "http://h/a/logs/p1", "size": 11,
        "raw_size": 11, "records": 4, "md5": "01" * 16, "content_md5": "AQEBAQEBAQEBAQEBAQEBAQ=="}
    assert document["sources"] == ["file:///tmp/in.jsonl"]


SECRET_KEY = "c2VjcmV0LWtleS10aGF0LW11c3Qtbm90LWxlYWs="


def test_redact_scrubs_signatures_keys_and_known_secrets():
    text = (f"url http://h/c/b?sv=2024&sig=abc%2Fdef%3D&se=x AccountKey={SECRET_KEY};BlobEndpoint=x "
            f"Authorization: SharedKey acct:Zm9vYmFy The MAC signature found in the HTTP request 'Zm9v' is not "
            f"Bearer eyJhbGciOi raw {SECRET_KEY[::-1]}")
    cleaned = redact(text, [SECRET_KEY[::-1]])
    for secret in ("abc%2Fdef%3D", SECRET_KEY, "Zm9vYmFy", "'Zm9v'", "eyJhbGciOi", SECRET_KEY[::-1]):
        assert secret not in cleaned
    assert "sig=***" in cleaned and "se=x" in cleaned
    assert url_without_query("https://a.blob.core.windows.net/c/b%20x?sv=1&sig=2") == (
        "https://a.blob.core.windows.net/c/b%20x")


def test_sdk_errors_become_clear_secret_free_errors():
    endpoint = "http://127.0.0.1:1/acct/c?sv=1&sig=SIGNATURE"
    auth = describe(ClientAuthenticationError(message="denied sig=SIGNATURE"), "writing blob 'x'", endpoint, [])
    assert "refused the credentials" in auth and "SIGNATURE" not in auth and "writing blob 'x' failed" in auth
    network = describe(ServiceRequestError("Connection refused to /c/b?sig=SIGNATURE"), "listing", endpoint, [])
    assert "could not reach Azure Blob Storage at http://127.0.0.1:1/acct/c" in network
    assert "SIGNATURE" not in network
    with pytest.raises(BlobUploadError) as caught, azure_errors("reading", endpoint, [SECRET_KEY]):
        raise HttpResponseError(message=f"boom {SECRET_KEY}")
    assert SECRET_KEY not in str(caught.value)
    assert caught.value.__cause__ is None and caught.value.__suppress_context__


def test_source_uris_accepts_the_forms_xcom_gives():
    assert source_uris("file:///a.jsonl") == ["file:///a.jsonl"]
    assert source_uris(["file:///a", "file:///b"]) == ["file:///a", "file:///b"]
    assert source_uris("['file:///a', 'file:///b']") == ["file:///a", "file:///b"]
    assert source_uris(("file:///a",)) == ["file:///a"]
    with pytest.raises(InvalidUploadOptionError):
        source_uris("")
    with pytest.raises(InvalidUploadOptionError):
        source_uris(42)


def test_operator_refuses_bad_static_arguments_at_parse_time():
    with pytest.raises(InvalidUploadOptionError, match="exactly one of"):
        BlobUploadOperator(task_id="t", source="file:///a", container="logs")
    with pytest.raises(InvalidUploadOptionError, match="not both"):
        BlobUploadOperator(task_id="t", source="file:///a", container="logs", prefix="p", parts=2, max_part_bytes=9)
    with pytest.raises(InvalidUploadOptionError, match="if_exists"):
        BlobUploadOperator(task_id="t", source="file:///a", container="logs", prefix="p", if_exists="merge")
    operator = BlobUploadOperator(task_id="t", source="{{ ti.xcom_pull('x') }}", container="logs", prefix="p")
    assert {"source", "container", "blob_name", "prefix"} <= set(operator.template_fields)


