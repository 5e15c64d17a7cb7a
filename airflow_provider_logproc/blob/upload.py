"""Streaming, idempotent uploads of JSON lines to Azure Blob Storage, as one blob or as parts.

The work, without Airflow: the operator resolves sources and the client and calls
:func:`upload`. Each part is streamed as blocks (``stage_block`` on ``max_concurrency`` threads,
at most ``max_concurrency`` blocks in flight) and committed with its whole-content MD5, which is
computed while streaming. The ``if_exists`` decision is made before the first byte is sent:
Azure refuses an ``overwrite=False`` block upload only at commit time, after every block was sent.

Multi-part uploads are written in this order, so a reader never acts on a partial set: the old
manifest is deleted, parts are written, parts left over from an earlier, larger run are deleted,
and the new manifest (parts, sizes, MD5s, record counts) is written last.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import json
import logging
import mimetypes
import threading
import time
import uuid
from collections.abc import Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from airflow_provider_logproc.blob.errors import (
    BlobExistsError,
    BlobUploadError,
    SourceChangedError,
    azure_errors,
    client_secrets,
    redacted_sdk_logs,
    url_without_query,
)
from airflow_provider_logproc.blob.names import (
    InvalidUploadOptionError,
    is_part_blob_name,
    manifest_blob_name,
    normalize_access_tier,
    normalize_prefix,
    part_blob_name,
    validate_blob_name,
    validate_container_name,
    validate_metadata,
    validate_tags,
)
from airflow_provider_logproc.blob.options import DEFAULT_BLOCK_SIZE, MAX_BLOCK_SIZE, IfExists
from airflow_provider_logproc.blob.split import (
    DEFAULT_READ_SIZE,
    PartDigest,
    PartEncoder,
    PartSplitter,
    Piece,
    Source,
    digest_parts,
    iter_source_blocks,
)

# azure.storage.blob (and the aiohttp it pulls in) and azure.core are imported by the functions
# that talk to the service: blob/__init__ imports this module, and the operator imports the package
# when a DAG file is parsed, so a module-level import would cost every parse a few hundred ms.
if TYPE_CHECKING:
    from azure.storage.blob import BlobClient, BlobServiceClient, ContainerClient

MANIFEST_FORMAT = "logproc.blob-parts/1"
JSONL_CONTENT_TYPE = "application/x-ndjson"
GZIP_CONTENT_TYPE = "application/gzip"
PROGRESS_INTERVAL_SECONDS = 10.0


@dataclass(frozen=True)
class BlobUploadRequest:
    """What to upload where, validated and normalized on creation (before any request)."""

    sources: Sequence[Source]
    container: str
    blob_name: str | None = None
    prefix: str | None = None
    parts: int | None = None
    max_part_bytes: int | None = None
    gzip: bool = False
    if_exists: IfExists | str = IfExists.REPLACE
    content_type: str | None = None
    content_encoding: str | None = None
    metadata: dict[str, str] | None = None
    tags: dict[str, str] | None = None
    access_tier: str | None = None
    validate_md5: bool = True
    create_container: bool = False
    max_concurrency: int = 4
    block_size: int = DEFAULT_BLOCK_SIZE
    read_size: int = DEFAULT_READ_SIZE

    def __post_init__(self) -> None:
        set_ = lambda name, value: object.__setattr__(self, name, value)  # noqa: E731 (frozen dataclass)
        set_("sources", tuple(self.sources))
        if not self.sources:
            raise InvalidUploadOptionError("no source given: pass one URI or a list of URIs")
        validate_container_name(self.container)
        if (self.blob_name is None) == (self.prefix is None):
            raise InvalidUploadOptionError("give exactly one of blob_name (one blob) or prefix (parts + manifest)")
        if self.blob_name is not None:
            validate_blob_name(self.blob_name)
            if self.parts is not None or self.max_part_bytes is not None:
                raise InvalidUploadOptionError("parts/max_part_bytes need prefix=..., not blob_name=...")
        else:
            set_("prefix", normalize_prefix(self.prefix or ""))
            # The longest names this upload can write must be valid too.
            validate_blob_name(part_blob_name(self.prefix or "", 99999, gzip=True), what="part name")
        if self.parts is not None and self.max_part_bytes is not None:
            raise InvalidUploadOptionError("give either parts (N parts) or max_part_bytes (size limit), not both")
        for name in ("parts", "max_part_bytes", "max_concurrency", "block_size", "read_size"):
            value = getattr(self, name)
            if value is not None and (not isinstance(value, int) or isinstance(value, bool) or value < 1):
                raise InvalidUploadOptionError(f"{name} must be a positive integer, got {value!r}")
        if self.parts is not None and self.parts > 99999:
            raise InvalidUploadOptionError(f"parts={self.parts} is more than the 99999 part names allow")
        if self.block_size > MAX_BLOCK_SIZE:
            raise InvalidUploadOptionError(f"block_size {self.block_size} exceeds Azure's {MAX_BLOCK_SIZE}")
        set_("if_exists", IfExists.parse(self.if_exists))
        set_("metadata", validate_metadata(self.metadata))
        set_("tags", validate_tags(self.tags))
        set_("access_tier", normalize_access_tier(self.access_tier))

    @property
    def multipart(self) -> bool:
        return self.prefix is not None

    @property
    def mode(self) -> IfExists:
        return IfExists.parse(self.if_exists)

    def part_name(self, index: int) -> str:
        if self.blob_name is not None:
            return self.blob_name
        return part_blob_name(self.prefix or "", index, gzip=self.gzip)

    def stored_content_type(self) -> str:
        if self.content_type:
            return self.content_type
        if self.gzip:
            return GZIP_CONTENT_TYPE
        if self.blob_name is not None and not self.blob_name.endswith((".jsonl", ".ndjson")):
            return mimetypes.guess_type(self.blob_name)[0] or JSONL_CONTENT_TYPE
        return JSONL_CONTENT_TYPE

    def total_source_bytes(self) -> int | None:
        sizes = [source.size for source in self.sources]
        return None if any(size is None for size in sizes) else sum(size or 0 for size in sizes)


@dataclass(frozen=True)
class UploadedBlob:
    index: int
    name: str
    url: str
    size: int
    md5: bytes
    raw_size: int
    records: int
    uploaded: bool  # False when skip_if_same found it identical

    def manifest_entry(self) -> dict[str, Any]:
        return {
            "index": self.index,
            "name": self.name,
            "url": self.url,
            "size": self.size,
            "raw_size": self.raw_size,
            "records": self.records,
            "md5": self.md5.hex(),
            "content_md5": base64.b64encode(self.md5).decode("ascii"),
        }


@dataclass(frozen=True)
class UploadResult:
    blobs: list[UploadedBlob]
    manifest_url: str | None
    bytes_sent: int
    seconds: float
    skipped: bool = False
    deleted_stale: list[str] = field(default_factory=list)

    @property
    def blob_urls(self) -> list[str]:
        return [blob.url for blob in self.blobs]

    @property
    def record_count(self) -> int:
        return sum(blob.records for blob in self.blobs)

    @property
    def content_fingerprint(self) -> str:
        """A short digest of what was uploaded (names and MD5s): same content, same fingerprint.

        Downstream steps key their work on it, e.g. a Batch job id, so a rerun over identical parts
        re-attaches to the finished job while changed parts get a job of their own.
        """
        digest = hashlib.sha256()
        for blob in self.blobs:
            digest.update(f"{blob.name}\0{blob.md5.hex()}\n".encode())
        return digest.hexdigest()[:16]


def build_manifest(request: BlobUploadRequest, blobs: Sequence[UploadedBlob]) -> bytes:
    """The manifest of a multi-part upload: deterministic (no timestamps), so reruns compare equal."""
    document = {
        "format": MANIFEST_FORMAT,
        "container": request.container,
        "prefix": request.prefix,
        "gzip": request.gzip,
        "content_type": request.stored_content_type(),
        "content_encoding": request.content_encoding,
        "sources": [url_without_query(source.uri) for source in request.sources],
        "part_count": len(blobs),
        "record_count": sum(blob.records for blob in blobs),
        "size": sum(blob.size for blob in blobs),
        "raw_size": sum(blob.raw_size for blob in blobs),
        "parts": [blob.manifest_entry() for blob in blobs],
    }
    return (json.dumps(document, indent=2, sort_keys=True) + "\n").encode("utf-8")


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
class _Context:
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

    def __init__(self, context: _Context, name: str):
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


def _properties_or_none(context: _Context, name: str) -> Any:
    from azure.core.exceptions import ResourceNotFoundError

    with context.errors(f"reading the properties of blob {name!r}"):
        try:
            return context.container.get_blob_client(name).get_blob_properties()
        except ResourceNotFoundError:
            return None


def _uploaded_blob(context: _Context, index: int, digest: PartDigest, *, uploaded: bool) -> UploadedBlob:
    name = context.request.part_name(index)
    return UploadedBlob(index=index, name=name, url=context.blob_url(name), size=digest.size, md5=digest.md5,
                        raw_size=digest.raw_size, records=digest.records, uploaded=uploaded)


def _same_content(properties: Any, digest: PartDigest) -> bool:
    if properties is None or properties.size != digest.size:
        return False
    stored_md5 = properties.content_settings.content_md5
    return stored_md5 is not None and bytes(stored_md5) == digest.md5


def _splitter(request: BlobUploadRequest) -> PartSplitter:
    return PartSplitter(parts=request.parts, max_part_bytes=request.max_part_bytes,
                        total_bytes=request.total_source_bytes())


def _pieces(request: BlobUploadRequest, splitter: PartSplitter) -> Iterator[Piece]:
    # Parts are JSON lines cut at line ends; a single blob gets the sources' bytes exactly as they are.
    return splitter.split(iter_source_blocks(request.sources, request.read_size, whole_lines=request.multipart))


def _digest_pass(request: BlobUploadRequest) -> list[PartDigest]:
    return digest_parts(_pieces(request, _splitter(request)), gzip=request.gzip)


def _upload_pass(context: _Context, skip: dict[int, PartDigest]) -> list[UploadedBlob]:
    """Stream the sources once, uploading every part except those in ``skip`` (known identical)."""
    request = context.request
    blobs: list[UploadedBlob] = []
    writer: BlockBlobWriter | None = None
    encoder: PartEncoder | None = None
    current = -1

    def discard(_data: bytes | memoryview) -> None:
        pass

    def start(index: int) -> None:
        nonlocal writer, encoder, current
        current = index
        writer = None if index in skip else BlockBlobWriter(context, request.part_name(index))
        encoder = PartEncoder(writer.write if writer is not None else discard, gzip=request.gzip)

    def finish() -> None:
        assert encoder is not None
        digest = encoder.finish()
        name = request.part_name(current)
        if writer is not None:
            writer.commit(digest)
        elif digest != skip[current]:
            raise SourceChangedError(
                f"part {name!r} differs from what the comparison pass computed moments ago: "
                "a source changed during the upload; rerun the task")
        blobs.append(_uploaded_blob(context, current, digest, uploaded=writer is not None))
        if writer is not None:
            context.log.info("wrote %s (%d bytes, %d records)", name, digest.size, digest.records)

    splitter = _splitter(request)
    try:
        for index, data, lines in _pieces(request, splitter):
            if index != current:
                if current >= 0:
                    finish()
                start(index)
            assert encoder is not None
            encoder.write(data, lines)
            context.progress.add_read(len(data))
        if current < 0:  # empty input: one empty part, so downstream always finds something to read
            start(0)
        finish()
    except BaseException:
        if writer is not None:
            writer.abort()
        raise
    if splitter.oversize_parts:
        context.log.warning(
            "%d parts hold a single line longer than max_part_bytes=%d (a line is never cut): %s",
            len(splitter.oversize_parts), request.max_part_bytes,
            [request.part_name(index) for index in splitter.oversize_parts[:10]])
    return blobs


def _existing_parts(context: _Context) -> dict[str, Any]:
    prefix = context.request.prefix or ""
    head = f"{prefix}/part-" if prefix else "part-"
    with context.errors(f"listing blobs under {head!r}"):
        return {blob.name: blob for blob in context.container.list_blobs(name_starts_with=head)
                if is_part_blob_name(prefix, blob.name)}


def _run_single(context: _Context) -> UploadResult:
    request = context.request
    name = request.part_name(0)
    existing = _properties_or_none(context, name)
    mode = request.mode
    if existing is not None and mode is IfExists.FAIL:
        raise BlobExistsError(
            f"blob {name!r} already exists in container {request.container!r} and if_exists='fail': "
            "nothing was uploaded")
    skip: dict[int, PartDigest] = {}
    if existing is not None and mode is IfExists.SKIP_IF_SAME:
        digests = _digest_pass(request)
        if len(digests) == 1 and _same_content(existing, digests[0]):
            digest = digests[0]
            context.log.info("blob %r is identical (size %d, same MD5): nothing uploaded", name, digest.size)
            blob = _uploaded_blob(context, 0, digest, uploaded=False)
            return UploadResult([blob], None, 0, time.monotonic() - context.progress.started, skipped=True)
    blobs = _upload_pass(context, skip)
    return UploadResult(blobs, None, context.progress.sent, time.monotonic() - context.progress.started)


def _run_parts(context: _Context) -> UploadResult:
    from azure.core.exceptions import ResourceExistsError, ResourceNotFoundError
    from azure.storage.blob import ContentSettings

    request = context.request
    mode = request.mode
    manifest_name = manifest_blob_name(request.prefix or "")
    existing_parts = _existing_parts(context)
    existing_manifest = _properties_or_none(context, manifest_name)
    if mode is IfExists.FAIL and (existing_parts or existing_manifest is not None):
        found = sorted(existing_parts)[:3] + ([manifest_name] if existing_manifest is not None else [])
        raise BlobExistsError(
            f"container {request.container!r} already holds {', '.join(repr(n) for n in found)}"
            f"{' and more' if len(existing_parts) > 3 else ''} under prefix {request.prefix!r} and "
            "if_exists='fail': nothing was uploaded")

    skip: dict[int, PartDigest] = {}
    if mode is IfExists.SKIP_IF_SAME and (existing_parts or existing_manifest is not None):
        digests = _digest_pass(request)
        skip = {index: digest for index, digest in enumerate(digests)
                if _same_content(existing_parts.get(request.part_name(index)), digest)}
        planned = [_uploaded_blob(context, index, digest, uploaded=False) for index, digest in enumerate(digests)]
        stale = set(existing_parts) - {blob.name for blob in planned}
        manifest = build_manifest(request, planned)
        if len(skip) == len(digests) and not stale and _same_content(
                existing_manifest, PartDigest(len(manifest), _md5(manifest), len(manifest), 0)):
            context.log.info("all %d parts and the manifest under %r are identical: nothing uploaded",
                             len(planned), request.prefix)
            return UploadResult(planned, context.blob_url(manifest_name), 0,
                                time.monotonic() - context.progress.started, skipped=True)
        context.log.info("%d of %d parts are identical and kept; uploading the others", len(skip), len(digests))

    manifest_client = context.container.get_blob_client(manifest_name)
    if existing_manifest is not None:
        # Readers go by the manifest: without one they wait, instead of pairing old sizes/MD5s with new parts.
        with context.errors(f"deleting the old manifest {manifest_name!r}"), contextlib.suppress(ResourceNotFoundError):
            manifest_client.delete_blob()

    blobs = _upload_pass(context, skip)

    stale_names = sorted(set(existing_parts) - {blob.name for blob in blobs})
    for name in stale_names:
        with (
            context.errors(f"deleting stale part {name!r} left by an earlier run"),
            contextlib.suppress(ResourceNotFoundError),
        ):
            context.container.get_blob_client(name).delete_blob()
    if stale_names:
        context.log.info("deleted %d stale parts left by an earlier run: %s", len(stale_names), stale_names)

    manifest = build_manifest(request, blobs)
    try:
        with context.errors(f"writing the manifest {manifest_name!r}", passthrough=(ResourceExistsError,)):
            manifest_client.upload_blob(
                manifest, length=len(manifest), overwrite=mode is not IfExists.FAIL,
                content_settings=ContentSettings(content_type="application/json",
                                                 content_md5=bytearray(_md5(manifest))),
                validate_content=request.validate_md5)
    except ResourceExistsError:
        raise BlobExistsError(f"manifest {manifest_name!r} appeared during an if_exists='fail' upload") from None
    return UploadResult(blobs, url_without_query(manifest_client.url), context.progress.sent,
                        time.monotonic() - context.progress.started, deleted_stale=stale_names)


def _md5(data: bytes) -> bytes:
    return hashlib.md5(data, usedforsecurity=False).digest()


def upload(service: BlobServiceClient, request: BlobUploadRequest, log: Any = None,
           progress_interval: float = PROGRESS_INTERVAL_SECONDS) -> UploadResult:
    """Upload ``request.sources`` as described by ``request``; see the module docstring for the order.

    ``log`` is any logger with ``info`` (a ``logging.Logger`` or the operator's structlog logger).
    """
    from azure.core.exceptions import ResourceExistsError

    log = log or logging.getLogger(__name__)
    container = service.get_container_client(request.container)
    secrets = client_secrets(service)
    progress = ProgressMeter(log, request.total_source_bytes(), progress_interval)
    with redacted_sdk_logs(secrets), ThreadPoolExecutor(
        max_workers=request.max_concurrency, thread_name_prefix="blob-upload"
    ) as executor:
        context = _Context(
            request=request, container=container, endpoint=url_without_query(container.url), secrets=secrets,
            executor=executor, in_flight=threading.BoundedSemaphore(request.max_concurrency),
            progress=progress, log=log)
        if request.create_container:
            with context.errors(f"creating container {request.container!r}"), contextlib.suppress(ResourceExistsError):
                container.create_container()
        total = request.total_source_bytes()
        log.info("uploading %d source(s)%s to container %r as %s (if_exists=%s)", len(request.sources),
                 f" ({total / 1e6:.1f} MB)" if total is not None else "", request.container,
                 f"parts under {request.prefix!r}" if request.multipart else repr(request.blob_name),
                 request.mode.value)
        result = _run_parts(context) if request.multipart else _run_single(context)
    if result.bytes_sent:
        log.info("upload finished: %s", progress.describe())
    return result


__all__ = [
    "DEFAULT_BLOCK_SIZE",
    "MAX_BLOCK_SIZE",
    "BlobExistsError",
    "BlobUploadError",
    "BlobUploadRequest",
    "IfExists",
    "SourceChangedError",
    "UploadResult",
    "UploadedBlob",
    "build_manifest",
    "upload",
]
