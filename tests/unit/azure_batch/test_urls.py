"""Input/output URLs and SAS lifetimes and permissions of a Batch job."""

from __future__ import annotations

from datetime import timedelta

import pytest

from airflow_provider_logproc.azure_batch.errors import BatchSpecError
from airflow_provider_logproc.azure_batch.urls import output_blob_urls, sas_lifetime, split_blob_url

PARTS = [f"http://127.0.0.1:10000/devstoreaccount1/logs/app/2026/03/01/part-{index:05d}.jsonl" for index in range(5)]


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

    from airflow_provider_logproc.azure_batch.urls import INPUT_SAS_PERMISSION, OUTPUT_SAS_PERMISSION

    read = BlobSasPermissions.from_string(INPUT_SAS_PERMISSION)
    assert read.read and not (read.write or read.create or read.delete)
    write = ContainerSasPermissions.from_string(OUTPUT_SAS_PERMISSION)
    assert write.create and write.write and not (write.read or write.list or write.delete)


# -- adding tasks ---------------------------------------------------------------------------------


def test_output_urls_have_no_sas_and_only_the_jobs_tasks() -> None:
    urls = output_blob_urls(
        "http://h/acct/results?sv=secret",
        ["p/t1/partial.json", "p/t2/a b.json", "p/stale/x.json", "q/t1/y"],
        "p",
        ["t1", "t2"],
    )
    assert urls == ["http://h/acct/results/p/t1/partial.json", "http://h/acct/results/p/t2/a%20b.json"]


