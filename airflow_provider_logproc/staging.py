"""Staging locations on object storage: deterministic default URIs and atomic writes.

Outputs are named by DAG, task and data interval (never by run id), so re-running a window
overwrites the same object instead of adding a new one. Every write goes to a temporary name
beside the target and is moved into place only once complete, so a reader never sees a
half-written file and a failed run leaves nothing at the target.

The base is ``LOGPROC_STAGING_BASE`` (e.g. ``file:///var/lib/logproc/staging`` or
``abfs://staging@account.dfs.core.windows.net/logproc``) unless a caller passes one.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

from airflow.providers.common.compat.sdk import ObjectStoragePath

STAGING_BASE_ENV = "LOGPROC_STAGING_BASE"


class StagingConfigError(ValueError):
    """No staging base is configured, or a staging location is malformed."""


def as_path(location: str | os.PathLike[str] | ObjectStoragePath) -> ObjectStoragePath:
    """Return an ``ObjectStoragePath`` for a URI (``file://``, ``abfs://``, ...) or an existing path."""
    if isinstance(location, ObjectStoragePath):
        return location
    text = os.fspath(location)
    if "://" not in text:
        if not os.path.isabs(text):
            raise StagingConfigError(f"staging location {text!r} is neither a URI nor an absolute path")
        text = f"file://{text}"
    return ObjectStoragePath(text)


def staging_base(base: str | ObjectStoragePath | None = None) -> ObjectStoragePath:
    """Return the staging base: ``base`` if given, else the ``LOGPROC_STAGING_BASE`` environment variable."""
    chosen = base if base is not None else os.environ.get(STAGING_BASE_ENV)
    if not chosen:
        raise StagingConfigError(
            f"no staging location: pass output_uri or staging_base, or set {STAGING_BASE_ENV} "
            "(e.g. file:///var/lib/logproc/staging)"
        )
    return as_path(chosen)


def interval_label(start: dt.datetime | None, end: dt.datetime | None) -> str:
    """``20240102T000000Z--20240103T000000Z``: a data interval as a path segment (UTC)."""
    if start is None or end is None:
        raise StagingConfigError("a data interval (start and end) is needed to name a staging location")
    return f"{utc_label(start)}--{utc_label(end)}"


def utc_label(moment: dt.datetime) -> str:
    """Return ``moment`` as a compact UTC label for object names (``20261124T000000Z``)."""
    if moment.tzinfo is None:
        raise StagingConfigError(f"naive datetime {moment.isoformat()} in a staging name; give a time zone")
    return moment.astimezone(dt.UTC).strftime("%Y%m%dT%H%M%S") + "Z"


def default_uri(
    *,
    dag_id: str,
    task_id: str,
    label: str,
    filename: str,
    base: str | ObjectStoragePath | None = None,
) -> ObjectStoragePath:
    """``<base>/<dag_id>/<task_id>/<label>/<filename>``; ``label`` is usually :func:`interval_label`."""
    for name, part in (("dag_id", dag_id), ("task_id", task_id), ("label", label), ("filename", filename)):
        if not part or "/" in part or part in (".", ".."):
            raise StagingConfigError(f"{name} {part!r} cannot be used as a staging path segment")
    return staging_base(base) / dag_id / task_id / label / filename


def sibling(target: ObjectStoragePath, suffix: str) -> ObjectStoragePath:
    """Return a path beside ``target`` with ``suffix`` replacing its last extension: raw.ion → raw.<suffix>."""
    stem = target.name.rsplit(".", 1)[0] if "." in target.name else target.name
    return target.with_name(f"{stem}.{suffix}")


LOCAL_PROTOCOLS = ("file", "local")


def local_file(path: ObjectStoragePath) -> Path | None:
    """Return the local filesystem path of a ``file://`` location, None for object storage.

    Local staging is read and written with Python's own file I/O: the first use of
    ``ObjectStoragePath.fs`` makes Airflow import every installed provider's filesystem module
    (azure-identity, msal, ...: ~0.3 s of each task's process measured in bench_consume), which a
    local file does not need.
    """
    if path.protocol not in LOCAL_PROTOCOLS:
        return None
    return Path(path.path)


def exists(target: str | ObjectStoragePath) -> bool:
    """Return whether ``target`` exists (a local path is checked without loading the filesystems)."""
    path = as_path(target)
    local = local_file(path)
    return local.exists() if local is not None else path.exists()


@contextlib.contextmanager
def atomic_write(target: str | ObjectStoragePath, mode: str = "wb") -> Iterator[IO[Any]]:
    """Open a temporary file beside ``target``; on success move it over ``target``.

    On any error the temporary file is removed and ``target`` is left as it was (absent, or the
    previous complete version). Local files are fsync'ed before the move, so a completed write
    survives a crash (callers commit Kafka offsets only after this returns).
    """
    if mode not in ("wb", "w"):
        raise ValueError(f"atomic_write supports modes 'wb' and 'w', not {mode!r}")
    path = as_path(target)
    local = local_file(path)
    temporary_name = f".{path.name}.tmp-{uuid.uuid4().hex[:12]}"
    if local is not None:
        local.parent.mkdir(parents=True, exist_ok=True)
        local_temporary = local.with_name(temporary_name)
        try:
            with open(local_temporary, mode) as handle:
                yield handle
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(local_temporary, local)
        except BaseException:
            with contextlib.suppress(OSError):
                local_temporary.unlink()
            raise
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(temporary_name)
    try:
        with temporary.open(mode) as handle:
            yield handle
            handle.flush()
            _fsync_if_local(handle)
        temporary.rename(path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError, OSError):
            temporary.unlink()
        raise


def remove_if_exists(target: str | ObjectStoragePath) -> bool:
    """Delete ``target`` if present (e.g. a stale dead-letter file from an earlier run of a window)."""
    path = as_path(target)
    local = local_file(path)
    try:
        if local is not None:
            local.unlink()
        else:
            path.unlink()
    except FileNotFoundError:
        return False
    return True


def _fsync_if_local(handle: IO[Any]) -> None:
    try:
        descriptor = handle.fileno()
    except (AttributeError, OSError, ValueError, NotImplementedError):
        return  # object-store writers commit on close; nothing to fsync
    os.fsync(descriptor)
