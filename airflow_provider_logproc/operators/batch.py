"""AzureBatchJobOperator: one Batch job per data interval on an existing pool, fanned out over inputs.

Unlike the official ``AzureBatchOperator`` (creates a pool, waits for its nodes without a timeout,
adds one task, lists every task on every poll), this operator:

- runs on an existing pool, checked once (missing or not active fails at once, with the reason);
- creates one job per (dag, task, data interval) with a deterministic id, so a retried task finds
  the job it created: it re-attaches, adds only the missing tasks, and a finished job goes straight
  to results. There is never a second job for one window;
- fans out one task per input blob from a template (argv placeholders, never a shell string), with
  least-privilege SAS for inputs (read) and for the output container (create/write);
- waits with :class:`~airflow_provider_logproc.triggers.batch.AzureBatchJobTrigger` (one
  ``taskcounts`` request per poll), deferred or inline; a timeout terminates the job.
"""

from __future__ import annotations

import ast
import asyncio
import time
from collections.abc import Mapping, Sequence
from datetime import timedelta
from functools import cached_property
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from airflow.providers.common.compat.sdk import AirflowException, BaseOperator, BaseOperatorLink, XCom, conf

from airflow_provider_logproc.batch_jobs import (
    INPUT_SAS_PERMISSION,
    OUTPUT_DIR,
    OUTPUT_SAS_PERMISSION,
    TEMPLATE_PLACEHOLDERS,
    BatchSpecError,
    FanOutInput,
    JobOutcome,
    OutputDestination,
    build_fan_out_task_specs,
    build_task_specs,
    chunked,
    classify_add_results,
    derive_job_id,
    evaluate_tasks,
    format_counts,
    output_blob_urls,
    sas_lifetime,
    split_blob_url,
    tail_text,
    unknown_placeholders,
    validate_batch_id,
)
from airflow_provider_logproc.triggers.batch import AzureBatchJobTrigger, is_transient

# The Azure SDKs (azure.batch, azure.core, azure.storage.blob through sas.py) and the hook built on
# the official AzureBatchHook are imported in the methods that run the job: this module is imported
# whenever a DAG file using the operator is parsed, and parsing must stay cheap.
if TYPE_CHECKING:
    from airflow.providers.common.compat.sdk import Context, TaskInstanceKey
    from azure.batch import BatchClient
    from azure.batch import models as batch_models

    from airflow_provider_logproc.hooks.batch import AzureBatchJobHook

PORTAL_URL_XCOM_KEY = "batch_job_portal_url"
LOG_TAIL_BYTES = 2048
LIST_PAGE_SIZE = 1000  # the most Batch returns per page; the pager follows odata.nextLink
MAX_FAILED_TASK_LOGS = 20
MAX_ADD_ATTEMPTS = 5
SERVER_SIDE_TERMINATE_WAIT = 60.0


class AzureBatchJobLink(BaseOperatorLink):
    """The job in the Azure portal (pushed to XCom by the operator when it knows the job)."""

    name = "Azure Batch job"

    def get_link(self, operator: BaseOperator, *, ti_key: TaskInstanceKey) -> str:
        return XCom.get_value(key=PORTAL_URL_XCOM_KEY, ti_key=ti_key) or ""


def portal_url(job_id: str, details: Mapping[str, str | None]) -> str:
    """The job's page in the Azure portal; without subscription and resource group, the account list."""
    account = details.get("account_name")
    subscription, group = details.get("subscription_id"), details.get("resource_group")
    if account and subscription and group:
        return (
            "https://portal.azure.com/#resource/subscriptions/"
            f"{quote(subscription)}/resourceGroups/{quote(group)}/providers/Microsoft.Batch/batchAccounts/"
            f"{quote(account)}/jobs/{quote(job_id)}"
        )
    return "https://portal.azure.com/#browse/Microsoft.Batch%2FbatchAccounts"


