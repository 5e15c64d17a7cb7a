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

import asyncio
import time
from collections.abc import Mapping, Sequence
from datetime import timedelta
from functools import cached_property
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from airflow.providers.common.compat.sdk import AirflowException, BaseOperator, BaseOperatorLink, XCom, conf

from airflow_provider_logproc.azure_batch.errors import BatchSpecError
from airflow_provider_logproc.azure_batch.fan_out import (
    FanOutInput,
    OutputDestination,
    build_fan_out_task_specs,
    check_task_sources,
)
from airflow_provider_logproc.azure_batch.ids import derive_job_id, validate_batch_id
from airflow_provider_logproc.azure_batch.outcome import JobOutcome, format_counts
from airflow_provider_logproc.azure_batch.task_specs import (
    OUTPUT_DIR,
    TEMPLATE_PLACEHOLDERS,
    build_task_specs,
    normalize_inputs,
    unknown_placeholders,
)
from airflow_provider_logproc.azure_batch.urls import (
    INPUT_SAS_PERMISSION,
    OUTPUT_SAS_PERMISSION,
    output_blob_urls,
    sas_lifetime,
    split_blob_url,
)
from airflow_provider_logproc.triggers.batch import AzureBatchJobTrigger

# The Azure SDKs (azure.batch, azure.core, azure.storage.blob through sas.py) and the hook built on
# the official AzureBatchHook are imported in the methods that run the job: this module is imported
# whenever a DAG file using the operator is parsed, and parsing must stay cheap.
if TYPE_CHECKING:
    from airflow.providers.common.compat.sdk import Context, TaskInstanceKey

    from airflow_provider_logproc.hooks.batch import AzureBatchJobHook

PORTAL_URL_XCOM_KEY = "batch_job_portal_url"


class AzureBatchJobLink(BaseOperatorLink):
    """The job in the Azure portal (pushed to XCom by the operator when it knows the job)."""

    name = "Azure Batch job"

    def get_link(self, operator: BaseOperator, *, ti_key: TaskInstanceKey) -> str:
        return XCom.get_value(key=PORTAL_URL_XCOM_KEY, ti_key=ti_key) or ""


