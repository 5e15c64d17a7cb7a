"""Short-lived, least-privilege SAS URLs for a container or blob, from a ``wasb`` connection.

Used for Azure Batch resource files (read) and output files (create/write). How the token is
signed follows the connection's auth:

- account key or connection string with a key → service SAS signed with the key;
- Entra identity (service principal, managed or workload identity) → user delegation SAS, signed
  with a user delegation key fetched for the same validity window (the identity needs
  ``Microsoft.Storage/storageAccounts/blobServices/generateUserDelegationKey``, e.g. through
  *Storage Blob Delegator*, plus data access for the permissions it delegates);
- a connection that itself holds a SAS cannot issue a narrower one: a clear error says so.

Tokens are never logged. Use :func:`redact_sas` to log a SAS URL.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from azure.storage.blob import (
    BlobSasPermissions,
    BlobServiceClient,
    ContainerSasPermissions,
    generate_blob_sas,
    generate_container_sas,
)

from airflow_provider_logproc.blob.errors import azure_errors, client_secrets, redact, url_without_query
from airflow_provider_logproc.blob.names import validate_blob_name, validate_container_name

if TYPE_CHECKING:
    from airflow.providers.microsoft.azure.hooks.wasb import WasbHook

DEFAULT_EXPIRY = timedelta(hours=1)
# A user delegation key is valid for at most 7 days; the same cap keeps key-signed SAS short-lived.
MAX_EXPIRY = timedelta(days=7)
# Start a little in the past so a node whose clock is behind accepts the token at once.
CLOCK_SKEW = timedelta(minutes=5)
CONTAINER_PERMISSIONS = "racwdxyltfmeopi"
BLOB_PERMISSIONS = "racwdxytmeopi"


class SasError(ValueError):
    """A SAS cannot be issued with the given connection or arguments."""


def redact_sas(url: str) -> str:
    """``url`` with its SAS signature replaced by ``***``: safe for logs and messages."""
    return redact(url)


def container_sas_url(
    hook: WasbHook | BlobServiceClient,
    container: str,
    permission: str = "r",
    expiry: timedelta = DEFAULT_EXPIRY,
) -> str:
    """``https://<account>/<container>?<sas>``: access to the container's blobs for ``expiry``.

    :param hook: a ``WasbHook`` (or the ``BlobServiceClient`` it gives).
    :param permission: SAS permission letters, e.g. ``"r"`` (read), ``"rl"`` (read + list),
        ``"cw"`` (create + write, for Batch output files).
    """
    validate_container_name(container)
    letters = _permission(permission, CONTAINER_PERMISSIONS, "container")
    client = _service_client(hook)
    token = generate_container_sas(container_name=container, permission=ContainerSasPermissions.from_string(letters),
                                   **_signature_arguments(client, expiry))
    return f"{url_without_query(client.get_container_client(container).url)}?{token}"


def blob_sas_url(
    hook: WasbHook | BlobServiceClient,
    container: str,
    blob: str,
    permission: str = "r",
    expiry: timedelta = DEFAULT_EXPIRY,
) -> str:
    """``https://<account>/<container>/<blob>?<sas>``: access to one blob for ``expiry``."""
    validate_container_name(container)
    validate_blob_name(blob)
    letters = _permission(permission, BLOB_PERMISSIONS, "blob")
    client = _service_client(hook)
    permissions = BlobSasPermissions.from_string(letters)
    token = generate_blob_sas(container_name=container, blob_name=blob, permission=permissions,
                              **_signature_arguments(client, expiry))
    return f"{url_without_query(client.get_blob_client(container, blob).url)}?{token}"


def _signature_arguments(client: BlobServiceClient, expiry: timedelta) -> dict[str, Any]:
    """Return what every SAS of this module is signed with: account, validity window, protocol, key."""
    start, end = _window(expiry)
    return {"account_name": _account_name(client), "start": start, "expiry": end, "protocol": _protocol(client),
            **_signing_key(client, start, end)}


def _service_client(hook: Any) -> BlobServiceClient:
    if isinstance(hook, BlobServiceClient):
        return hook
    return hook.get_conn()


def _permission(permission: str, allowed: str, kind: str) -> str:
    if not isinstance(permission, str) or not permission:
        raise SasError(f"{kind} SAS permission must be non-empty letters from {allowed!r}, got {permission!r}")
    unknown = sorted(set(permission) - set(allowed))
    if unknown:
        raise SasError(f"{kind} SAS permission {permission!r} has unknown letters {''.join(unknown)!r}; "
                       f"allowed: {allowed!r}")
    return permission


def _window(expiry: timedelta) -> tuple[datetime, datetime]:
    if not isinstance(expiry, timedelta) or expiry <= timedelta(0):
        raise SasError(f"expiry must be a positive timedelta, got {expiry!r}")
    if expiry > MAX_EXPIRY:
        raise SasError(f"expiry {expiry} is longer than {MAX_EXPIRY}: issue short-lived tokens")
    now = datetime.now(UTC).replace(microsecond=0)
    return now - CLOCK_SKEW, now + expiry


def _account_name(client: BlobServiceClient) -> str:
    name = client.account_name
    if not name:
        raise SasError(f"cannot tell the storage account name from {url_without_query(client.url)}")
    return name


def _protocol(client: BlobServiceClient) -> str | None:
    # Against a real account allow https only; a local emulator (Azurite) listens on plain http.
    return "https" if client.url.startswith("https://") else None


def _signing_key(client: BlobServiceClient, start: datetime, end: datetime) -> dict[str, Any]:
    credential = client.credential
    account_key = getattr(credential, "account_key", None)
    if isinstance(account_key, str) and account_key:
        return {"account_key": account_key}
    if hasattr(credential, "get_token"):
        with azure_errors("getting a user delegation key to sign a SAS", client.url, client_secrets(client)):
            return {"user_delegation_key": client.get_user_delegation_key(start, end)}
    if hasattr(credential, "signature") or "?" in client.url:
        raise SasError(
            "the wasb connection authenticates with a SAS token, which cannot issue another SAS: use a "
            "connection with the account key, or an Entra identity allowed to get user delegation keys")
    raise SasError("the wasb connection has no credential that can sign a SAS (anonymous/public access)")
