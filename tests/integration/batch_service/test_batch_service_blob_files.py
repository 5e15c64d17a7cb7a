"""Resource files from and output files to Azurite through SAS URLs, as a Batch node handles them."""

from __future__ import annotations

import datetime as dt
import sys
import time

import pytest
from azure.batch import models as m
from azure.storage.blob import (
    BlobSasPermissions,
    ContainerSasPermissions,
    generate_blob_sas,
    generate_container_sas,
)

from logproc_local.azurite import ACCOUNT_KEY, ACCOUNT_NAME
from tests.fixtures.batch import execution_info, failure_info

pytestmark = pytest.mark.integration

EXPIRY = dt.datetime.now(dt.UTC) + dt.timedelta(hours=2)


def container_sas_url(azurite, container: str, permission: ContainerSasPermissions) -> str:
    sas = generate_container_sas(ACCOUNT_NAME, container, account_key=ACCOUNT_KEY, permission=permission,
                                 expiry=EXPIRY)
    return f"{azurite.blob_endpoint}/{container}?{sas}"


def blob_sas_url(azurite, container: str, blob: str) -> str:
    sas = generate_blob_sas(ACCOUNT_NAME, container, blob, account_key=ACCOUNT_KEY,
                            permission=BlobSasPermissions(read=True), expiry=EXPIRY)
    return f"{azurite.blob_endpoint}/{container}/{blob}?{sas}"


def wait_task(client, job_id: str, task_id: str, timeout: float = 60.0) -> m.BatchTask:
    deadline = time.monotonic() + timeout
    while True:
        task = client.get_task(job_id, task_id)
        if task.state == m.BatchTaskState.COMPLETED:
            return task
        assert time.monotonic() < deadline, f"{task_id} still {task.state}"
        time.sleep(0.1)


WORD_COUNT = (
    "import collections, json, os, pathlib, sys\n"
    "wd = pathlib.Path(os.environ['AZ_BATCH_TASK_WORKING_DIR'])\n"
    "counts = collections.Counter()\n"
    "for path in sorted((wd / 'inputs').rglob('*.txt')):\n"
    "    counts.update(path.read_text().split())\n"
    "single = (wd / 'single.txt').read_text().split()\n"
    "out = wd / 'out'\n"
    "out.mkdir()\n"
    "(out / 'counts.json').write_text(json.dumps({'counts': counts, 'single': len(single)}, sort_keys=True))\n"
    "(out / 'nested').mkdir()\n"
    "(out / 'nested' / 'done.txt').write_text('ok')\n"
    "print('processed', sum(counts.values()), 'words')\n"
)


