"""Test harness: a private Airflow home, and the local stand-in servers as session fixtures.

Airflow reads its configuration when first imported, so the environment is set here, before any
test module imports Airflow.
"""

from __future__ import annotations

import json
import os
import tempfile
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

pytest_plugins = ["tests.fixtures.batch"]

REPO_ROOT = Path(__file__).resolve().parents[1]
_SESSION_DIR = Path(tempfile.mkdtemp(prefix="logproc-tests-"))
_AIRFLOW_HOME = _SESSION_DIR / "airflow-home"
_AIRFLOW_HOME.mkdir()

os.environ.update(
    {
        "AIRFLOW_HOME": str(_AIRFLOW_HOME),
        "AIRFLOW__CORE__DAGS_FOLDER": str(REPO_ROOT / "dags"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{_AIRFLOW_HOME / 'airflow.db'}",
        "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
        "AIRFLOW__LOGGING__LOGGING_LEVEL": "INFO",
        # Staging for the operators' default output locations.
        "LOGPROC_STAGING_BASE": f"file://{_SESSION_DIR / 'staging'}",
        # The daily DAG's window sensor, in poke mode, checks this often (seconds).
        "LOGPROC_SENSOR_POKE_INTERVAL": "0.5",
    }
)


@pytest.fixture(scope="session")
def session_dir() -> Path:
    return _SESSION_DIR


@pytest.fixture(scope="session")
def airflow_db() -> Path:
    """A migrated metadata DB (once per session), as `dag.test()` needs."""
    from airflow.utils import db

    db.initdb()
    return _AIRFLOW_HOME / "airflow.db"


def _set_env(values: dict[str, str]) -> dict[str, str | None]:
    previous = {name: os.environ.get(name) for name in values}
    os.environ.update(values)
    return previous


def _restore_env(previous: dict[str, str | None]) -> None:
    for name, value in previous.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value


@pytest.fixture(scope="session")
def kafka_broker(session_dir: Path) -> Iterator:
    """A real Kafka-protocol broker (noida-db) on 127.0.0.1; ``kafka_default`` points at it."""
    from logproc_local.kafka_broker import LocalKafkaBroker

    broker = LocalKafkaBroker(session_dir / "kafka-data").start()
    previous = _set_env({"AIRFLOW_CONN_KAFKA_DEFAULT": json.dumps(
        {"conn_type": "kafka", "extra": broker.connection_extra()})})
    try:
        yield broker
    finally:
        _restore_env(previous)
        broker.stop()


@pytest.fixture(scope="session")
def azurite(session_dir: Path) -> Iterator:
    """Azurite's Blob service on 127.0.0.1; ``wasb_default`` points at it."""
    from logproc_local.azurite import LocalAzurite

    server = LocalAzurite(session_dir / "azurite-data").start()
    previous = _set_env({"AIRFLOW_CONN_WASB_DEFAULT": json.dumps(
        {"conn_type": "wasb", "extra": {"connection_string": server.connection_string}})})
    try:
        yield server
    finally:
        _restore_env(previous)
        server.stop()


@pytest.fixture
def kafka_topic(kafka_broker) -> Callable[..., str]:
    """Create a fresh topic: ``kafka_topic(partitions=3)`` → its name.

    Retention is off (``retention.ms=-1``): the broker enforces retention like Kafka, and test
    records carry old timestamps.
    """
    from confluent_kafka.admin import AdminClient, NewTopic

    admin = AdminClient({"bootstrap.servers": kafka_broker.bootstrap_servers})

    def create(partitions: int = 3, *, config: dict[str, str] | None = None, prefix: str = "logs") -> str:
        name = f"{prefix}-{uuid.uuid4().hex[:10]}"
        futures = admin.create_topics(
            [NewTopic(name, partitions, 1, config={"retention.ms": "-1", **(config or {})})])
        for future in futures.values():
            future.result(timeout=15)
        return name

    return create


@pytest.fixture
def blob_service_client(azurite):
    from azure.storage.blob import BlobServiceClient

    return BlobServiceClient.from_connection_string(azurite.connection_string)


@pytest.fixture
def blob_container(blob_service_client) -> Callable[..., str]:
    """Create a fresh container: ``blob_container()`` → its name."""

    def create(prefix: str = "test") -> str:
        name = f"{prefix}-{uuid.uuid4().hex[:12]}"
        blob_service_client.create_container(name)
        return name

    return create
