"""AzureBatchJobOperator without a server: arguments, templating, inputs, SAS URLs, portal link."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from types import SimpleNamespace
from urllib.parse import parse_qs, urlsplit

import pytest
from azure.storage.blob import BlobServiceClient

from airflow_provider_logproc.azure_batch.errors import BatchSpecError
from airflow_provider_logproc.azure_batch.sas import blob_sas_url, container_sas_url
from airflow_provider_logproc.azure_batch.task_specs import normalize_inputs
from airflow_provider_logproc.azure_batch.urls import INPUT_SAS_PERMISSION, OUTPUT_SAS_PERMISSION, sas_lifetime
from airflow_provider_logproc.operators.batch import AzureBatchJobOperator, portal_url

KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
CONNECTION_STRING = (
    "DefaultEndpointsProtocol=http;AccountName=devstoreaccount1;"
    f"AccountKey={KEY};BlobEndpoint=http://127.0.0.1:10000/devstoreaccount1;"
)


def test_template_fields_cover_what_users_template() -> None:
    assert set(AzureBatchJobOperator.template_fields) >= {
        "azure_batch_conn_id",
        "pool_id",
        "job_id",
        "tasks",
        "fan_out_inputs",
        "task_template",
        "wasb_conn_id",
        "output_container",
        "output_prefix",
    }


def test_argument_combinations_are_checked_at_parse_time() -> None:
    with pytest.raises(ValueError, match="either tasks or fan_out_inputs"):
        AzureBatchJobOperator(task_id="a", pool_id="p")
    with pytest.raises(ValueError, match="needs a task_template"):
        AzureBatchJobOperator(task_id="a", pool_id="p", fan_out_inputs=["x"])
    with pytest.raises(ValueError, match="needs wasb_conn_id"):
        AzureBatchJobOperator(task_id="a", pool_id="p", tasks=[], output_container="c")
    operator = AzureBatchJobOperator(task_id="a", pool_id="p", tasks=[], timeout=90, deferrable=True)
    assert operator.timeout == timedelta(seconds=90) and operator.deferrable


def test_job_id_comes_from_the_data_interval_unless_given() -> None:
    from airflow.providers.common.compat.sdk import DAG

    with DAG("logproc_daily", schedule=None):
        operator = AzureBatchJobOperator(task_id="analyze", pool_id="p", tasks=[])
    start = datetime(2026, 3, 1, tzinfo=UTC)
    context = {
        "data_interval_start": start,
        "data_interval_end": start + timedelta(days=1),
        "dag_run": SimpleNamespace(run_id="r"),
    }
    assert operator.resolve_job_id(context) == "logproc_daily-analyze-20260301-20260302"  # type: ignore[arg-type]
    operator.job_id = "bad id"
    with pytest.raises(BatchSpecError, match="not a valid Batch id"):
        operator.resolve_job_id(context)  # type: ignore[arg-type]


def test_inputs_from_a_list_a_rendered_string_or_the_upload_steps_mapping() -> None:
    urls = ["https://a/c/part-00000.jsonl", "https://a/c/part-00001.jsonl"]
    assert normalize_inputs(urls) == urls
    assert normalize_inputs(str(urls)) == urls
    assert normalize_inputs({"uris": urls, "count": 2}) == urls
    with pytest.raises(BatchSpecError, match="list of blob URLs"):
        normalize_inputs([1, 2])
    with pytest.raises(BatchSpecError, match="'uris' or 'parts'"):
        normalize_inputs({"x": 1})


def test_sas_urls_are_least_privilege_short_lived_and_point_at_the_blob() -> None:
    client = BlobServiceClient.from_connection_string(CONNECTION_STRING)
    lifetime = sas_lifetime(timedelta(hours=2))
    expiry = datetime.now(UTC) + lifetime
    read_url = blob_sas_url(client, "logs", "app/part 1.jsonl", permission=INPUT_SAS_PERMISSION, expiry=lifetime)
    parts = urlsplit(read_url)
    assert parts.path == "/devstoreaccount1/logs/app/part%201.jsonl"
    query = parse_qs(parts.query)
    assert query["sp"] == ["r"] and query["sr"] == ["b"]
    assert datetime.fromisoformat(query["se"][0].replace("Z", "+00:00")) <= expiry + timedelta(seconds=1)
    write_url = container_sas_url(client, "results", permission=OUTPUT_SAS_PERMISSION, expiry=lifetime)
    query = parse_qs(urlsplit(write_url).query)
    assert query["sp"] == ["cw"] and query["sr"] == ["c"]
    assert KEY not in read_url and KEY not in write_url


def test_portal_link() -> None:
    details = {"account_name": "acct", "subscription_id": "sub", "resource_group": "rg", "account_url": "u"}
    assert portal_url("job-1", details) == (
        "https://portal.azure.com/#resource/subscriptions/sub/resourceGroups/rg/providers/"
        "Microsoft.Batch/batchAccounts/acct/jobs/job-1"
    )
    assert portal_url("job-1", {"account_name": "acct"}).startswith("https://portal.azure.com/")
