"""Azurite (npm ``azurite``), Microsoft's Azure Storage emulator, as local Blob Storage."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

from logproc_local.processes import LocalServerError, ManagedProcess, free_port

HOST = "127.0.0.1"
# Azurite's well-known development account (public, documented by Microsoft; not a secret).
ACCOUNT_NAME = "devstoreaccount1"
ACCOUNT_KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
INSTALL_HINT = (
    "run `make setup` in the project (installs the pinned Azurite under tools/azurite), "
    "or `npm install -g azurite@3.37.0`, or set LOGPROC_AZURITE_BLOB to the azurite-blob executable"
)


def azurite_blob_binary() -> Path:
    """Find ``azurite-blob``: $LOGPROC_AZURITE_BLOB, the project's pinned install, then PATH."""
    explicit = os.environ.get("LOGPROC_AZURITE_BLOB")
    if explicit:
        if not Path(explicit).is_file():
            raise LocalServerError(f"LOGPROC_AZURITE_BLOB={explicit} does not exist: {INSTALL_HINT}")
        return Path(explicit)
    candidates = [Path.cwd(), *Path.cwd().parents, Path(__file__).resolve().parents[2]]
    for root in candidates:
        local = root / "tools" / "azurite" / "node_modules" / ".bin" / "azurite-blob"
        if local.is_file():
            return local
    found = shutil.which("azurite-blob")
    if found:
        return Path(found)
    raise LocalServerError(f"Azurite (azurite-blob) was not found: {INSTALL_HINT}")


class LocalAzurite:
    """Azurite's Blob service on a free 127.0.0.1 port, persisting to ``location``."""

    def __init__(self, location: Path, port: int | None = None):
        self.location = location
        self.port = port or free_port(HOST)
        self.process = ManagedProcess(
            "Azurite (Blob)",
            [str(azurite_blob_binary()), "--blobHost", HOST, "--blobPort", str(self.port),
             "--location", str(location), "--skipApiVersionCheck", "--disableTelemetry", "--silent",
             "--loose"],
            location.parent / f"{location.name}.log",
        )

    @property
    def blob_endpoint(self) -> str:
        return f"http://{HOST}:{self.port}/{ACCOUNT_NAME}"

    @property
    def connection_string(self) -> str:
        return (
            f"DefaultEndpointsProtocol=http;AccountName={ACCOUNT_NAME};AccountKey={ACCOUNT_KEY};"
            f"BlobEndpoint={self.blob_endpoint};"
        )

    def start(self, timeout: float = 30.0) -> LocalAzurite:
        self.location.mkdir(parents=True, exist_ok=True)
        self.process.start()
        self.process.wait_ready(self._listing_ok, timeout)
        return self

    def _listing_ok(self) -> bool:
        from azure.storage.blob import BlobServiceClient

        client = BlobServiceClient.from_connection_string(self.connection_string, retry_total=0)
        list(client.list_containers(results_per_page=1, timeout=2))
        return True

    def stop(self) -> None:
        self.process.stop()

    def freeze(self) -> None:
        self.process.freeze()

    def kill(self) -> None:
        self.process.kill()
