"""The server object in-process: its Python fault and request-log API, driven by the async SDK."""

from __future__ import annotations

import asyncio

import pytest
from aiohttp import web
from azure.batch import models as m
from azure.batch.aio import BatchClient
from azure.core.credentials import AzureNamedKeyCredential

from logproc_local.batch_service.__main__ import random_account_key
from logproc_local.batch_service.engine import BatchAccount, PoolConfig
from logproc_local.batch_service.server import BatchServer
from logproc_local.processes import free_port
from tests.fixtures.batch import execution_info

pytestmark = pytest.mark.integration


def test_in_process_server_python_api(tmp_path):
    async def scenario() -> None:
        port = free_port()
        key = random_account_key()
        account = BatchAccount(tmp_path / "data", "inproc", f"http://127.0.0.1:{port}", PoolConfig(task_slots=2))
        server = BatchServer(account, key)
        runner = web.AppRunner(server.app)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", port).start()
        try:
            async with BatchClient(f"http://127.0.0.1:{port}", AzureNamedKeyCredential("inproc", key)) as client:
                server.faults.add(status=500, count=1, operation="Jobs_CreateJob")
                await client.create_job(m.BatchJobCreateOptions(id="j", pool_info=m.BatchPoolInfo(
                    pool_id="local-pool")))
                await client.create_task("j", m.BatchTaskCreateOptions(id="t", command_line="/bin/echo in-process"))
                for _ in range(200):
                    task = await client.get_task("j", "t")
                    if task.state == m.BatchTaskState.COMPLETED:
                        break
                    await asyncio.sleep(0.05)
                assert execution_info(task).result == m.BatchTaskExecutionResult.SUCCESS
                assert (account.task_dir(account.get_task(account.get_job("j"), "t")) / "stdout.txt"
                        ).read_text() == "in-process\n"
            created = [e for e in server.request_log.entries() if e["operation"] == "Jobs_CreateJob"]
            assert [e["status"] for e in created] == [500, 201]  # the SDK retried the injected 500
        finally:
            await runner.cleanup()

    asyncio.run(scenario())
