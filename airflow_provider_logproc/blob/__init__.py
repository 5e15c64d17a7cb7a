"""Blob Storage uploads: naming rules, streaming JSON-lines splitting, idempotent block uploads.

No Airflow imports here: the operator (``operators/blob.py``) resolves sources and the connection.
"""

from airflow_provider_logproc.blob.errors import BlobExistsError, BlobUploadError, SourceChangedError
from airflow_provider_logproc.blob.names import InvalidBlobNameError, InvalidUploadOptionError
from airflow_provider_logproc.blob.options import IfExists
from airflow_provider_logproc.blob.request import BlobUploadRequest, UploadedBlob, UploadResult
from airflow_provider_logproc.blob.split import PartDigest, PartSplitter, Source
from airflow_provider_logproc.blob.upload import upload

__all__ = [
    "BlobExistsError",
    "BlobUploadError",
    "BlobUploadRequest",
    "IfExists",
    "InvalidBlobNameError",
    "InvalidUploadOptionError",
    "PartDigest",
    "PartSplitter",
    "Source",
    "SourceChangedError",
    "UploadResult",
    "UploadedBlob",
    "upload",
]
