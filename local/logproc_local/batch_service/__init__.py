"""A local Azure Batch service: the Batch data-plane REST API (2025-06-01 subset) on 127.0.0.1.

Azure has no Batch emulator. This server speaks the REST subset the pipeline uses, verifies
SharedKey signatures like the service, and runs each task's command line as a local process (see
``engine`` for the execution model and ``server`` for the routes). The real azure-batch SDK and the
official Airflow ``AzureBatchHook`` talk to it unmodified.

Start it from Python (a subprocess in its own process group; task processes share that group)::

    service = LocalBatchService(data_dir).start()
    service.account_url, service.account_name, service.account_key
    service.airflow_connection()      # for AIRFLOW_CONN_AZURE_BATCH_DEFAULT
    service.faults.add(status=503, count=2)      # next 2 Batch requests answer 503
    service.request_log.entries()                # what clients asked
    service.stop()                               # or .kill() (SIGKILL, a crash)

or from a shell: ``python -m logproc_local.batch_service --data-dir DIR --port 8780``.
"""

from __future__ import annotations

import json
import sys
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from logproc_local.processes import ManagedProcess, free_port

HOST = "127.0.0.1"


def _random_key() -> str:
    from logproc_local.batch_service.__main__ import random_account_key

    return random_account_key()


class _AdminClient:
    def __init__(self, base_url: str):
        self.base_url = base_url

    def call(self, method: str, path: str, body: Any = None) -> Any:
        data = None if body is None else json.dumps(body).encode()
        request = urllib.request.Request(  # noqa: S310 - our own server on 127.0.0.1
            f"{self.base_url}/_local/{path}", data=data, method=method,
                                         headers={"Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310 - our own 127.0.0.1 server
                return json.loads(response.read() or b"null")
        except urllib.error.HTTPError as exc:
            detail = exc.read().decode(errors="replace")
            raise ValueError(f"local Batch admin {method} /_local/{path} answered {exc.code}: {detail}") from None


class FaultsProxy:
    """Fault injection of a running service (same methods as ``faults.FaultInjector``)."""

    def __init__(self, admin: _AdminClient):
        self._admin = admin

    def add(self, **rule: Any) -> dict[str, Any]:
        """Add a rule, e.g. ``add(status=503, count=2)``, ``add(drop=True)``, ``add(latency=0.3, share=1.0)``."""
        return self._admin.call("POST", "faults", rule)["added"][0]

    def clear(self) -> None:
        self._admin.call("DELETE", "faults")

    def rules(self) -> list[dict[str, Any]]:
        return self._admin.call("GET", "faults")["rules"]


class RequestLogProxy:
    """The request log of a running service (same methods as ``faults.RequestLog``)."""

    def __init__(self, admin: _AdminClient):
        self._admin = admin

    def entries(self, since: int = 0) -> list[dict[str, Any]]:
        return self._admin.call("GET", f"requests?since={int(since)}")["requests"]

    def last_seq(self) -> int:
        return int(self._admin.call("GET", "requests?since=999999999999")["last_seq"])

    def clear(self) -> None:
        self._admin.call("DELETE", "requests")

    def count(self, *, operation: str | None = None, method: str | None = None, since: int = 0) -> int:
        """How many Batch requests (optionally of one operation id or HTTP method) arrived after ``since``."""
        return sum(1 for entry in self.entries(since)
                   if (operation is None or entry["operation"] == operation)
                   and (method is None or entry["method"] == method.upper()))


class LocalBatchService:
    """The local Batch service in a subprocess on a free 127.0.0.1 port."""

    def __init__(
        self,
        data_dir: Path,
        port: int | None = None,
        account_name: str = "localbatch",
        account_key: str | None = None,
        pool_id: str = "local-pool",
        task_slots: int = 4,
        scheduling_delay: float = 0.0,
    ):
        self.data_dir = Path(data_dir)
        self.port = port or free_port(HOST)
        self.account_name = account_name
        self.account_key = account_key or _random_key()
        self.pool_id = pool_id
        self.task_slots = task_slots
        argv = [sys.executable, "-m", "logproc_local.batch_service", "--host", HOST,
                "--port", str(self.port), "--account", account_name, "--pool-id", pool_id,
                "--slots", str(task_slots), "--data-dir", str(self.data_dir),
                "--scheduling-delay", str(scheduling_delay)]
        # The key travels in the environment, not argv (argv is visible to every user in `ps`).
        self.process = ManagedProcess("local Batch service", argv,
                                      self.data_dir.parent / f"{self.data_dir.name}.log",
                                      env={"LOGPROC_BATCH_ACCOUNT_KEY": self.account_key})
        self._admin = _AdminClient(self.account_url)
        self.faults = FaultsProxy(self._admin)
        self.request_log = RequestLogProxy(self._admin)

    def __repr__(self) -> str:  # never show the key
        return f"LocalBatchService(account_url={self.account_url!r}, account_name={self.account_name!r})"

    @property
    def account_url(self) -> str:
        return f"http://{HOST}:{self.port}"

    def start(self, timeout: float = 30.0) -> LocalBatchService:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.process.start()
        self.process.wait_ready(self._healthy, timeout)
        return self

    def _healthy(self) -> bool:
        return self._admin.call("GET", "health").get("status") == "ok"

    def stop(self) -> None:
        self.process.stop()

    def kill(self) -> None:
        self.process.kill()

    @property
    def pid(self) -> int | None:
        return self.process.pid

    def airflow_connection(self) -> dict[str, Any]:
        """Return the ``azure_batch`` connection as the official AzureBatchHook reads it."""
        return {"conn_type": "azure_batch", "login": self.account_name, "password": self.account_key,
                "extra": {"account_url": self.account_url}}

    def routes(self) -> list[dict[str, str]]:
        """List the Batch routes the service serves: ``[{"method", "path", "operation"}]``."""
        return self._admin.call("GET", "routes")["routes"]

    def set_scheduling_delay(self, seconds: float) -> None:
        """Keep new tasks ``active`` at least this long (so a test can see them queued)."""
        self._admin.call("POST", "settings", {"scheduling_delay": seconds})

    def client(self, **kwargs: Any) -> Any:
        """Build a sync ``azure.batch.BatchClient`` for this account (SharedKey)."""
        from azure.batch import BatchClient
        from azure.core.credentials import AzureNamedKeyCredential

        return BatchClient(self.account_url, AzureNamedKeyCredential(self.account_name, self.account_key), **kwargs)

    def async_client(self, **kwargs: Any) -> Any:
        """Build an ``azure.batch.aio.BatchClient`` for this account (SharedKey)."""
        from azure.batch.aio import BatchClient
        from azure.core.credentials import AzureNamedKeyCredential

        return BatchClient(self.account_url, AzureNamedKeyCredential(self.account_name, self.account_key), **kwargs)


__all__ = ["HOST", "FaultsProxy", "LocalBatchService", "RequestLogProxy"]

