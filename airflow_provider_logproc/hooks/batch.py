"""Azure Batch clients (sync and async) from an official ``azure_batch`` connection.

The official ``AzureBatchHook`` (microsoft-azure provider 15.2) builds only the synchronous
``azure.batch.BatchClient``; triggers need ``azure.batch.aio.BatchClient``. This hook extends it
with the async client, built from the same connection fields: login = account name, password =
account key (shared key), extra ``account_url``; without a key, Entra ID through the provider's
usual default credential (managed identity / workload identity extras honoured).
"""

from __future__ import annotations

import json
import logging
import os
from typing import TYPE_CHECKING, Any

from airflow.providers.common.compat.connection import get_async_connection
from airflow.providers.microsoft.azure.hooks.batch import AzureBatchHook
from airflow.providers.microsoft.azure.utils import (
    get_async_default_azure_credential,
    get_sync_default_azure_credential,
)
from azure.batch import BatchClient
from azure.batch.aio import BatchClient as AsyncBatchClient
from azure.core.credentials import AzureNamedKeyCredential

if TYPE_CHECKING:
    from airflow.providers.common.compat.sdk import Connection


# Like the official WasbHook: azure-core logs every request and response at INFO, which would flood
# task and triggerer logs. AZURE_HTTP_LOGGING_LEVEL brings it back for debugging.
logging.getLogger("azure.core.pipeline.policies.http_logging_policy").setLevel(
    os.environ.get("AZURE_HTTP_LOGGING_LEVEL", "WARNING").upper()
)


class BatchConnectionError(ValueError):
    """The ``azure_batch`` connection lacks what a client needs; the message names the field."""


def _extra(extras: dict[str, Any], name: str) -> Any:
    # The connection form stores fields as ``extra__azure_batch__<name>`` in older Airflow versions.
    return extras.get(name) or extras.get(f"extra__azure_batch__{name}")


def _account_url(conn_id: str, extras: dict[str, Any]) -> str:
    url = _extra(extras, "account_url")
    if not url:
        raise BatchConnectionError(
            f"connection {conn_id!r}: the extra field 'account_url' (the Batch account URL, e.g. "
            "https://<account>.<region>.batch.azure.com) is missing"
        )
    return str(url).rstrip("/")


class AzureBatchJobHook(AzureBatchHook):
    """Sync and async Batch clients from an ``azure_batch`` connection.

    :param azure_batch_conn_id: the ``azure_batch`` connection (account name, key, ``account_url``).
    :param client_kwargs: passed to the client constructors (azure-core pipeline options such as
        ``retry_total``); the trigger turns off the SDK's own retries and applies its own budget.
    """

    def __init__(self, azure_batch_conn_id: str = AzureBatchHook.default_conn_name, **client_kwargs: Any) -> None:
        super().__init__(azure_batch_conn_id=azure_batch_conn_id)
        self.client_kwargs = client_kwargs

    def get_conn(self) -> BatchClient:
        conn = self.get_connection(self.conn_id)
        account_url = _account_url(self.conn_id, conn.extra_dejson)
        credential: Any
        if conn.login and conn.password:
            credential = AzureNamedKeyCredential(conn.login, conn.password)
        else:
            credential = get_sync_default_azure_credential(
                managed_identity_client_id=_extra(conn.extra_dejson, "managed_identity_client_id"),
                workload_identity_tenant_id=_extra(conn.extra_dejson, "workload_identity_tenant_id"),
            )
        return BatchClient(endpoint=account_url, credential=credential, **self.client_kwargs)

    def account_url(self) -> str:
        conn = self.get_connection(self.conn_id)
        return _account_url(self.conn_id, conn.extra_dejson)

    def account_details(self) -> dict[str, str | None]:
        """What the portal link needs: account name/URL, and subscription / resource group if set in extras."""
        conn = self.get_connection(self.conn_id)
        extras = conn.extra_dejson
        return {
            "account_url": _account_url(self.conn_id, extras),
            "account_name": conn.login or None,
            "subscription_id": _extra(extras, "subscription_id"),
            "resource_group": _extra(extras, "resource_group"),
        }

    async def get_async_conn(self) -> AsyncBatchClient:
        """The async client; the caller closes it (``async with``), then ``close_async_credential()``."""
        conn: Connection = await get_async_connection(self.conn_id, self)
        # ``extra_dejson`` may mask secrets through a synchronous supervisor call on the triggerer's loop.
        extras = json.loads(conn.extra) if conn.extra else {}
        account_url = _account_url(self.conn_id, extras)
        credential: Any
        if conn.login and conn.password:
            credential = AzureNamedKeyCredential(conn.login, conn.password)
        else:
            credential = get_async_default_azure_credential(
                managed_identity_client_id=_extra(extras, "managed_identity_client_id"),
                workload_identity_tenant_id=_extra(extras, "workload_identity_tenant_id"),
            )
        # An Entra credential holds its own HTTP session: the caller closes it (close_async_credential).
        self._async_credential = credential
        return AsyncBatchClient(endpoint=account_url, credential=credential, **self.client_kwargs)

    async def close_async_credential(self) -> None:
        credential = getattr(self, "_async_credential", None)
        close = getattr(credential, "close", None)
        if close is not None:
            await close()
        self._async_credential = None