def portal_url(job_id: str, details: Mapping[str, str | None]) -> str:
    """Return the job's page in the Azure portal; without subscription and resource group, the account list."""
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
        check_task_sources(tasks=tasks, fan_out_inputs=fan_out_inputs, task_template=task_template,
                           output_container=output_container, wasb_conn_id=wasb_conn_id, task_id=self.task_id)
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
        # (input blob URLs, output blob URLs) of the finished job, for OpenLineage.
        self._lineage: tuple[list[str], list[str]] = ([], [])

    # -- clients ---------------------------------------------------------------------------------

    @cached_property
    def hook(self) -> AzureBatchJobHook:
        from airflow_provider_logproc.hooks.batch import AzureBatchJobHook

        return AzureBatchJobHook(self.azure_batch_conn_id)

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
        job_id = event["job_id"]
        self._active_job_id = job_id
        status = event["status"]
        self.log.info("Batch job %s: trigger reported %s: %s", job_id, status, event.get("message"))
        if status == "timeout":
            self.hook.terminate_job(job_id, f"Airflow task {self.task_id} timed out after {self.timeout}", wait=True)
            raise AirflowException(
                f"Batch job {job_id} timed out after {self.timeout} and was terminated"
                + (f" ({format_counts(event['counts'])})" if event.get("counts") else "")
            )
        if status not in ("success", "failed"):
            raise AirflowException(f"Waiting for Batch job {job_id} failed: {event.get('message')}")
        outcome = self.hook.read_outcome(job_id)
        if (outcome.unfinished and deadline is not None and time.time() < deadline
                and self.hook.get_job_state(job_id) not in ("completed", "terminating")):
            # Task counts can lag behind the task list; keep waiting with the same deadline.
            self.log.info("Batch job %s: %d task(s) not completed yet: waiting again", job_id, len(outcome.unfinished))
            return self.wait(context, job_id, deadline)
        return self.finish(job_id, outcome)

    def on_kill(self) -> None:
        if self._active_job_id:
            self.hook.terminate_job(self._active_job_id, f"Airflow task {self.task_id} was killed", wait=False)

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
        from airflow_provider_logproc.azure_batch.sas import SasError

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
        from airflow_provider_logproc.azure_batch.sas import blob_sas_url

        if not self.wasb_conn_id:
            return uri
        container, blob = split_blob_url(uri, self._wasb_client.url)
        return blob_sas_url(self._wasb_client, container, blob, permission=INPUT_SAS_PERMISSION, expiry=expiry)

    def _effective_output_prefix(self, job_id: str) -> str:
        return (self.output_prefix if self.output_prefix is not None else job_id).strip("/")

    def _output_destination(self, job_id: str, expiry: timedelta) -> OutputDestination | None:
        from airflow_provider_logproc.azure_batch.sas import container_sas_url

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
        job = self.hook.get_job(job_id)
        if job is None:
            self.hook.check_pool(self.pool_id)
            specs = self.build_specs(job_id)
            if self.hook.create_job_if_absent(self.job_spec(context, job_id)):
                self.log.info("Created Batch job %s on pool %s with %d task(s)", job_id, self.pool_id, len(specs))
                self.hook.add_tasks(job_id, specs)
                self.hook.enable_auto_terminate(job_id)
                return False
            job = self.hook.get_job(job_id)
            if job is None:
                raise AirflowException(f"Batch job {job_id} exists according to the service but cannot be read")
            return self._reattach(job_id, job, specs)
        return self._reattach(job_id, job, None)

    def _reattach(self, job_id: str, job: Any, specs: list[dict[str, Any]] | None) -> bool:
        from airflow_provider_logproc.hooks.batch import enum_text

        pool_id = job.pool_info.pool_id if job.pool_info else None
        if pool_id and pool_id != self.pool_id:
            raise AirflowException(
                f"Batch job {job_id} already exists on pool {pool_id!r}, not {self.pool_id!r}: pass another job_id "
                "or delete that job"
            )
        state = enum_text(job.state)
        if state == "completed":
            return True
        if state == "deleting":
            raise AirflowException(f"Batch job {job_id} is being deleted: retry once it is gone")
        if specs is None:
            self.hook.check_pool(self.pool_id)
            specs = self.build_specs(job_id)
        existing = self.hook.existing_task_ids(job_id)
        missing = [spec for spec in specs if spec["id"].lower() not in existing]
        self.log.info(
            "Re-attaching to Batch job %s (state %s): %d task(s) already there, %d to add",
            job_id,
            state,
            len(specs) - len(missing),
            len(missing),
        )
        if state == "terminating":
            return False
        self.hook.add_tasks(job_id, missing)
        if enum_text(job.all_tasks_complete_mode) != "terminatejob":
            self.hook.enable_auto_terminate(job_id)
        return False

    def job_spec(self, context: Context, job_id: str) -> dict[str, Any]:
        """Describe the job as Batch REST JSON: on the pool, named after the Airflow task, its run in the metadata."""
        dag_run = context.get("dag_run")
        metadata = [
            {"name": "airflow_dag_id", "value": self.dag_id},
            {"name": "airflow_task_id", "value": self.task_id},
            {"name": "airflow_run_id", "value": str(getattr(dag_run, "run_id", "") or "")},
        ]
        return {
            "id": job_id,
            "displayName": f"{self.dag_id}.{self.task_id}"[:1024],
            "poolInfo": {"poolId": self.pool_id},
            # Batch ends a job without tasks at once if it auto-terminates: switched on after
            # the tasks are added, as the Batch REST documentation prescribes.
            "onAllTasksComplete": "noaction",
            "metadata": metadata,
        }

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

    def finish(self, job_id: str, outcome: JobOutcome | None = None) -> dict[str, Any]:
        outcome = self.hook.check_outcome(
            outcome or self.hook.read_outcome(job_id), " Delete the job to run this window again."
        )
        outputs = self.list_outputs(job_id, [task.id for task in outcome.tasks])
        self.log.info(
            "Batch job %s: all %d task(s) succeeded, %d output blob(s)", job_id, len(outcome.tasks), len(outputs)
        )
        if self.delete_job_on_completion:
            self.hook.delete_job(job_id)
        self._active_job_id = None
        self._lineage = (self._input_urls(), outputs)
        return {"job_id": job_id, "tasks": [task.as_xcom() for task in outcome.tasks], "outputs": outputs}

    def _input_urls(self) -> list[str]:
        try:
            return normalize_inputs(self.fan_out_inputs) if self.fan_out_inputs is not None else []
        except BatchSpecError:
            return []

    def get_openlineage_facets_on_complete(self, task_instance: Any) -> Any:
        """Return the OpenLineage inputs (the fanned-out blobs) and outputs (the blobs the tasks wrote)."""
        from airflow_provider_logproc.lineage.datasets import blob_dataset, blob_datasets, operator_lineage

        inputs, outputs = self._lineage
        return operator_lineage(blob_datasets(inputs), [blob_dataset(url, output=True) for url in outputs])

    def list_outputs(self, job_id: str, task_ids: list[str]) -> list[str]:
        if not self.output_container:
            return []
        prefix = self._effective_output_prefix(job_id)
        container = self._wasb_client.get_container_client(self.output_container)
        names = container.list_blob_names(name_starts_with=f"{prefix}/" if prefix else None)
        return output_blob_urls(container.url, names, prefix, task_ids)

    def _push_portal_link(self, context: Context, job_id: str) -> None:
        try:
            url = portal_url(job_id, self.hook.account_details())
        except Exception as error:
            self.log.debug("No portal link: %s", error)
            return
        context["ti"].xcom_push(key=PORTAL_URL_XCOM_KEY, value=url)


async def first_event(trigger: AzureBatchJobTrigger) -> dict[str, Any]:
    async for event in trigger.run():
        return event.payload
    raise AirflowException(f"the trigger for Batch job {trigger.job_id} ended without an event")


__all__ = ["OUTPUT_DIR", "AzureBatchJobLink", "AzureBatchJobOperator"]
