"""The async azure-batch SDK and the official Airflow AzureBatchHook drive the local service unmodified."""

from __future__ import annotations

import asyncio
import time

import pytest
from azure.batch import models as m
from azure.core.exceptions import ResourceNotFoundError

pytestmark = pytest.mark.integration


def test_async_client_full_cycle(batch_service, batch_reset, batch_job_id):
    async def scenario() -> None:
        async with batch_service.async_client() as client:
            await client.create_job(m.BatchJobCreateOptions(id=batch_job_id,
                                                            pool_info=m.BatchPoolInfo(pool_id="local-pool")))
            tasks = [m.BatchTaskCreateOptions(id=f"t{i:03d}", command_line=f"/bin/echo async {i}")
                     for i in range(250)]
            result = await client.create_tasks(batch_job_id, tasks)
            assert len(result.result_values) == 250
            deadline = time.monotonic() + 60
            while True:
                counts = await client.get_job_task_counts(batch_job_id)
                if counts.task_counts.completed == 250:
                    break
                assert time.monotonic() < deadline, counts
                await asyncio.sleep(0.1)
            assert counts.task_counts.succeeded == 250
            ids = [t.id async for t in client.list_tasks(batch_job_id, max_results=100,
                                                          filter="state eq 'completed'", select=["id"])]
            assert ids == [f"t{i:03d}" for i in range(250)]
            stream = await client.download_task_file(batch_job_id, "t042", "stdout.txt")
            content = b"".join([chunk async for chunk in stream])
            assert content == b"async 42\n"
            poller = await client.begin_terminate_job(batch_job_id, {"terminateReason": "async done"},
                                                      polling_interval=0.1)
            await poller.result()
            assert (await client.get_job(batch_job_id)).state == m.BatchJobState.COMPLETED
            poller = await client.begin_delete_job(batch_job_id, polling_interval=0.1)
            await poller.result()
            with pytest.raises(ResourceNotFoundError):
                await client.get_job(batch_job_id)

    asyncio.run(scenario())


def test_official_airflow_hook_drives_the_service(batch_service, batch_reset, batch_job_id):
    from airflow.providers.microsoft.azure.hooks.batch import AzureBatchHook

    hook = AzureBatchHook()  # azure_batch_default, set by the batch_service fixture
    assert hook.test_connection() == (True, "Successfully connected to Azure Batch.")
    hook.create_job(hook.configure_job(job_id=batch_job_id, pool_id="local-pool", display_name="hook job"))
    hook.create_job(hook.configure_job(job_id=batch_job_id, pool_id="local-pool"))  # exists: logged, not raised
    for i in range(3):
        hook.add_single_task_to_job(batch_job_id, hook.configure_task(
            task_id=f"hook-{i}", command_line=f"/bin/sh -c 'exit {i}'"))
    hook.add_single_task_to_job(batch_job_id, hook.configure_task(task_id="hook-0", command_line="/bin/true"))
    failed = hook.wait_for_job_tasks_to_complete(batch_job_id, timeout=1)
    assert sorted(task.id for task in failed) == ["hook-1", "hook-2"]
    nodes = hook.wait_for_all_node_state("local-pool", {m.BatchNodeState.IDLE, m.BatchNodeState.RUNNING})
    assert len(nodes) == 1
    # The SDK annotates polling_interval as int; it is slept on, so a fraction of a second works.
    hook.connection.begin_delete_job(batch_job_id, polling_interval=0.1).result()  # type: ignore[arg-type]


def test_wrong_key_is_refused_with_403(batch_service, batch_reset):
    from azure.batch import BatchClient
    from azure.core.credentials import AzureNamedKeyCredential
    from azure.core.exceptions import HttpResponseError

    from logproc_local.batch_service.__main__ import random_account_key

    wrong = BatchClient(batch_service.account_url,
                        AzureNamedKeyCredential(batch_service.account_name, random_account_key()))
    with pytest.raises(HttpResponseError) as caught:
        list(wrong.list_jobs())
    assert caught.value.status_code == 403
    assert caught.value.error is not None and caught.value.error.code == "AuthenticationFailed"
    assert batch_service.account_key not in str(caught.value)

    other_account = BatchClient(batch_service.account_url,
                                AzureNamedKeyCredential("someoneelse", batch_service.account_key))
    with pytest.raises(HttpResponseError) as caught:
        other_account.get_pool("local-pool")
    assert caught.value.status_code == 403
    statuses = [entry["status"] for entry in batch_service.request_log.entries()]
    assert statuses == [403, 403]
