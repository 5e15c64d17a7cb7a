"""Streaming one blob as staged blocks, with its MD5 computed on the way, and the progress log."""

from __future__ import annotations

import contextlib
import hashlib
import logging
import threading
import time
import uuid
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from airflow_provider_logproc.blob.errors import (
    BlobExistsError,
    azure_errors,
    url_without_query,
)
from airflow_provider_logproc.blob.options import IfExists
from airflow_provider_logproc.blob.split import (
    PartDigest,
)

# azure.storage.blob (and the aiohttp it pulls in) and azure.core are imported by the functions
# that talk to the service: blob/__init__ imports this module, and the operator imports the package
# when a DAG file is parsed, so a module-level import would cost every parse a few hundred ms.
if TYPE_CHECKING:
    from azure.storage.blob import BlobClient, ContainerClient

from airflow_provider_logproc.blob.request import BlobUploadRequest

PROGRESS_INTERVAL_SECONDS = 10.0


class ProgressMeter:
    """Counts bytes sent (from upload threads) and logs MB/s at most every ``interval`` seconds."""

    def __init__(self, log: logging.Logger, total_bytes: int | None, interval: float = PROGRESS_INTERVAL_SECONDS):
        self._log = log
        self._total = total_bytes
        self._interval = interval
        self._lock = threading.Lock()
        self.started = time.monotonic()
        self._last_log = self.started
        self.sent = 0
        self.read = 0

    def add_sent(self, count: int) -> None:
        with self._lock:
            self.sent += count

    def add_read(self, count: int) -> None:
        self.read += count
        now = time.monotonic()
        if now - self._last_log >= self._interval:
            self._last_log = now
            self._log.info("%s", self.describe(now))

    def describe(self, now: float | None = None) -> str:
        elapsed = max((now or time.monotonic()) - self.started, 1e-9)
        of_total = f" of {self._total / 1e6:.1f} MB ({100 * self.read / self._total:.0f}%)" if self._total else ""
        return (f"read {self.read / 1e6:.1f} MB{of_total}, sent {self.sent / 1e6:.1f} MB in {elapsed:.1f} s "
                f"({self.sent / 1e6 / elapsed:.1f} MB/s)")


@dataclass
class UploadContext:
    request: BlobUploadRequest
    container: ContainerClient
    endpoint: str
    secrets: list[str]
    executor: ThreadPoolExecutor
    in_flight: threading.BoundedSemaphore
    progress: ProgressMeter
    log: logging.Logger

    def errors(self, action: str, passthrough: tuple[type[Exception], ...] = ()) -> Any:
        return azure_errors(action, self.endpoint, self.secrets, passthrough=passthrough)  # type: ignore[arg-type]

    def blob_url(self, name: str) -> str:
        return url_without_query(self.container.get_blob_client(name).url)


class BlockBlobWriter:
    """One blob written as staged blocks (or one Put Blob when it fits in a single block)."""

    def __init__(self, context: UploadContext, name: str):
        self._context = context
        self._request = context.request
        self.name = name
        self._client: BlobClient = context.container.get_blob_client(name)
        self._pending: list[bytes | memoryview] = []
        self._pending_size = 0
        self._block_ids: list[str] = []
        self._futures: list[Future[Any]] = []
        self._failure: BaseException | None = None
        # Block ids must all have one length within a blob; a random part keeps a crashed earlier
        # attempt's uncommitted blocks from being mistaken for ours.
        self._upload_id = uuid.uuid4().hex[:12]

    def write(self, data: bytes | memoryview) -> None:
        # Blocks are cut at exactly block_size: equal-sized buffers keep the allocator from fragmenting.
        view = memoryview(data)
        block_size = self._request.block_size
        while len(view):
            piece = view[: block_size - self._pending_size]
            self._pending.append(piece)
            self._pending_size += len(piece)
            view = view[len(piece) :]
            if self._pending_size == block_size:
                self._stage_pending()

    def _take_pending(self) -> bytes:
        block = b"".join(self._pending)
        self._pending.clear()
        self._pending_size = 0
        return block

    def _raise_failure(self) -> None:
        if self._failure is not None:
            with self._context.errors(f"uploading block of blob {self.name!r}"):
                raise self._failure

    def _stage_pending(self) -> None:
        self._raise_failure()
        block_id = f"{self._upload_id}-{len(self._block_ids):06d}"
        # At most max_concurrency blocks exist at once (queued or sending), and the next one is only
        # assembled when a slot is free: memory stays flat whatever the input size.
        self._context.in_flight.acquire()
        try:
            holder = [self._take_pending()]  # the sending thread takes the only reference, drops it when done
            future = self._context.executor.submit(self._send_block, block_id, holder)
        except BaseException:
            self._context.in_flight.release()
            raise
        future.add_done_callback(self._block_done)
        self._block_ids.append(block_id)
        self._futures.append(future)

    def _send_block(self, block_id: str, holder: list[bytes]) -> None:
        block = holder.pop()
        size = len(block)
        try:
            self._client.stage_block(block_id, block, length=size, validate_content=self._request.validate_md5)
        finally:
            del block
            self._context.in_flight.release()
        self._context.progress.add_sent(size)

    def _block_done(self, future: Future[Any]) -> None:
        if future.cancelled():
            return
        error = future.exception()
        if error is not None and self._failure is None:
            self._failure = error

    def _blob_kwargs(self, digest: PartDigest) -> dict[str, Any]:
        from azure.storage.blob import ContentSettings, StandardBlobTier

        request = self._request
        kwargs: dict[str, Any] = {
            "content_settings": ContentSettings(
                content_type=request.stored_content_type(),
                content_encoding=request.content_encoding,
                content_md5=bytearray(digest.md5),
            ),
            "metadata": request.metadata or None,
            "tags": request.tags or None,
            "standard_blob_tier": StandardBlobTier(request.access_tier) if request.access_tier else None,
        }
        return kwargs

    def commit(self, digest: PartDigest) -> None:
        """Finish the blob: wait for its blocks and commit them with the whole-content MD5."""
        from azure.core import MatchConditions
        from azure.core.exceptions import ResourceExistsError
        from azure.storage.blob import BlobBlock

        mode = self._request.mode
        kwargs = self._blob_kwargs(digest)
        action = f"writing blob {self.name!r}"
        try:
            with self._context.errors(action, passthrough=(ResourceExistsError,)):
                if not self._block_ids:
                    data = self._take_pending()
                    self._client.upload_blob(
                        data, length=len(data), overwrite=mode is not IfExists.FAIL, max_concurrency=1,
                        validate_content=self._request.validate_md5, **kwargs)
                    self._context.progress.add_sent(len(data))
                    return
                if self._pending_size:
                    self._stage_pending()
                for future in self._futures:
                    future.result()
                self._raise_failure()
                if mode is IfExists.FAIL:
                    kwargs["match_condition"] = MatchConditions.IfMissing
                self._client.commit_block_list([BlobBlock(block_id) for block_id in self._block_ids], **kwargs)
        except ResourceExistsError:
            raise BlobExistsError(
                f"blob {self.name!r} in container {self._request.container!r} appeared while it was being "
                "uploaded with if_exists='fail'; it was not overwritten") from None

    def abort(self) -> None:
        for future in self._futures:
            future.cancel()
        for future in self._futures:
            if not future.cancelled():
                # Wait for blocks already sending; the first error is already being raised.
                with contextlib.suppress(Exception):
                    future.exception()


def content_md5(data: bytes) -> bytes:
    return hashlib.md5(data, usedforsecurity=False).digest()
