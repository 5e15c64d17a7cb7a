"""Blob URLs and SAS lifetimes of a Batch job's inputs and outputs (never logged with their SAS)."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import timedelta
from urllib.parse import quote, unquote

from airflow_provider_logproc.azure_batch.errors import BatchSpecError
from airflow_provider_logproc.blob.errors import url_without_query

# Least privilege for the SAS the operator issues: tasks only read their input blob, and only
# create/write blobs in the output container (no list, no delete, no read of other results).
INPUT_SAS_PERMISSION = "r"
OUTPUT_SAS_PERMISSION = "cw"
# Tasks may wait in the pool queue until the job's timeout; the SAS must outlive that, but no more.
SAS_EXPIRY_MARGIN = timedelta(minutes=30)


def split_blob_url(url: str, account_url: str) -> tuple[str, str]:
    """``(container, blob name)`` of a blob URL inside the storage account at ``account_url``."""
    base = account_url.rstrip("/") + "/"
    plain = url.split("?", 1)[0]
    if not plain.startswith(base):
        raise BatchSpecError(
            f"input {plain!r} is not a blob of the storage account {account_url!r} of the wasb connection"
        )
    container, _, blob = plain[len(base) :].partition("/")
    if not container or not blob:
        raise BatchSpecError(f"input {plain!r} does not name a container and a blob")
    return unquote(container), unquote(blob)


def sas_lifetime(timeout: timedelta) -> timedelta:
    """SAS lifetime: long enough for a task queued until the job's timeout, and no longer."""
    return timeout + SAS_EXPIRY_MARGIN


def output_blob_urls(container_url: str, blob_names: Iterable[str], prefix: str, task_ids: Iterable[str]) -> list[str]:
    """URLs (no SAS) of the blobs the job's tasks wrote: those under ``<prefix>/<task id>/``."""
    task_prefixes = tuple(f"{prefix}/{task_id}/" if prefix else f"{task_id}/" for task_id in task_ids)
    base = url_without_query(container_url).rstrip("/")
    return [f"{base}/{quote(name)}" for name in sorted(blob_names) if name.startswith(task_prefixes)]
