"""Blob transfers for resource files and output files, through the URLs the task names (SAS URLs).

Only what a Batch node does: GET a blob by URL, list a container by URL (+ prefix), PUT a block blob
into a container URL. Works against Azure Storage and Azurite alike.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Mapping
from pathlib import Path
from urllib.parse import quote, urlsplit, urlunsplit

import aiohttp

STORAGE_API_VERSION = "2021-12-02"
CHUNK = 1 << 20


class BlobTransferError(RuntimeError):
    """A download or upload failed; ``status`` is the HTTP status (None: no answer)."""

    def __init__(self, message: str, status: int | None = None):
        super().__init__(message)
        self.status = status


def redact(url: str) -> str:
    """Return the URL without its query (a SAS token is a secret)."""
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, parts.path, "", "")) + ("?<sas>" if parts.query else "")


def blob_url(container_url: str, blob_name: str) -> str:
    """``https://acct/container?sas`` + ``dir/name`` → ``https://acct/container/dir/name?sas``."""
    parts = urlsplit(container_url)
    path = parts.path.rstrip("/") + "/" + quote(blob_name.lstrip("/"), safe="/")
    return urlunsplit((parts.scheme, parts.netloc, path, parts.query, ""))


def _with_query(url: str, extra: str) -> str:
    parts = urlsplit(url)
    query = f"{parts.query}&{extra}" if parts.query else extra
    return urlunsplit((parts.scheme, parts.netloc, parts.path, query, ""))


async def download(session: aiohttp.ClientSession, url: str, target: Path) -> int:
    """GET ``url`` into ``target`` (parents created); the number of bytes written."""
    target.parent.mkdir(parents=True, exist_ok=True)
    written = 0
    try:
        async with session.get(url, headers={"x-ms-version": STORAGE_API_VERSION}) as response:
            if response.status != 200:
                raise BlobTransferError(
                    f"GET {redact(url)} answered {response.status} {response.reason}", response.status)
            with open(target, "wb") as out:
                async for chunk in response.content.iter_chunked(CHUNK):
                    out.write(chunk)
                    written += len(chunk)
    except aiohttp.ClientError as exc:
        raise BlobTransferError(f"GET {redact(url)} failed: {exc}") from exc
    return written


async def list_blobs(session: aiohttp.ClientSession, container_url: str, prefix: str | None) -> list[str]:
    """List the names of the blobs in a container (URL with SAS) that start with ``prefix``."""
    names: list[str] = []
    marker = ""
    while True:
        query = "restype=container&comp=list"
        if prefix:
            query += "&prefix=" + quote(prefix, safe="")
        if marker:
            query += "&marker=" + quote(marker, safe="")
        url = _with_query(container_url, query)
        try:
            async with session.get(url, headers={"x-ms-version": STORAGE_API_VERSION}) as response:
                body = await response.read()
                if response.status != 200:
                    raise BlobTransferError(
                        f"listing {redact(container_url)} answered {response.status} {response.reason}",
                        response.status)
        except aiohttp.ClientError as exc:
            raise BlobTransferError(f"listing {redact(container_url)} failed: {exc}") from exc
        root = ET.fromstring(body)  # noqa: S314 - the answer of the storage service the task names
        names.extend(node.text or "" for node in root.iterfind("./Blobs/Blob/Name"))
        marker = root.findtext("NextMarker") or ""
        if not marker:
            return names


async def upload(
    session: aiohttp.ClientSession, container_url: str, blob_name: str, source: Path,
    headers: Mapping[str, str] | None = None,
) -> None:
    """PUT Blob (block blob) of ``source`` as ``blob_name`` in the container at ``container_url``."""
    url = blob_url(container_url, blob_name)
    size = source.stat().st_size
    put_headers = {
        "x-ms-version": STORAGE_API_VERSION,
        "x-ms-blob-type": "BlockBlob",
        "Content-Length": str(size),
        **(headers or {}),
    }
    try:
        with open(source, "rb") as data:
            async with session.put(url, data=data if size else b"", headers=put_headers) as response:
                if response.status not in (200, 201):
                    detail = (await response.text())[:300]
                    raise BlobTransferError(
                        f"PUT {redact(url)} answered {response.status} {response.reason}: {detail}", response.status)
    except aiohttp.ClientError as exc:
        raise BlobTransferError(f"PUT {redact(url)} failed: {exc}") from exc
