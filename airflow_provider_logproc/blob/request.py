"""What an upload is asked to do and what it did: the request, the uploaded blobs, the manifest."""

from __future__ import annotations

import base64
import hashlib
import json
import mimetypes
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from airflow_provider_logproc.blob.errors import (
    url_without_query,
)
from airflow_provider_logproc.blob.names import (
    InvalidUploadOptionError,
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
    Source,
)

# azure.storage.blob (and the aiohttp it pulls in) and azure.core are imported by the functions
# that talk to the service: blob/__init__ imports this module, and the operator imports the package
# when a DAG file is parsed, so a module-level import would cost every parse a few hundred ms.
if TYPE_CHECKING:
    pass

MANIFEST_FORMAT = "logproc.blob-parts/1"
JSONL_CONTENT_TYPE = "application/x-ndjson"
GZIP_CONTENT_TYPE = "application/gzip"


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
    """Build the manifest of a multi-part upload: deterministic (no timestamps), so reruns compare equal."""
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