class AzureBatchJobOperator(BaseOperator):
    """Run a Batch job on an existing pool: explicit tasks, or one task per input blob.

    :param pool_id: an existing pool (checked once: it must exist and be active).
    :param azure_batch_conn_id: ``azure_batch`` connection (account name, key, extra ``account_url``).
    :param job_id: the job id; default derived from dag, task and data interval (deterministic).
    :param tasks: explicit task specs: dicts with ``id`` and one of ``command_line`` (string, used as is),
        ``command`` (argv list, quoted with ``shlex.join``) or ``commands`` (+ ``interpreter``, default
        ``/bin/sh -e -c``); optional ``container`` (``image``, ``run_options``, ``registry``,
        ``working_directory``), ``environment`` (dict), ``resource_files`` (URLs or dicts),
        ``output_files``, ``constraints`` (``max_wall_clock_time``, ``retention_time``,
        ``max_task_retry_count``), ``required_slots``, ``display_name``.
    :param fan_out_inputs: input blob URLs (e.g. the upload step's parts): one task per input.
    :param task_template: for fan-out: ``command`` (argv with placeholders ``{input_file}``,
        ``{output_dir}``, ``{task_id}``, ``{part_name}`` substituted inside each argument),
        ``environment``, ``constraints``, ``output_file_pattern`` (relative to ``{output_dir}``, default
        every file under it), ``container``, ``required_slots``, ``resource_files``, ``display_name``.
        The program creates ``{output_dir}`` (``output``) in the task's working directory.
    :param wasb_conn_id: issue short-lived SAS from this ``wasb`` connection (read for inputs,
        create/write for the output container). Without it inputs are used as given.
    :param output_container: container where tasks upload ``{output_dir}`` (needs ``wasb_conn_id``).
    :param create_output_container: create ``output_container`` when it does not exist (Batch does not:
        its uploads fail with ``ContainerNotFound``).
    :param output_prefix: blob prefix for the outputs (default: the job id); each task writes under
        ``<prefix>/<task id>/``.
    :param timeout: how long to wait for the tasks; then the job is terminated and the task fails.
    :param poll_interval: seconds between task-count requests.
    :param delete_job_on_completion: delete the job after a successful run (failed jobs are kept to inspect).
    :param transient_error_budget: seconds of consecutive transient errors tolerated while waiting.
    :param deferrable: wait in the triggerer (default ``[operators] default_deferrable``).

    Returns (XCom) ``{"job_id", "tasks": [{"id", "state", "exit_code"}], "outputs": [blob URLs, no SAS]}``.
    """

    template_fields: Sequence[str] = (
        "azure_batch_conn_id",
        "pool_id",
        "job_id",
        "tasks",
        "fan_out_inputs",
        "task_template",
        "wasb_conn_id",
        "output_container",
        "output_prefix",
    )
    template_fields_renderers = {"tasks": "json", "task_template": "json", "fan_out_inputs": "json"}
    operator_extra_links = (AzureBatchJobLink(),)
    ui_color = "#0078d4"

    def __init__(
        self,
        *,
        pool_id: str,
        azure_batch_conn_id: str = "azure_batch_default",
        job_id: str | None = None,
        tasks: list[dict[str, Any]] | None = None,
        fan_out_inputs: list[str] | str | None = None,
        task_template: dict[str, Any] | None = None,
        wasb_conn_id: str | None = None,
        output_container: str | None = None,
        output_prefix: str | None = None,
        create_output_container: bool = True,
        timeout: timedelta | float = timedelta(hours=2),
        poll_interval: float = 15,
        delete_job_on_completion: bool = False,
        transient_error_budget: float = 300,
        deferrable: bool = conf.getboolean("operators", "default_deferrable", fallback=False),
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        if (tasks is None) == (fan_out_inputs is None):
            raise ValueError(
                f"{self.task_id}: give either tasks or fan_out_inputs (with task_template), not both or neither"
            )
        if fan_out_inputs is not None and task_template is None:
            raise ValueError(f"{self.task_id}: fan_out_inputs needs a task_template")
        if output_container is not None and wasb_conn_id is None:
            raise ValueError(f"{self.task_id}: output_container needs wasb_conn_id to issue the write SAS")
        self.pool_id = pool_id
        self.azure_batch_conn_id = azure_batch_conn_id
        self.job_id = job_id
        self.tasks = tasks
        self.fan_out_inputs = fan_out_inputs
        self.task_template = task_template
        self.wasb_conn_id = wasb_conn_id
        self.output_container = output_container
        self.output_prefix = output_prefix
        self.timeout = timeout if isinstance(timeout, timedelta) else timedelta(seconds=float(timeout))
        if self.timeout <= timedelta(0):
            raise ValueError(f"{self.task_id}: timeout must be positive")
        self.poll_interval = float(poll_interval)
        self.delete_job_on_completion = delete_job_on_completion
        self.create_output_container = create_output_container
        self.transient_error_budget = float(transient_error_budget)
        self.deferrable = deferrable
        self._active_job_id: str | None = None

    # -- clients ---------------------------------------------------------------------------------

    @cached_property
    def hook(self) -> AzureBatchJobHook:
        from airflow_provider_logproc.hooks.batch import AzureBatchJobHook

        return AzureBatchJobHook(self.azure_batch_conn_id)

    @cached_property
    def client(self) -> BatchClient:
        return self.hook.get_conn()

    # -- execute ---------------------------------------------------------------------------------

    def execute(self, context: Context) -> dict[str, Any] | None:
        job_id = self.resolve_job_id(context)
        self._active_job_id = job_id
        self._push_portal_link(context, job_id)
        finished = self.prepare_job(context, job_id)
        deadline = time.time() + self.timeout.total_seconds()
        if finished:
            self.log.info("Batch job %s already finished: going straight to its results", job_id)
            return self.finish(job_id)
        return self.wait(context, job_id, deadline)

    def execute_complete(self, context: Context, event: dict[str, Any], deadline: float | None = None) -> Any:
        """Resume after the trigger: read the tasks, log their exit codes, fail or return the results."""
        from azure.batch import models as batch_models

        job_id = event["job_id"]
        self._active_job_id = job_id
        status = event["status"]
        self.log.info("Batch job %s: trigger reported %s: %s", job_id, status, event.get("message"))
        if status == "timeout":
            self.terminate_job(job_id, f"Airflow task {self.task_id} timed out after {self.timeout}", wait=True)
            raise AirflowException(
                f"Batch job {job_id} timed out after {self.timeout} and was terminated"
                + (f" ({format_counts(event['counts'])})" if event.get("counts") else "")
            )
        if status not in ("success", "failed"):
            raise AirflowException(f"Waiting for Batch job {job_id} failed: {event.get('message')}")
        outcome = self.read_outcome(job_id)
        if outcome.unfinished and deadline is not None and time.time() < deadline:
            job = self.client.get_job(job_id, select=["id", "state"])
            if job.state not in (batch_models.BatchJobState.COMPLETED, batch_models.BatchJobState.TERMINATING):
                # Task counts can lag behind the task list; keep waiting with the same deadline.
                self.log.info(
                    "Batch job %s: %d task(s) not completed yet: waiting again", job_id, len(outcome.unfinished)
                )
                return self.wait(context, job_id, deadline)
        return self.finish(job_id, outcome)

    def on_kill(self) -> None:
        if self._active_job_id:
            self.terminate_job(self._active_job_id, f"Airflow task {self.task_id} was killed", wait=False)

    # -- job ids and specs -------------------------------------------------------------------------

    def resolve_job_id(self, context: Context) -> str:
        if self.job_id:
            return validate_batch_id(self.job_id, "job_id")
        dag_run = context.get("dag_run")
        return derive_job_id(
            self.dag_id,
            self.task_id,
            context.get("data_interval_start"),
            context.get("data_interval_end"),
            run_id=getattr(dag_run, "run_id", None) or context.get("run_id"),
        )

    def build_specs(self, job_id: str) -> list[dict[str, Any]]:
        from airflow_provider_logproc.sas import SasError

        try:
            if self.tasks is not None:
                if not isinstance(self.tasks, list | tuple):
                    raise BatchSpecError(f"tasks must be a list of task specs, got {type(self.tasks).__name__}")
                return build_task_specs(self.tasks)
            inputs = normalize_inputs(self.fan_out_inputs)
            unknown = unknown_placeholders(self.task_template or {})
            if unknown:
                self.log.warning(
                    "task_template: %s are not placeholders and stay as written (placeholders: %s)",
                    ", ".join(f"{{{name}}}" for name in unknown),
                    ", ".join(f"{{{name}}}" for name in TEMPLATE_PLACEHOLDERS),
                )
            expiry = sas_lifetime(self.timeout)
            fan_out = [FanOutInput(uri, self._input_download_url(uri, expiry)) for uri in inputs]
            return build_fan_out_task_specs(fan_out, self.task_template or {}, self._output_destination(job_id, expiry))
        except (BatchSpecError, SasError) as error:
            raise AirflowException(f"{self.task_id}: {error}") from None

    @cached_property
    def _wasb_client(self) -> Any:
        from airflow.providers.microsoft.azure.hooks.wasb import WasbHook

        return WasbHook(wasb_conn_id=self.wasb_conn_id or "wasb_default").get_conn()

    def _input_download_url(self, uri: str, expiry: timedelta) -> str:
        from airflow_provider_logproc.sas import blob_sas_url

        if not self.wasb_conn_id:
            return uri
        container, blob = split_blob_url(uri, self._wasb_client.url)
        return blob_sas_url(self._wasb_client, container, blob, permission=INPUT_SAS_PERMISSION, expiry=expiry)

    def _effective_output_prefix(self, job_id: str) -> str:
        return (self.output_prefix if self.output_prefix is not None else job_id).strip("/")

    def _output_destination(self, job_id: str, expiry: timedelta) -> OutputDestination | None:
        from airflow_provider_logproc.sas import container_sas_url

        if not self.output_container:
            return None
        if self.create_output_container:
            from azure.core.exceptions import ResourceExistsError

            try:
                self._wasb_client.create_container(self.output_container)
                self.log.info("created the output container %s", self.output_container)
            except ResourceExistsError:
                pass
        sas_url = container_sas_url(
            self._wasb_client, self.output_container, permission=OUTPUT_SAS_PERMISSION, expiry=expiry
        )
        return OutputDestination(sas_url, self._effective_output_prefix(job_id))

    # -- job preparation ------------------------------------------------------------------------------

    def prepare_job(self, context: Context, job_id: str) -> bool:
        """Create the job or re-attach to it; add missing tasks. True if the job already finished."""
        job = self._get_job(job_id)
        if job is None:
            self.check_pool()
            specs = self.build_specs(job_id)
            if self._create_job(context, job_id):
                self.log.info("Created Batch job %s on pool %s with %d task(s)", job_id, self.pool_id, len(specs))
                self.add_tasks(job_id, specs)
                self._enable_auto_terminate(job_id)
                return False
            job = self._get_job(job_id)
            if job is None:
                raise AirflowException(f"Batch job {job_id} exists according to the service but cannot be read")
            return self._reattach(job_id, job, specs)
        return self._reattach(job_id, job, None)

    def _create_job(self, context: Context, job_id: str) -> bool:
        """Create the job; False if it exists already (another attempt created it meanwhile).

        Throttling (429) and server errors are retried here like a lost answer: the SDK does not
        retry this POST, and failing the Airflow task would wait a whole retry delay for a burst
        that lasts seconds.
        """
        from azure.core.exceptions import (
            HttpResponseError,
            ResourceExistsError,
            ServiceRequestError,
            ServiceResponseError,
        )

        for attempt in range(1, MAX_ADD_ATTEMPTS + 1):
            try:
                self.client.create_job(self._job_options(context, job_id))
                return True
            except ResourceExistsError:
                return False
            except (ServiceRequestError, ServiceResponseError, HttpResponseError) as error:
                if not is_transient(error) or attempt == MAX_ADD_ATTEMPTS:
                    raise
                self.log.warning("Batch job %s: creating the job failed (%s): trying again", job_id,
                                 type(error).__name__)
                # The answer may have been lost after the job was created: look first.
                if self._get_job(job_id) is not None:
                    return False
                time.sleep(min(2**attempt, 10))
        raise AssertionError("unreachable")  # the loop returns or raises

    def _reattach(self, job_id: str, job: Any, specs: list[dict[str, Any]] | None) -> bool:
        from azure.batch import models as batch_models

        pool_id = job.pool_info.pool_id if job.pool_info else None
        if pool_id and pool_id != self.pool_id:
            raise AirflowException(
                f"Batch job {job_id} already exists on pool {pool_id!r}, not {self.pool_id!r}: pass another job_id "
                "or delete that job"
            )
        state = job.state
        if state in (batch_models.BatchJobState.COMPLETED,):
            return True
        if state == batch_models.BatchJobState.DELETING:
            raise AirflowException(f"Batch job {job_id} is being deleted: retry once it is gone")
        if specs is None:
            self.check_pool()
            specs = self.build_specs(job_id)
        existing = self.existing_task_ids(job_id)
        missing = [spec for spec in specs if spec["id"].lower() not in existing]
        self.log.info(
            "Re-attaching to Batch job %s (state %s): %d task(s) already there, %d to add",
            job_id,
            enum_text(state),
            len(specs) - len(missing),
            len(missing),
        )
        if state == batch_models.BatchJobState.TERMINATING:
            return False
        self.add_tasks(job_id, missing)
        if job.all_tasks_complete_mode != batch_models.BatchAllTasksCompleteMode.TERMINATE_JOB:
            self._enable_auto_terminate(job_id)
        return False

    def _get_job(self, job_id: str) -> Any | None:
        from azure.core.exceptions import ResourceNotFoundError

        try:
            return self.client.get_job(job_id)
        except ResourceNotFoundError:
            return None

    def check_pool(self) -> None:
        """The pool must exist and be active; warn when it has no nodes to run on."""
        from azure.batch import models as batch_models
        from azure.core.exceptions import ResourceNotFoundError

        try:
            pool = self.client.get_pool(self.pool_id)
        except ResourceNotFoundError:
            raise AirflowException(
                f"Batch pool {self.pool_id!r} does not exist in account {self.hook.account_url()}: this operator "
                "runs jobs on an existing pool; create it first"
            ) from None
        if pool.state != batch_models.BatchPoolState.ACTIVE:
            raise AirflowException(f"Batch pool {self.pool_id!r} is {enum_text(pool.state)}, not active")
        if pool.allocation_state == batch_models.AllocationState.STOPPING:
            raise AirflowException(f"Batch pool {self.pool_id!r} is stopping a resize: tasks may never get nodes")
        if pool.allocation_state != batch_models.AllocationState.STEADY:
            # An autoscaling pool resizes often and still runs tasks: not a reason to fail.
            self.log.warning("Batch pool %s is %s", self.pool_id, enum_text(pool.allocation_state))
        targets = (pool.target_dedicated_nodes or 0) + (pool.target_low_priority_nodes or 0)
        if not pool.enable_auto_scale and targets == 0:
            self.log.warning("Batch pool %s targets no nodes: tasks will wait until the timeout", self.pool_id)

    def _job_options(self, context: Context, job_id: str) -> batch_models.BatchJobCreateOptions:
        from azure.batch import models as batch_models

        dag_run = context.get("dag_run")
        metadata = [
            {"name": "airflow_dag_id", "value": self.dag_id},
            {"name": "airflow_task_id", "value": self.task_id},
            {"name": "airflow_run_id", "value": str(getattr(dag_run, "run_id", "") or "")},
        ]
        return batch_models.BatchJobCreateOptions(
            {
                "id": job_id,
                "displayName": f"{self.dag_id}.{self.task_id}"[:1024],
                "poolInfo": {"poolId": self.pool_id},
                # Batch ends a job without tasks at once if it auto-terminates: switched on after
                # the tasks are added, as the Batch REST documentation prescribes.
                "onAllTasksComplete": "noaction",
                "metadata": metadata,
            }
        )

    def _enable_auto_terminate(self, job_id: str) -> None:
        from azure.batch import models as batch_models

        self.client.update_job(job_id, batch_models.BatchJobUpdateOptions({"onAllTasksComplete": "terminatejob"}))

    def existing_task_ids(self, job_id: str) -> set[str]:
        return {task.id.lower() for task in self.client.list_tasks(job_id, select=["id"])}

    def add_tasks(self, job_id: str, specs: Sequence[dict[str, Any]]) -> None:
        """Add tasks in collections of ≤ 100, reading each task's status; retry server-side errors."""
        from azure.batch import models as batch_models
        from azure.core.exceptions import (
            HttpResponseError,
            ResourceExistsError,
            ServiceRequestError,
            ServiceResponseError,
        )

        by_id = {spec["id"]: spec for spec in specs}
        for chunk in chunked(list(specs)):
            pending = [spec["id"] for spec in chunk]
            for attempt in range(1, MAX_ADD_ATTEMPTS + 1):
                group = batch_models.BatchTaskGroup({"value": [by_id[task_id] for task_id in pending]})
                try:
                    response = self.client.create_task_collection(job_id, group)
                except ResourceExistsError as error:
                    code = getattr(getattr(error, "error", None), "code", None)
                    raise AirflowException(
                        f"Batch job {job_id} no longer takes tasks ({code or error.status_code}): it finished "
                        "while tasks were being added. Delete the job to run this window again."
                    ) from None
                except (ServiceRequestError, ServiceResponseError, HttpResponseError) as error:
                    # The SDK does not retry a POST whose answer was lost; re-adding is safe (TaskExists).
                    if not is_transient(error) or attempt == MAX_ADD_ATTEMPTS:
                        raise
                    self.log.warning(
                        "Batch job %s: adding tasks failed (%s): trying again", job_id, type(error).__name__
                    )
                    time.sleep(min(2**attempt, 10))
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
                time.sleep(min(2**attempt, 10))
            else:
                raise AirflowException(f"Batch job {job_id}: could not add {len(pending)} task(s), e.g. {pending[:5]}")
        self.log.info("Batch job %s: %d task(s) added", job_id, len(specs))

    # -- waiting ----------------------------------------------------------------------------------

    def trigger_for(self, job_id: str, deadline: float) -> AzureBatchJobTrigger:
        return AzureBatchJobTrigger(
            job_id=job_id,
            azure_batch_conn_id=self.azure_batch_conn_id,
            deadline=deadline,
            poll_interval=self.poll_interval,
            transient_error_budget=self.transient_error_budget,
        )

    def wait(self, context: Context, job_id: str, deadline: float) -> Any:
        trigger = self.trigger_for(job_id, deadline)
        if self.deferrable:
            self.defer(trigger=trigger, method_name="execute_complete", kwargs={"deadline": deadline})
        # Non-deferrable: the same trigger, driven here, so both modes share one waiting rule.
        event = asyncio.run(first_event(trigger))
        return self.execute_complete(context, event, deadline)

    # -- results ----------------------------------------------------------------------------------

    def read_outcome(self, job_id: str) -> JobOutcome:
        return read_outcome(self.client, job_id)

    def finish(self, job_id: str, outcome: JobOutcome | None = None) -> dict[str, Any]:
        outcome = check_outcome(
            self.client, outcome or self.read_outcome(job_id), self.log, " Delete the job to run this window again."
        )
        outputs = self.list_outputs(job_id, [task.id for task in outcome.tasks])
        self.log.info(
            "Batch job %s: all %d task(s) succeeded, %d output blob(s)", job_id, len(outcome.tasks), len(outputs)
        )
        if self.delete_job_on_completion:
            self.client.begin_delete_job(job_id)
            self.log.info("Batch job %s: deletion requested", job_id)
        self._active_job_id = None
        return {"job_id": job_id, "tasks": [task.as_xcom() for task in outcome.tasks], "outputs": outputs}

    def list_outputs(self, job_id: str, task_ids: list[str]) -> list[str]:
        if not self.output_container:
            return []
        prefix = self._effective_output_prefix(job_id)
        container = self._wasb_client.get_container_client(self.output_container)
        names = container.list_blob_names(name_starts_with=f"{prefix}/" if prefix else None)
        return output_blob_urls(container.url, names, prefix, task_ids)

    def terminate_job(self, job_id: str, reason: str, *, wait: bool) -> None:
        # azure-batch 15.1 raises ValueError before sending when no options are given: always pass them.
        from azure.batch.models._models import BatchJobTerminateOptions
        from azure.core.exceptions import HttpResponseError, ResourceExistsError

        try:
            poller = self.client.begin_terminate_job(
                job_id, BatchJobTerminateOptions({"terminateReason": reason[:200]}), polling_interval=1
            )
            self.log.info("Batch job %s: terminate requested (%s)", job_id, reason)
            if wait:
                poller.result(timeout=SERVER_SIDE_TERMINATE_WAIT)
        except ResourceExistsError:
            self.log.info("Batch job %s was already completed", job_id)
        except HttpResponseError as error:
            self.log.warning("Batch job %s: terminate failed: HTTP %s", job_id, error.status_code)

    def _push_portal_link(self, context: Context, job_id: str) -> None:
        try:
            url = portal_url(job_id, self.hook.account_details())
        except Exception as error:
            self.log.debug("No portal link: %s", error)
            return
        context["ti"].xcom_push(key=PORTAL_URL_XCOM_KEY, value=url)


def enum_text(value: Any) -> str:
    """``active`` rather than ``BatchJobState.ACTIVE`` (str() of the SDK's str enums on Python 3.11)."""
    return str(getattr(value, "value", value))


def read_outcome(client: BatchClient, job_id: str) -> JobOutcome:
    """The job's tasks (all pages) reduced to what the result rules need."""
    tasks = client.list_tasks(job_id, select=["id", "state", "executionInfo"], max_results=LIST_PAGE_SIZE)
    return evaluate_tasks(job_id, tasks)


def check_outcome(client: BatchClient, outcome: JobOutcome, log: Any, unfinished_hint: str = "") -> JobOutcome:
    """The result rules shared by the operator and the sensor.

    Log each task's exit code and the stderr/stdout tails of failed tasks; fail naming the failed
    tasks and their exit codes, or the tasks a termination left unfinished.
    """
    job_id = outcome.job_id
    for task in outcome.tasks:
        log.info("Batch task %s: %s, exit code %s", task.id, task.state, task.exit_code)
    for task in outcome.failed[:MAX_FAILED_TASK_LOGS]:
        for file_name in ("stderr.txt", "stdout.txt"):
            log.info(
                "Batch task %s %s (tail):\n%s", task.id, file_name, task_file_tail(client, job_id, task.id, file_name)
            )
    if outcome.failed:
        raise AirflowException(outcome.failure_message())
    if outcome.unfinished or not outcome.tasks:
        raise AirflowException(
            f"Batch job {job_id} ended with {len(outcome.unfinished)} of {len(outcome.tasks)} task(s) not "
            f"completed (terminated, e.g. after a timeout or a kill).{unfinished_hint}"
        )
    return outcome


def task_file_tail(client: BatchClient, job_id: str, task_id: str, file_name: str) -> str:
    from azure.core.exceptions import HttpResponseError

    try:
        data = b""
        for chunk in client.download_task_file(job_id, task_id, file_name):
            data = (data + chunk)[-(LOG_TAIL_BYTES * 2) :]
        return tail_text(data, LOG_TAIL_BYTES) or "(empty)"
    except HttpResponseError as error:
        return f"(not available: HTTP {error.status_code})"


async def first_event(trigger: AzureBatchJobTrigger) -> dict[str, Any]:
    async for event in trigger.run():
        return event.payload
    raise AirflowException(f"the trigger for Batch job {trigger.job_id} ended without an event")


def normalize_inputs(value: Any) -> list[str]:
    """The fan-out inputs as a list of URLs: a list, a JSON/Python list literal (templated), or a
    mapping from the upload step holding them under ``uris``/``parts``/``blobs``."""
    if isinstance(value, str):
        text = value.strip()
        if text.startswith("["):
            try:
                value = ast.literal_eval(text)
            except (ValueError, SyntaxError):
                raise BatchSpecError("fan_out_inputs: cannot read this string as a list of URLs") from None
        else:
            value = [text]
    if isinstance(value, Mapping):
        for key in ("uris", "parts", "blobs", "urls"):
            if isinstance(value.get(key), list):
                value = value[key]
                break
        else:
            raise BatchSpecError(
                f"fan_out_inputs: a mapping needs a list under 'uris' or 'parts', got keys {sorted(value)}"
            )
    if not isinstance(value, list | tuple) or not all(isinstance(item, str) and item for item in value):
        raise BatchSpecError("fan_out_inputs must be a list of blob URLs")
    return list(value)


__all__ = ["OUTPUT_DIR", "AzureBatchJobLink", "AzureBatchJobOperator"]
