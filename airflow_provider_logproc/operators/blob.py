"""BlobUploadOperator: streaming, idempotent uploads of JSON lines to Azure Blob Storage.

The operator only resolves its inputs (sources through ``ObjectStoragePath``, the client through
the official ``WasbHook``); the work is in :mod:`airflow_provider_logproc.blob`.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from airflow.providers.common.compat.sdk import BaseOperator, ObjectStoragePath

from airflow_provider_logproc._templating import from_rendered_list, to_optional_int
from airflow_provider_logproc.blob.names import InvalidUploadOptionError
from airflow_provider_logproc.blob.options import DEFAULT_BLOCK_SIZE, check_upload_options
from airflow_provider_logproc.blob.request import BlobUploadRequest
from airflow_provider_logproc.blob.split import Source
from airflow_provider_logproc.blob.upload import upload
from airflow_provider_logproc.version_compat import push_xcoms

if TYPE_CHECKING:
    from airflow.providers.common.compat.sdk import Context


class BlobUploadOperator(BaseOperator):
    """Upload JSON-lines files to Azure Blob Storage as one blob, or split into parts with a manifest.

    Reruns are deterministic: the same input gives the same blob names and bytes.

    :param source: one URI or a list of URIs (any ``ObjectStoragePath`` scheme, e.g. ``file://``,
        ``abfs://``, ``s3://``), read in order as one stream; never read whole into memory. (templated)
    :param container: the target container. (templated)
    :param blob_name: write the sources' bytes, unchanged and concatenated, to this one blob (any
        content: JSON lines, Ion, ...). (templated)
    :param prefix: write parts ``<prefix>/part-00000.jsonl`` ... (``.jsonl.gz`` with gzip) and
        ``<prefix>/manifest.json`` last. (templated)
    :param parts: split into at most N parts of about equal size, at line ends (with ``prefix``).
        (templated; a rendered ``"4"`` is read as 4)
    :param max_part_bytes: split into parts of at most this many bytes before gzip, at line ends;
        a single line longer than that gets a part of its own (with ``prefix``). (templated)
    :param gzip: gzip each blob (deterministic output: same input, same bytes).
    :param if_exists: ``replace`` (default: a rerun overwrites the same blobs and removes parts an
        earlier, larger run left), ``skip_if_same`` (reads the input once more to compare size and
        MD5 with what is stored; uploads only what differs, nothing when all is equal; metadata and
        tags are not compared) or ``fail``
        (raises before sending any byte if a target blob exists).
    :param content_type: default ``application/x-ndjson`` (``application/gzip`` with gzip).
    :param content_encoding: stored as the blob's Content-Encoding (not set by default).
    :param metadata: blob metadata (names must be C# identifiers). (templated)
    :param tags: blob index tags. (templated)
    :param access_tier: ``Hot``, ``Cool``, ``Cold`` or ``Archive``.
    :param validate_md5: send each block with its MD5 so the service rejects corrupted transfers.
        The whole-blob MD5 is always computed while streaming and stored as Content-MD5.
    :param create_container: create the container when missing.
    :param max_concurrency: blocks sent in parallel (and the bound on blocks held in memory).
    :param wasb_conn_id: an Azure Blob Storage (``wasb``) connection; any auth WasbHook supports.
    :param source_conn_id: connection for the sources' object storage, when it needs one.
    :param block_size: bytes per staged block.
    :return: the blob URLs (never with a SAS). XCom ``manifest_uri`` (``None`` for a single blob)
        and ``record_count`` (lines uploaded; a last line without a line end counts too), and
        ``content_fingerprint`` (a digest of the blobs' names and MD5s).
    """

    template_fields: Sequence[str] = (
        "source", "container", "blob_name", "prefix", "parts", "max_part_bytes", "metadata", "tags",
    )
    ui_color = "#0078d4"

    def __init__(
        self,
        *,
        source: str | Sequence[str],
        container: str,
        blob_name: str | None = None,
        prefix: str | None = None,
        parts: int | str | None = None,
        max_part_bytes: int | str | None = None,
        gzip: bool = False,
        if_exists: str = "replace",
        content_type: str | None = None,
        content_encoding: str | None = None,
        metadata: dict[str, str] | None = None,
        tags: dict[str, str] | None = None,
        access_tier: str | None = None,
        validate_md5: bool = True,
        create_container: bool = False,
        max_concurrency: int = 4,
        wasb_conn_id: str = "wasb_default",
        source_conn_id: str | None = None,
        block_size: int = DEFAULT_BLOCK_SIZE,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        check_upload_options(blob_name=blob_name, prefix=prefix, parts=parts, max_part_bytes=max_part_bytes,
                             if_exists=if_exists, access_tier=access_tier, task_id=self.task_id)
        self.source = source
        self.container = container
        self.blob_name = blob_name
        self.prefix = prefix
        self.parts = parts
        self.max_part_bytes = max_part_bytes
        self.gzip = gzip
        self.if_exists = if_exists
        self.content_type = content_type
        self.content_encoding = content_encoding
        self.metadata = metadata
        self.tags = tags
        self.access_tier = access_tier
        self.validate_md5 = validate_md5
        self.create_container = create_container
        self.max_concurrency = max_concurrency
        self.wasb_conn_id = wasb_conn_id
        self.source_conn_id = source_conn_id
        self.block_size = block_size
        # (source URIs, [(blob URL, records, bytes)]) once uploaded, for OpenLineage.
        self._lineage: tuple[list[str], list[tuple[str, int, int]]] = ([], [])

    def execute(self, context: Context) -> list[str]:
        request = BlobUploadRequest(
            sources=resolve_sources(self.source, conn_id=self.source_conn_id),
            container=self.container,
            blob_name=self.blob_name,
            prefix=self.prefix,
            parts=to_optional_int(self.parts, "parts", error=InvalidUploadOptionError),
            max_part_bytes=to_optional_int(self.max_part_bytes, "max_part_bytes", error=InvalidUploadOptionError),
            gzip=self.gzip,
            if_exists=self.if_exists,
            content_type=self.content_type,
            content_encoding=self.content_encoding,
            metadata=self.metadata,
            tags=self.tags,
            access_tier=self.access_tier,
            validate_md5=self.validate_md5,
            create_container=self.create_container,
            max_concurrency=self.max_concurrency,
            block_size=self.block_size,
        )
        # Imported here: the official hook pulls in azure.storage.blob, azure.identity and aiohttp,
        # which would otherwise be imported whenever a DAG file using this operator is parsed.
        from airflow.providers.microsoft.azure.hooks.wasb import WasbHook

        service = WasbHook(wasb_conn_id=self.wasb_conn_id).get_conn()
        result = upload(service, request, log=self.log)
        push_xcoms(context["ti"], manifest_uri=result.manifest_url, record_count=result.record_count,
                   content_fingerprint=result.content_fingerprint)
        self._lineage = ([source.uri for source in request.sources],
                         [(blob.url, blob.records, blob.size) for blob in result.blobs])
        return result.blob_urls

    def get_openlineage_facets_on_complete(self, task_instance: Any) -> Any:
        """Return the OpenLineage inputs (staged sources) and outputs (blobs, with records and sizes)."""
        from airflow_provider_logproc.lineage.datasets import blob_dataset, operator_lineage, staging_dataset

        sources, blobs = self._lineage
        inputs = [staging_dataset(uri) for uri in sources]
        outputs = [blob_dataset(url, output=True, row_count=records, size=size) for url, records, size in blobs]
        return operator_lineage(inputs, outputs)


def source_uris(source: Any) -> list[str]:
    """Normalize ``source`` to a list of URIs.

    Accepts one URI, a list/tuple of URIs or ``ObjectStoragePath`` objects, and the string form of a
    list that Jinja makes of a list pulled from XCom (``"['file:///a', 'file:///b']"``).
    """
    source = from_rendered_list(source, "source", error=InvalidUploadOptionError)
    if isinstance(source, str):
        text = source.strip()
        if not text:
            raise InvalidUploadOptionError("source is an empty string")
        return [text]
    if isinstance(source, ObjectStoragePath):
        return [str(source)]
    if isinstance(source, Sequence):
        uris: list[str] = []
        for item in source:
            uris.extend(source_uris(item))
        return uris
    raise InvalidUploadOptionError(f"source must be a URI or a list of URIs, got {type(source).__name__}")


def resolve_sources(source: Any, conn_id: str | None = None) -> list[Source]:
    """Each URI as a :class:`Source` with its size (needed to split into N equal parts)."""
    sources: list[Source] = []
    for uri in source_uris(source):
        path = ObjectStoragePath(uri, conn_id=conn_id)
        try:
            if path.is_dir():
                raise InvalidUploadOptionError(f"source {uri} is a directory: pass the URIs of files")
            size = path.stat().st_size
        except FileNotFoundError:
            raise FileNotFoundError(f"source {uri} does not exist") from None
        sources.append(Source(uri=uri, open=functools.partial(path.open, "rb"), size=size))
    if not sources:
        raise InvalidUploadOptionError("source is an empty list: nothing to upload")
    return sources


__all__ = ["BlobUploadOperator"]
