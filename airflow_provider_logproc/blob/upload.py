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

import contextlib
import logging
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

from airflow_provider_logproc.blob.errors import (
    BlobExistsError,
    BlobUploadError,
    SourceChangedError,
    client_secrets,
    redacted_sdk_logs,
    url_without_query,
)
from airflow_provider_logproc.blob.names import (
    is_part_blob_name,
    manifest_blob_name,
)
from airflow_provider_logproc.blob.options import DEFAULT_BLOCK_SIZE, MAX_BLOCK_SIZE, IfExists
from airflow_provider_logproc.blob.split import (
    PartDigest,
    PartEncoder,
    PartSplitter,
    Piece,
    digest_parts,
    iter_source_blocks,
)

# azure.storage.blob (and the aiohttp it pulls in) and azure.core are imported by the functions
# that talk to the service: blob/__init__ imports this module, and the operator imports the package
# when a DAG file is parsed, so a module-level import would cost every parse a few hundred ms.
if TYPE_CHECKING:
    from azure.storage.blob import BlobServiceClient

from airflow_provider_logproc.blob.request import (
    BlobUploadRequest,
    UploadedBlob,
    UploadResult,
    build_manifest,
)
from airflow_provider_logproc.blob.writer import (
    PROGRESS_INTERVAL_SECONDS,
    BlockBlobWriter,
    ProgressMeter,
    UploadContext,
    content_md5,
)


def _properties_or_none(context: UploadContext, name: str) -> Any:
    from azure.core.exceptions import ResourceNotFoundError

    with context.errors(f"reading the properties of blob {name!r}"):
        try:
            return context.container.get_blob_client(name).get_blob_properties()
        except ResourceNotFoundError:
            return None


def _uploaded_blob(context: UploadContext, index: int, digest: PartDigest, *, uploaded: bool) -> UploadedBlob:
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


def _upload_pass(context: UploadContext, skip: dict[int, PartDigest]) -> list[UploadedBlob]:
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


def _existing_parts(context: UploadContext) -> dict[str, Any]:
    prefix = context.request.prefix or ""
    head = f"{prefix}/part-" if prefix else "part-"
    with context.errors(f"listing blobs under {head!r}"):
        return {blob.name: blob for blob in context.container.list_blobs(name_starts_with=head)
                if is_part_blob_name(prefix, blob.name)}


def _run_single(context: UploadContext) -> UploadResult:
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


def _run_parts(context: UploadContext) -> UploadResult:
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
                existing_manifest, PartDigest(len(manifest), content_md5(manifest), len(manifest), 0)):
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
                                                 content_md5=bytearray(content_md5(manifest))),
                validate_content=request.validate_md5)
    except ResourceExistsError:
        raise BlobExistsError(f"manifest {manifest_name!r} appeared during an if_exists='fail' upload") from None
    return UploadResult(blobs, url_without_query(manifest_client.url), context.progress.sent,
                        time.monotonic() - context.progress.started, deleted_stale=stale_names)


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
        context = UploadContext(
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
