"""Upload options that are checked when a DAG file is parsed; no Azure SDK import here.

``BlobUploadOperator.__init__`` validates ``if_exists`` and takes ``block_size``'s default from
this module, so importing the operator does not import ``azure.storage.blob`` (which pulls in
aiohttp and costs a few hundred milliseconds of every DAG file parse). The package ``blob``
re-exports ``IfExists``.
"""

from __future__ import annotations

from enum import StrEnum

from airflow_provider_logproc.blob.names import InvalidUploadOptionError

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