def test_task_downloads_from_azurite_processes_and_uploads_results(
        batch_client, batch_job_id, azurite, blob_service_client, blob_container):
    inputs = blob_container("inputs")
    results = blob_container("results")
    source = blob_service_client.get_container_client(inputs)
    source.upload_blob("logs/2026/03/01/part-0.txt", b"error warn error\n")
    source.upload_blob("logs/2026/03/01/part-1.txt", b"info error\n")
    source.upload_blob("logs/2026/03/02/part-0.txt", b"should not be downloaded\n")
    source.upload_blob("single/blob.txt", b"a b c d\n")

    batch_client.create_job(m.BatchJobCreateOptions(id=batch_job_id, pool_info=m.BatchPoolInfo(pool_id="local-pool")))
    results_url = container_sas_url(azurite, results, ContainerSasPermissions(write=True, create=True))
    task = m.BatchTaskCreateOptions(
        id="count-words",
        command_line=f"{sys.executable} -c \"{WORD_COUNT}\"",
        resource_files=[
            m.ResourceFile(storage_container_url=container_sas_url(
                azurite, inputs, ContainerSasPermissions(read=True, list=True)),
                blob_prefix="logs/2026/03/01/", file_path="inputs"),
            m.ResourceFile(http_url=blob_sas_url(azurite, inputs, "single/blob.txt"), file_path="single.txt"),
        ],
        output_files=[
            m.OutputFile(file_pattern="out/counts.json",
                         destination=m.OutputFileDestination(container=m.OutputFileBlobContainerDestination(
                             container_url=results_url, path=f"{batch_job_id}/counts.json")),
                         upload_options=m.OutputFileUploadConfiguration(
                             upload_condition=m.OutputFileUploadCondition.TASK_SUCCESS)),
            m.OutputFile(file_pattern="out/**/*.txt",
                         destination=m.OutputFileDestination(container=m.OutputFileBlobContainerDestination(
                             container_url=results_url, path=f"{batch_job_id}/extra")),
                         upload_options=m.OutputFileUploadConfiguration(
                             upload_condition=m.OutputFileUploadCondition.TASK_COMPLETION)),
            m.OutputFile(file_pattern="../std*.txt",
                         destination=m.OutputFileDestination(container=m.OutputFileBlobContainerDestination(
                             container_url=results_url, path=f"{batch_job_id}/logs")),
                         upload_options=m.OutputFileUploadConfiguration(
                             upload_condition=m.OutputFileUploadCondition.TASK_COMPLETION)),
            m.OutputFile(file_pattern="out/counts.json",
                         destination=m.OutputFileDestination(container=m.OutputFileBlobContainerDestination(
                             container_url=results_url, path=f"{batch_job_id}/only-on-failure.json")),
                         upload_options=m.OutputFileUploadConfiguration(
                             upload_condition=m.OutputFileUploadCondition.TASK_FAILURE)),
        ],
    )
    batch_client.create_task(batch_job_id, task)
    done = wait_task(batch_client, batch_job_id, "count-words")
    stderr = b"".join(batch_client.download_task_file(batch_job_id, "count-words", "stderr.txt"))
    assert execution_info(done).result == m.BatchTaskExecutionResult.SUCCESS, stderr

    sink = blob_service_client.get_container_client(results)
    assert sorted(sink.list_blob_names()) == sorted([
        f"{batch_job_id}/counts.json",
        f"{batch_job_id}/extra/nested/done.txt",
        f"{batch_job_id}/logs/stderr.txt",
        f"{batch_job_id}/logs/stdout.txt",
    ])
    import json

    counts = json.loads(sink.download_blob(f"{batch_job_id}/counts.json").readall())
    assert counts == {"counts": {"error": 3, "info": 1, "warn": 1}, "single": 4}
    assert sink.download_blob(f"{batch_job_id}/logs/stdout.txt").readall() == b"processed 5 words\n"
    # The downloaded resource files are in the task's working directory, visible through the files API.
    names = {f.name for f in batch_client.list_task_files(batch_job_id, "count-words", recursive=True)}
    assert "wd/inputs/logs/2026/03/01/part-1.txt" in names
    assert "wd/inputs/logs/2026/03/02/part-0.txt" not in names


def test_missing_blob_and_refused_upload_are_task_failures(batch_client, batch_job_id, azurite, blob_container):
    inputs = blob_container("inputs")
    results = blob_container("results")
    batch_client.create_job(m.BatchJobCreateOptions(id=batch_job_id, pool_info=m.BatchPoolInfo(pool_id="local-pool")))
    batch_client.create_task(batch_job_id, m.BatchTaskCreateOptions(
        id="missing-input", command_line="/bin/true",
        resource_files=[m.ResourceFile(http_url=blob_sas_url(azurite, inputs, "nope.txt"), file_path="x.txt")]))
    read_only = container_sas_url(azurite, results, ContainerSasPermissions(read=True))
    batch_client.create_task(batch_job_id, m.BatchTaskCreateOptions(
        id="upload-refused", command_line="/bin/sh -c 'echo x > result.txt'",
        output_files=[m.OutputFile(
            file_pattern="result.txt",
            destination=m.OutputFileDestination(container=m.OutputFileBlobContainerDestination(
                container_url=read_only)),
            upload_options=m.OutputFileUploadConfiguration(upload_condition=m.OutputFileUploadCondition.TASK_COMPLETION))]))

    missing = wait_task(batch_client, batch_job_id, "missing-input")
    assert execution_info(missing).result == m.BatchTaskExecutionResult.FAILURE
    failure = failure_info(missing)
    assert failure.code == "BlobNotFound"
    assert execution_info(missing).exit_code is None  # the command never ran
    assert failure.details is not None and failure.details[0].value is not None
    assert "nope.txt" in failure.details[0].value
    assert "sig=" not in failure.details[0].value  # the SAS stays secret

    refused = wait_task(batch_client, batch_job_id, "upload-refused")
    assert execution_info(refused).exit_code == 0
    assert execution_info(refused).result == m.BatchTaskExecutionResult.FAILURE
    assert failure_info(refused).code == "FileUploadError"
