"""Clear, secret-free errors for Blob Storage calls.

Azure SDK exceptions can carry a request URL (with a SAS ``sig=``), a connection string or the
server's echo of a request signature. Airflow logs an exception with its whole chain, so the SDK
exception is replaced (``raise ... from None``) by one whose text has been scrubbed.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any
from urllib.parse import parse_qs, urlsplit, urlunsplit

# azure.core is imported where an SDK error is handled, not here: the Blob operator imports this
# package when a DAG file is parsed, and parsing must stay cheap.
if TYPE_CHECKING:
    from azure.core.exceptions import AzureError, HttpResponseError, ResourceExistsError, ResourceNotFoundError

REDACTED = "***"
_PATTERNS = [
    # SAS signature in a URL or token, and the user delegation key's signed fields.
    re.compile(r"(?i)(\bsig=)[^&\s'\"<>;]+"),
    re.compile(r"(?i)(\bskoid=|\bsktid=)[^&\s'\"<>;]+"),
    # Connection strings.
    re.compile(r"(?i)(AccountKey=)[^;\s'\"<>]+"),
    re.compile(r"(?i)(SharedAccessSignature=)[^;\s'\"<>]+"),
    # Authorization headers echoed back.
    re.compile(r"(?i)(SharedKey(?:Lite)? [^:\s]+:)[^\s'\"<>]+"),
    re.compile(r"(?i)(Bearer )[^\s'\"<>]+"),
    # "The MAC signature found in the HTTP request '...' is not the same as any computed signature."
    re.compile(r"(?i)(signature found in the HTTP request ')[^']+"),
]


class BlobUploadError(RuntimeError):
    """A Blob Storage upload failed; the message names what and where, and holds no secret."""


class BlobExistsError(BlobUploadError):
    """``if_exists='fail'`` and a target blob is already there (nothing was sent)."""


class SourceChangedError(BlobUploadError):
    """The source changed between the skip_if_same comparison pass and the upload pass."""


def redact(text: str, secrets: Iterable[str] = ()) -> str:
    """``text`` with known secret values and every secret-shaped token replaced by ``***``."""
    for secret in secrets:
        if secret and len(secret) >= 4:
            text = text.replace(secret, REDACTED)
    for pattern in _PATTERNS:
        text = pattern.sub(lambda match: match.group(1) + REDACTED, text)
    return text


def url_without_query(url: str) -> str:
    """Remove any query (a SAS) and fragment from a blob or container URL: safe to log and return."""
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, parts.path, "", ""))


def client_secrets(client: Any) -> list[str]:
    """Secret strings a Blob SDK client holds (account key, SAS), to scrub from messages."""
    secrets: list[str] = []
    credential = getattr(client, "credential", None)
    for attribute in ("account_key", "signature"):
        value = getattr(credential, attribute, None)
        if isinstance(value, str):
            secrets.append(value)
    if isinstance(credential, str):
        secrets.append(credential)
    for url in (getattr(client, "url", None), getattr(client, "primary_endpoint", None)):
        if isinstance(url, str) and "?" in url:
            query = urlsplit(url).query
            secrets.append(query)
            secrets.extend(value for values in parse_qs(query).values() for value in values if len(value) >= 16)
    return secrets


class RedactingFilter(logging.Filter):
    """Scrubs records of loggers the SDK uses (urllib3 logs request lines with their query at DEBUG)."""

    def __init__(self, secrets: Iterable[str]):
        super().__init__()
        self.secrets = [secret for secret in secrets if secret]

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        cleaned = redact(message, self.secrets)
        if cleaned != message:
            record.msg, record.args = cleaned, None
        return True


_SDK_LOGGERS = ("urllib3.connectionpool", "azure.core.pipeline.policies.http_logging_policy",
                "azure.core.pipeline.policies._universal", "azure.storage.blob")


@contextmanager
def redacted_sdk_logs(secrets: Iterable[str]) -> Iterator[None]:
    log_filter = RedactingFilter(secrets)
    loggers = [logging.getLogger(name) for name in _SDK_LOGGERS]
    for logger in loggers:
        logger.addFilter(log_filter)
    try:
        yield
    finally:
        for logger in loggers:
            logger.removeFilter(log_filter)


def _status(error: HttpResponseError) -> str:
    code = getattr(error, "error_code", None)
    code = getattr(code, "value", code)  # the SDK gives a StorageErrorCode enum for known codes
    status = getattr(error, "status_code", None)
    return " ".join(str(part) for part in (f"HTTP {status}" if status else None, code) if part)


def describe(error: AzureError, action: str, endpoint: str, secrets: Iterable[str]) -> str:
    """One clear sentence about what failed, where, and why; scrubbed of secrets."""
    from azure.core.exceptions import (
        ClientAuthenticationError,
        HttpResponseError,
        ServiceRequestError,
        ServiceResponseError,
    )

    where = url_without_query(endpoint)
    if isinstance(error, ClientAuthenticationError) or (
        isinstance(error, HttpResponseError) and error.status_code in (401, 403)
    ):
        reason = (f"Azure Blob Storage at {where} refused the credentials ({_status(error)}): check the "
                  "account key, SAS (permissions, expiry) or identity of the wasb connection")
    elif isinstance(error, ServiceRequestError | ServiceResponseError):
        first_line = str(error.message if hasattr(error, "message") else error).splitlines()[0]
        reason = f"could not reach Azure Blob Storage at {where}: {first_line}"
    elif isinstance(error, HttpResponseError):
        first_line = (str(getattr(error, "reason", "") or "") or str(error).splitlines()[0]).strip()
        reason = f"Azure Blob Storage at {where} answered {_status(error)}: {first_line}"
    else:
        reason = f"{type(error).__name__}: {str(error).splitlines()[0] if str(error) else ''}"
    return redact(f"{action} failed: {reason}", secrets)


@contextmanager
def azure_errors(action: str, endpoint: str, secrets: Iterable[str],
                 passthrough: tuple[type[AzureError], ...] = ()) -> Iterator[None]:
    """Turn SDK errors raised inside into BlobUploadError, dropping the SDK exception chain."""
    from azure.core.exceptions import AzureError

    try:
        yield
    except passthrough:
        raise
    except AzureError as error:
        message = describe(error, action, endpoint, list(secrets))
        raise BlobUploadError(message) from None


def __getattr__(name: str) -> Any:
    # The SDK's two "exists"/"not found" errors stay importable from here, loaded on first use.
    if name in ("ResourceExistsError", "ResourceNotFoundError"):
        from azure.core import exceptions

        return getattr(exceptions, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "BlobExistsError",
    "BlobUploadError",
    "ResourceExistsError",
    "ResourceNotFoundError",
    "SourceChangedError",
    "azure_errors",
    "client_secrets",
    "redact",
    "redacted_sdk_logs",
    "url_without_query",
]
