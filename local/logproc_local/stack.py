"""The local stack: Kafka-protocol broker, Azurite and (when available) the local Batch service.

Used by the tests' fixtures and by the demo. ``airflow_connections()`` gives the ``AIRFLOW_CONN_*``
environment for the official connection types (``kafka``, ``wasb``, ``azure_batch``).
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from logproc_local.azurite import LocalAzurite
from logproc_local.kafka_broker import LocalKafkaBroker


class LocalServer(Protocol):
    def stop(self) -> None: ...


def connection_uri_env(conn_id: str, conn: dict[str, Any]) -> tuple[str, str]:
    """``AIRFLOW_CONN_<ID>`` and its JSON value (Airflow accepts JSON-serialized connections)."""
    return f"AIRFLOW_CONN_{conn_id.upper()}", json.dumps(conn)


@dataclass
class LocalStack:
    base_dir: Path
    broker: LocalKafkaBroker | None = None
    azurite: LocalAzurite | None = None
    batch: Any | None = None  # the local Batch service, see logproc_local.batch_service
    _started: list[LocalServer] = field(default_factory=list)

    def start(self, *, kafka: bool = True, blob: bool = True, batch: bool = False,
              ports: dict[str, int] | None = None) -> LocalStack:
        """Start the servers; ``ports`` (``kafka``, ``blob``, ``batch``) fixes their ports, else free ones."""
        ports = ports or {}
        try:
            if kafka:
                self.broker = LocalKafkaBroker(self.base_dir / "kafka-data", port=ports.get("kafka")).start()
                self._started.append(self.broker)
            if blob:
                self.azurite = LocalAzurite(self.base_dir / "azurite-data", port=ports.get("blob")).start()
                self._started.append(self.azurite)
            if batch:
                from logproc_local.batch_service import LocalBatchService

                self.batch = LocalBatchService(self.base_dir / "batch-data", port=ports.get("batch")).start()
                self._started.append(self.batch)
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        while self._started:
            server = self._started.pop()
            with contextlib.suppress(Exception):
                server.stop()

    def airflow_connections(self) -> dict[str, str]:
        env: dict[str, str] = {}
        if self.broker:
            env.update([connection_uri_env("kafka_default", {
                "conn_type": "kafka", "extra": self.broker.connection_extra()})])
        if self.azurite:
            env.update([connection_uri_env("wasb_default", {
                "conn_type": "wasb", "extra": {"connection_string": self.azurite.connection_string}})])
        if self.batch is not None:
            env.update([connection_uri_env("azure_batch_default", self.batch.airflow_connection())])
        return env


@contextlib.contextmanager
def local_stack(base_dir: Path, *, kafka: bool = True, blob: bool = True, batch: bool = False
                ) -> Iterator[LocalStack]:
    stack = LocalStack(base_dir).start(kafka=kafka, blob=blob, batch=batch)
    try:
        yield stack
    finally:
        stack.stop()
