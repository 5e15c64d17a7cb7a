"""noida-db as a local Kafka-protocol broker (PyPI ``noida-db``; any real Kafka works the same)."""

from __future__ import annotations

import shutil
from importlib.resources import files
from pathlib import Path
from typing import Any

from logproc_local.processes import LocalServerError, ManagedProcess, free_port

HOST = "127.0.0.1"
INSTALL_HINT = "install it with `pip install noida-db==0.2.3` (or run `make setup` in the project)"

# librdkafka's default session timeout makes group joins slow on small brokers. noida-db ignores
# the fetch size limits and may answer one fetch with hundreds of MB when a partition holds millions
# of records: above librdkafka's 100 MB receive limit the read stalls, so allow more.
SMALL_BROKER_CONSUMER_CONFIG = {"session.timeout.ms": 6000, "receive.message.max.bytes": 536_870_912}


def noida_binary() -> Path:
    """Find the broker binary inside the noida-db wheel (not its wrapper, which forks a child)."""
    try:
        binary = Path(str(files("noida_db").joinpath("noida-db")))
    except ModuleNotFoundError:
        found = shutil.which("noida-db")
        if not found:
            raise LocalServerError(f"the Kafka-protocol broker noida-db is not installed: {INSTALL_HINT}") from None
        return Path(found)
    if not binary.is_file():
        raise LocalServerError(f"noida-db's binary is missing at {binary}: {INSTALL_HINT}")
    binary.chmod(0o755)
    return binary


class LocalKafkaBroker:
    """A noida-db broker on a free 127.0.0.1 port with its own data dir (kept across restarts)."""

    def __init__(self, data_dir: Path, port: int | None = None):
        self.data_dir = data_dir
        self.port = port or free_port(HOST)
        self.process = ManagedProcess(
            "noida-db (Kafka)",
            [str(noida_binary()), "start", "--only", "kafka", "--kafka-port", str(self.port),
             "--host", HOST, "--data-dir", str(data_dir)],
            data_dir.parent / f"{data_dir.name}.log",
        )

    @property
    def bootstrap_servers(self) -> str:
        return f"{HOST}:{self.port}"

    def start(self, timeout: float = 30.0) -> LocalKafkaBroker:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.process.start()
        self.process.wait_ready(self._metadata_ok, timeout)
        return self

    def _metadata_ok(self) -> bool:
        from confluent_kafka.admin import AdminClient

        admin = AdminClient({"bootstrap.servers": self.bootstrap_servers, "log_level": 0})
        metadata = admin.list_topics(timeout=1)
        return bool(metadata.brokers)

    def stop(self) -> None:
        self.process.stop()

    def freeze(self) -> None:
        self.process.freeze()

    def kill(self) -> None:
        self.process.kill()

    def connection_extra(self, group_id: str = "logproc") -> dict[str, Any]:
        """Return the ``kafka`` connection's extra: librdkafka config, as KafkaBaseHook reads it."""
        return {"bootstrap.servers": self.bootstrap_servers, "group.id": group_id,
                **SMALL_BROKER_CONSUMER_CONFIG}
