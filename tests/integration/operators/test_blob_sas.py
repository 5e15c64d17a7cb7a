"""Short-lived, least-privilege SAS URLs from a wasb connection, checked against Azurite."""

from __future__ import annotations

import datetime as dt
import json
from urllib.parse import parse_qs, urlsplit

import pytest
from airflow.providers.microsoft.azure.hooks.wasb import WasbHook
from azure.core.exceptions import HttpResponseError
from azure.storage.blob import BlobClient, ContainerClient

from airflow_provider_logproc.blob.names import InvalidBlobNameError
from airflow_provider_logproc.local.azurite import ACCOUNT_KEY
from airflow_provider_logproc.sas import SasError, blob_sas_url, container_sas_url, redact_sas

pytestmark = pytest.mark.integration


def query(url: str) -> dict[str, str]:
    return {key: values[0] for key, values in parse_qs(urlsplit(url).query).items()}


def test_read_blob_sas_reads_and_cannot_write(azurite, blob_service_client, blob_container):
    container = blob_container()
    blob_service_client.get_blob_client(container, "in/part-00000.jsonl").upload_blob(b'{"a":1}\n')
    url = blob_sas_url(WasbHook(wasb_conn_id="wasb_default"), container, "in/part-00000.jsonl",
                       expiry=dt.timedelta(minutes=30))
    assert url.startswith(f"{azurite.blob_endpoint}/{container}/in/part-00000.jsonl?")
    fields = query(url)
    assert fields["sp"] == "r" and fields["sr"] == "b"
    expiry = dt.datetime.fromisoformat(fields["se"].replace("Z", "+00:00"))
    assert dt.timedelta(minutes=29) < expiry - dt.datetime.now(dt.UTC) <= dt.timedelta(minutes=30)
    client = BlobClient.from_blob_url(url)
    assert client.download_blob().readall() == b'{"a":1}\n'
    with pytest.raises(HttpResponseError) as denied:
        client.upload_blob(b"overwrite", overwrite=True)
    assert denied.value.status_code == 403


def test_write_container_sas_creates_blobs_and_cannot_read(blob_service_client, blob_container):
    container = blob_container()
    url = container_sas_url(WasbHook(wasb_conn_id="wasb_default"), container, permission="cw",
                            expiry=dt.timedelta(hours=2))
    assert query(url)["sp"] == "cw" and query(url)["sr"] == "c"
    client = ContainerClient.from_container_url(url)
    client.upload_blob("results/partial-0.json", b"{}")
    assert blob_service_client.get_blob_client(container, "results/partial-0.json").download_blob().readall() == b"{}"
    with pytest.raises(HttpResponseError) as denied:
        client.get_blob_client("results/partial-0.json").download_blob().readall()
    assert denied.value.status_code == 403


def test_account_key_connection_without_connection_string(azurite, monkeypatch, blob_service_client, blob_container):
    monkeypatch.setenv("AIRFLOW_CONN_WASB_KEY", json.dumps(
        {"conn_type": "wasb", "host": azurite.blob_endpoint, "login": "devstoreaccount1", "password": ACCOUNT_KEY}))
    container = blob_container()
    blob_service_client.get_blob_client(container, "x.jsonl").upload_blob(b"x\n")
    url = container_sas_url(WasbHook(wasb_conn_id="wasb_key"), container, permission="rl")
    names = [blob.name for blob in ContainerClient.from_container_url(url).list_blobs()]
    assert names == ["x.jsonl"]


def test_redact_sas_hides_the_signature(blob_container):
    url = container_sas_url(WasbHook(wasb_conn_id="wasb_default"), blob_container())
    signature = query(url)["sig"]
    redacted = redact_sas(url)
    assert signature not in redacted and "sig=***" in redacted and "sp=r" in redacted


def test_refusals(azurite, monkeypatch, blob_container):
    hook = WasbHook(wasb_conn_id="wasb_default")
    container = blob_container()
    with pytest.raises(SasError, match="unknown letters 'z'"):
        container_sas_url(hook, container, permission="rz")
    with pytest.raises(SasError, match="positive"):
        blob_sas_url(hook, container, "x", expiry=dt.timedelta(0))
    with pytest.raises(SasError, match="short-lived"):
        blob_sas_url(hook, container, "x", expiry=dt.timedelta(days=8))
    with pytest.raises(InvalidBlobNameError):
        blob_sas_url(hook, container, "../x")
    monkeypatch.setenv("AIRFLOW_CONN_WASB_SAS_ONLY", json.dumps(
        {"conn_type": "wasb", "host": azurite.blob_endpoint, "extra": {"sas_token": "sv=2024-08-04&sig=abc"}}))
    with pytest.raises(SasError, match="authenticates with a SAS token"):
        container_sas_url(WasbHook(wasb_conn_id="wasb_sas_only"), container)
