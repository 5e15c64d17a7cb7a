"""Upload options that are checked when a DAG file is parsed; no Azure SDK import here.

``BlobUploadOperator.__init__`` validates ``if_exists`` and takes ``block_size``'s default from
this module, so importing the operator does not import ``azure.storage.blob`` (which pulls in
aiohttp and costs a few hundred milliseconds of every DAG file parse). The package ``blob``
re-exports ``IfExists``.
"""

from __future__ import annotations

from enum import StrEnum

from airflow_provider_logproc.blob.names import InvalidUploadOptionError, normalize_access_tier

DEFAULT_BLOCK_SIZE = 8 * 1024 * 1024
MAX_BLOCK_SIZE = 4000 * 1024 * 1024  # Azure's limit per staged block


class IfExists(StrEnum):
    REPLACE = "replace"
    SKIP_IF_SAME = "skip_if_same"
    FAIL = "fail"

    @classmethod
    def parse(cls, value: str | IfExists) -> IfExists:
        try:
            return cls(value)
        except ValueError:
            raise InvalidUploadOptionError(
                f"if_exists={value!r} is not one of {', '.join(repr(mode.value) for mode in cls)}"
            ) from None


def check_upload_options(
    *, blob_name: str | None, prefix: str | None, parts: object, max_part_bytes: object, if_exists: str,
    access_tier: str | None, task_id: str,
) -> None:
    """Raise ``InvalidUploadOptionError``, naming ``task_id``, for upload options that cannot work together.

    Only options that cannot be templated are checked, so a bad DAG fails when it is parsed.
    """
    if (blob_name is None) == (prefix is None):
        raise InvalidUploadOptionError(
            f"{task_id}: give exactly one of blob_name (one blob) or prefix (parts + manifest)")
    if parts is not None and max_part_bytes is not None:
        raise InvalidUploadOptionError(f"{task_id}: give either parts or max_part_bytes, not both")
    if blob_name is not None and (parts is not None or max_part_bytes is not None):
        raise InvalidUploadOptionError(f"{task_id}: parts/max_part_bytes need prefix=, not blob_name=")
    try:
        IfExists.parse(if_exists)
        normalize_access_tier(access_tier)
    except InvalidUploadOptionError as error:
        raise InvalidUploadOptionError(f"{task_id}: {error}") from None
