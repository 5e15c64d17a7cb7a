"""AzureBatchJobHook: the Batch service calls of this provider, on an official ``azure_batch`` connection.

The official ``AzureBatchHook`` (microsoft-azure provider 15.2) builds only the synchronous
``azure.batch.BatchClient``; triggers need ``azure.batch.aio.BatchClient``. This hook extends it
with the async client, built from the same connection fields: login = account name, password =
account key (shared key), extra ``account_url``; without a key, Entra ID through the provider's
usual default credential (managed identity / workload identity extras honoured).

It owns the calls the operator and the sensor make — check a pool, create a job or find the one an
earlier attempt created, add task collections (chunked, idempotent), read the tasks' outcome and log
tails, terminate, delete — with one retry rule for those the SDK does not retry
(:func:`~airflow_provider_logproc.azure_batch.retry.call_with_retries`). Operators and sensors
orchestrate; the trigger polls with the async client.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Sequence
from functools import cached_property
from typing import TYPE_CHECKING, Any

from airflow.providers.common.compat.connection import get_async_connection
from airflow.providers.common.compat.sdk import AirflowException
from airflow.providers.microsoft.azure.hooks.batch import AzureBatchHook
from airflow.providers.microsoft.azure.utils import (
    get_async_default_azure_credential,
    get_sync_default_azure_credential,
)
from azure.batch import BatchClient
from azure.batch import models as batch_models
from azure.batch.aio import BatchClient as AsyncBatchClient
from azure.core.credentials import AzureNamedKeyCredential
from azure.core.exceptions import HttpResponseError, ResourceExistsError, ResourceNotFoundError

from airflow_provider_logproc.azure_batch.outcome import JobOutcome, evaluate_tasks, tail_text, task_counts
from airflow_provider_logproc.azure_batch.retry import MAX_ATTEMPTS, call_with_retries, is_transient, retry_delay
from airflow_provider_logproc.azure_batch.task_collection import chunked, classify_add_results

if TYPE_CHECKING:
    from airflow.providers.common.compat.sdk import Connection


LIST_PAGE_SIZE = 1000  # the most Batch returns per page; the pager follows odata.nextLink
LOG_TAIL_BYTES = 2048
MAX_FAILED_TASK_LOGS = 20
SERVER_SIDE_TERMINATE_WAIT = 60.0


def quiet_azure_http_logging() -> None:
    """Like the official WasbHook: azure-core logs every request and response at INFO, which would flood
    task and triggerer logs. AZURE_HTTP_LOGGING_LEVEL brings it back for debugging.

    Called when a client is built, not at import: importing a module must not change logging.
    """
    logging.getLogger("azure.core.pipeline.policies.http_logging_policy").setLevel(
        os.environ.get("AZURE_HTTP_LOGGING_LEVEL", "WARNING").upper()
    )


def enum_text(value: Any) -> str:
    """``active`` rather than ``BatchJobState.ACTIVE`` (str() of the SDK's str enums on Python 3.11)."""
    return str(getattr(value, "value", value))


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
        quiet_azure_http_logging()
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
        """Return what the portal link needs: account name/URL, and subscription / resource group if set in extras."""
        conn = self.get_connection(self.conn_id)
        extras = conn.extra_dejson
        return {
            "account_url": _account_url(self.conn_id, extras),
            "account_name": conn.login or None,
            "subscription_id": _extra(extras, "subscription_id"),
            "resource_group": _extra(extras, "resource_group"),
        }

    async def get_async_conn(self) -> AsyncBatchClient:
        """Build the async client; the caller closes it (``async with``), then ``close_async_credential()``."""
        quiet_azure_http_logging()
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

    # -- service calls (sync) ----------------------------------------------------------------------

    @cached_property
    def client(self) -> BatchClient:
        """One sync client for this hook's calls."""
        return self.get_conn()

    def get_job(self, job_id: str) -> Any | None:
        """Return the job, or None if it does not exist."""
        try:
            return self.client.get_job(job_id)
        except ResourceNotFoundError:
            return None

    def get_job_state(self, job_id: str) -> str:
        return enum_text(self.client.get_job(job_id, select=["id", "state"]).state)

    def check_pool(self, pool_id: str) -> None:
        """Check that the pool exists and is active; warn when it has no nodes to run on."""
        try:
            pool = self.client.get_pool(pool_id)
        except ResourceNotFoundError:
            raise AirflowException(
                f"Batch pool {pool_id!r} does not exist in account {self.account_url()}: this operator "
                "runs jobs on an existing pool; create it first"
            ) from None
        if pool.state != batch_models.BatchPoolState.ACTIVE:
            raise AirflowException(f"Batch pool {pool_id!r} is {enum_text(pool.state)}, not active")
        if pool.allocation_state == batch_models.AllocationState.STOPPING:
            raise AirflowException(f"Batch pool {pool_id!r} is stopping a resize: tasks may never get nodes")
        if pool.allocation_state != batch_models.AllocationState.STEADY:
            # An autoscaling pool resizes often and still runs tasks: not a reason to fail.
            self.log.warning("Batch pool %s is %s", pool_id, enum_text(pool.allocation_state))
        targets = (pool.target_dedicated_nodes or 0) + (pool.target_low_priority_nodes or 0)
        if not pool.enable_auto_scale and targets == 0:
            self.log.warning("Batch pool %s targets no nodes: tasks will wait until the timeout", pool_id)

    def create_job_if_absent(self, job: dict[str, Any]) -> bool:
        """Create the job (Batch REST JSON); False if it exists already (an earlier attempt created it).

        Throttling and server errors are retried like a lost answer: the job may have been created
        before the answer was lost, so the hook looks before trying again.
        """
        job_id = job["id"]

        def create() -> bool:
            try:
                self.client.create_job(batch_models.BatchJobCreateOptions(job))
            except ResourceExistsError:
                return False
            return True

        def created_meanwhile() -> bool | None:
            return False if self.get_job(job_id) is not None else None

        return call_with_retries(create, what=f"Batch job {job_id}: creating the job", log=self.log,
                                 look_before_retry=created_meanwhile)

    def enable_auto_terminate(self, job_id: str) -> None:
        """End the job when its tasks are done (switched on after the tasks are added, as Batch prescribes)."""
        self.client.update_job(job_id, batch_models.BatchJobUpdateOptions({"onAllTasksComplete": "terminatejob"}))

    def existing_task_ids(self, job_id: str) -> set[str]:
        """Return the ids (lower case: Batch ids are case-insensitive) of the tasks the job has."""
        return {task.id.lower() for task in self.client.list_tasks(job_id, select=["id"])}

    def add_tasks(self, job_id: str, specs: Sequence[dict[str, Any]], *, attempts: int = MAX_ATTEMPTS,
                  sleep: Any = None) -> None:
        """Add tasks in collections of ≤ 100, reading each task's status; safe to repeat.

        A task an earlier attempt added comes back ``TaskExists`` and counts as added; tasks with a
        server error, and whole collections whose answer was lost, are sent again.
        """
        import time

        sleep = sleep or time.sleep
        by_id = {spec["id"]: spec for spec in specs}
        for chunk in chunked(list(specs)):
            pending = [spec["id"] for spec in chunk]
            for attempt in range(1, attempts + 1):
                group = batch_models.BatchTaskGroup({"value": [by_id[task_id] for task_id in pending]})
                try:
                    response = self.client.create_task_collection(job_id, group)
                except ResourceExistsError as error:
                    code = getattr(getattr(error, "error", None), "code", None)
                    raise AirflowException(
                        f"Batch job {job_id} no longer takes tasks ({code or error.status_code}): it finished "
                        "while tasks were being added. Delete the job to run this window again."
                    ) from None
                except Exception as error:
                    # The SDK does not retry a POST whose answer was lost; re-adding is safe (TaskExists).
                    if not is_transient(error) or attempt == attempts:
                        raise
                    self.log.warning("Batch job %s: adding tasks failed (%s): trying again", job_id,
                                     type(error).__name__)
                    sleep(retry_delay(attempt, error))
                    continue
                outcome = classify_add_results(response.get("value") or [])
                if outcome.already_there:
                    self.log.info("Batch job %s: %d task(s) were already there", job_id, len(outcome.already_there))
                if outcome.rejected:
                    details = "; ".join(
                        f"{task_id}: {code} {message}".strip() for task_id, code, message in outcome.rejected[:10]
                    )
                    raise AirflowException(f"Batch job {job_id}: {len(outcome.rejected)} task(s) rejected: {details}")
                answered = set(outcome.added) | set(outcome.already_there) | set(outcome.retry)
                pending = outcome.retry + [task_id for task_id in pending if task_id not in answered]
                if not pending:
                    break
                self.log.warning("Batch job %s: %d task(s) to add again (attempt %d)", job_id, len(pending), attempt)
                sleep(retry_delay(attempt))
            else:
                raise AirflowException(f"Batch job {job_id}: could not add {len(pending)} task(s), e.g. {pending[:5]}")
        self.log.info("Batch job %s: %d task(s) added", job_id, len(specs))

    def get_task_counts(self, job_id: str) -> dict[str, int]:
        """Return the job's task counts (one request, whatever the number of tasks)."""
        return task_counts(self.client.get_job_task_counts(job_id))

    def read_outcome(self, job_id: str) -> JobOutcome:
        """Read the job's tasks (all pages), reduced to what the result rules need."""
        tasks = self.client.list_tasks(job_id, select=["id", "state", "executionInfo"], max_results=LIST_PAGE_SIZE)
        return evaluate_tasks(job_id, tasks)

    def check_outcome(self, outcome: JobOutcome, unfinished_hint: str = "") -> JobOutcome:
        """Apply the result rules the operator and the sensor share.

        Log each task's exit code and the stderr/stdout tails of failed tasks; fail naming the failed
        tasks and their exit codes, or the tasks a termination left unfinished.
        """
        job_id = outcome.job_id
        for task in outcome.tasks:
            self.log.info("Batch task %s: %s, exit code %s", task.id, task.state, task.exit_code)
        for task in outcome.failed[:MAX_FAILED_TASK_LOGS]:
            for file_name in ("stderr.txt", "stdout.txt"):
                self.log.info("Batch task %s %s (tail):\n%s", task.id, file_name,
                              self.task_file_tail(job_id, task.id, file_name))
        if outcome.failed:
            raise AirflowException(outcome.failure_message())
        if outcome.unfinished or not outcome.tasks:
            raise AirflowException(
                f"Batch job {job_id} ended with {len(outcome.unfinished)} of {len(outcome.tasks)} task(s) not "
                f"completed (terminated, e.g. after a timeout or a kill).{unfinished_hint}"
            )
        return outcome

    def task_file_tail(self, job_id: str, task_id: str, file_name: str) -> str:
        """Return the last few KB of a task's file (stderr.txt, stdout.txt), or why it cannot be read."""
        try:
            data = b""
            for chunk in self.client.download_task_file(job_id, task_id, file_name):
                data = (data + chunk)[-(LOG_TAIL_BYTES * 2) :]
            return tail_text(data, LOG_TAIL_BYTES) or "(empty)"
        except HttpResponseError as error:
            return f"(not available: HTTP {error.status_code})"

    def terminate_job(self, job_id: str, reason: str, *, wait: bool) -> None:
        """Terminate the job (its running tasks are killed); a finished job is left as it is."""
        try:
            # azure-batch 15.1 raises ValueError before sending when no options are given, and does not
            # export the options model: the REST body as a mapping, which the SDK serializes as is.
            poller = self.client.begin_terminate_job(
                job_id, {"terminateReason": reason[:200]},  # type: ignore[arg-type]
                polling_interval=1,
            )
            self.log.info("Batch job %s: terminate requested (%s)", job_id, reason)
            if wait:
                poller.result(timeout=SERVER_SIDE_TERMINATE_WAIT)
        except ResourceExistsError:
            self.log.info("Batch job %s was already completed", job_id)
        except HttpResponseError as error:
            self.log.warning("Batch job %s: terminate failed: HTTP %s", job_id, error.status_code)

    def delete_job(self, job_id: str) -> None:
        """Ask the service to delete the job (it finishes asynchronously)."""
        self.client.begin_delete_job(job_id)
        self.log.info("Batch job %s: deletion requested", job_id)


__all__ = ["AzureBatchJobHook", "BatchConnectionError"]
