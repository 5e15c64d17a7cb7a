"""The command line entry point and the local stack launch the service the same way."""

from __future__ import annotations

import json
import stat
import sys
import urllib.request

import pytest

from logproc_local.processes import ManagedProcess, free_port

pytestmark = pytest.mark.integration


def test_cli_serves_and_writes_the_connection_privately(tmp_path):
    port = free_port()
    connection_file = tmp_path / "conn.json"
    process = ManagedProcess("cli", [sys.executable, "-m", "logproc_local.batch_service",
                                     "--port", str(port), "--account", "cliacct", "--slots", "3",
                                     "--data-dir", str(tmp_path / "data"), "--write-connection",
                                     str(connection_file)], tmp_path / "cli.log")
    process.start()
    try:
        health_url = f"http://127.0.0.1:{port}/_local/health"
        process.wait_ready(lambda: json.load(urllib.request.urlopen(health_url))["status"] == "ok", 30)
        assert json.load(urllib.request.urlopen(health_url))["taskSlots"] == 3
        connection = json.loads(connection_file.read_text())
        assert stat.S_IMODE(connection_file.stat().st_mode) == 0o600
        assert connection["conn_type"] == "azure_batch"
        assert connection["login"] == "cliacct"
        assert connection["extra"] == {"account_url": f"http://127.0.0.1:{port}"}

        from azure.batch import BatchClient
        from azure.core.credentials import AzureNamedKeyCredential

        client = BatchClient(connection["extra"]["account_url"],
                             AzureNamedKeyCredential(connection["login"], connection["password"]))
        assert client.get_pool("local-pool").task_slots_per_node == 3
        assert connection["password"] not in (tmp_path / "cli.log").read_text()
    finally:
        process.stop()


def test_local_stack_starts_the_service_and_adds_the_connection(tmp_path):
    from airflow.providers.microsoft.azure.hooks.batch import AzureBatchHook

    from logproc_local.stack import local_stack

    with local_stack(tmp_path, kafka=False, blob=False, batch=True) as stack:
        assert stack.batch is not None
        env = stack.airflow_connections()
        connection = json.loads(env["AIRFLOW_CONN_AZURE_BATCH_DEFAULT"])
        assert connection["extra"]["account_url"] == stack.batch.account_url
        with pytest.MonkeyPatch.context() as patch:
            patch.setenv("AIRFLOW_CONN_AZURE_BATCH_DEFAULT", env["AIRFLOW_CONN_AZURE_BATCH_DEFAULT"])
            assert AzureBatchHook().test_connection()[0] is True
        pid = stack.batch.pid
    from logproc_local.processes import group_alive

    assert not group_alive(pid)
