"""AzureBatchJobSensor: wait for a Batch job created elsewhere, judged like AzureBatchJobOperator.

Waiting costs one ``taskcounts`` request per poke or poll, whatever the number of tasks; deferrable
mode hands the wait to :class:`~airflow_provider_logproc.triggers.batch.AzureBatchJobTrigger`. When
every task has completed, the tasks are listed once and the operator's rules apply: each task's exit
code is logged, failed tasks get their stderr/stdout tails in the log, and the sensor fails naming
the failed tasks and exit codes. The sensor never terminates the job: it is not its job.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from functools import cached_property
from typing import TYPE_CHECKING, Any

from airflow.providers.common.compat.sdk import (
    AirflowException,
    AirflowSensorTimeout,
    BaseSensorOperator,
    Context,
    PokeReturnValue,
    conf,
)

from airflow_provider_logproc.azure_batch.ids import validate_batch_id
from airflow_provider_logproc.azure_batch.outcome import counts_state, format_counts
from airflow_provider_logproc.azure_batch.retry import is_transient
from airflow_provider_logproc.sensors._deferral import defer_to, trigger_event
from airflow_provider_logproc.triggers.batch import AzureBatchJobTrigger

# azure.core and the Batch hook (official AzureBatchHook, azure.batch, azure.identity) are imported
# where they are used, to keep DAG file parsing cheap.
if TYPE_CHECKING:
    from airflow_provider_logproc.hooks.batch import AzureBatchJobHook



class AzureBatchJobSensor(BaseSensorOperator):
    """Wait until every task of an existing Batch job has completed; fail if any failed.

    :param job_id: the Batch job (templated).
    :param azure_batch_conn_id: ``azure_batch`` connection (account name, key, extra ``account_url``).
    :param transient_error_budget: seconds of consecutive transient errors (429, 5xx, connection)
        tolerated while deferred; in poke mode a transient error just waits for the next poke.
    :param deferrable: wait in the triggerer (default ``[operators] default_deferrable``).

    ``poke_interval``, ``timeout``, ``mode`` and ``soft_fail`` work as for any sensor. Returns (XCom)
    ``{"job_id", "tasks": [{"id", "state", "exit_code"}]}``.
    """

    template_fields: Sequence[str] = ("job_id", "azure_batch_conn_id")
    ui_color = "#0078d4"

    def __init__(
        self,
        *,
        job_id: str,
        azure_batch_conn_id: str = "azure_batch_default",
        transient_error_budget: float = 300,
        deferrable: bool = conf.getboolean("operators", "default_deferrable", fallback=False),
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.job_id = job_id
        self.azure_batch_conn_id = azure_batch_conn_id
        self.transient_error_budget = float(transient_error_budget)
        self.deferrable = deferrable
        self._last_counts: dict[str, int] | None = None

    @cached_property
    def hook(self) -> AzureBatchJobHook:
        from airflow_provider_logproc.hooks.batch import AzureBatchJobHook

        return AzureBatchJobHook(self.azure_batch_conn_id)

    def _read_counts(self) -> dict[str, int] | None:
        """Task counts, or None after a transient error (the next poke tries again)."""
        from azure.core.exceptions import ResourceNotFoundError

        job_id = validate_batch_id(self.job_id, "job_id")
        try:
            counts = self.hook.get_task_counts(job_id)
        except ResourceNotFoundError:
            raise AirflowException(f"Batch job {job_id} does not exist") from None
        except Exception as error:
            if not is_transient(error):
                raise
            self.log.warning("Batch job %s: transient error reading task counts: %s", job_id, type(error).__name__)
            return None
        if counts != self._last_counts:
            self.log.info("Batch job %s: %s", job_id, format_counts(counts))
            self._last_counts = counts
        return counts

    def _result(self) -> dict[str, Any]:
        outcome = self.hook.check_outcome(self.hook.read_outcome(self.job_id))
        self.log.info("Batch job %s: all %d task(s) succeeded", self.job_id, len(outcome.tasks))
        return {"job_id": self.job_id, "tasks": [task.as_xcom() for task in outcome.tasks]}

    def poke(self, context: Context) -> bool | PokeReturnValue:
        counts = self._read_counts()
        if counts is None or counts_state(counts) == "running":
            return False
        return PokeReturnValue(is_done=True, xcom_value=self._result())

    def execute(self, context: Context) -> Any:
        if not self.deferrable:
            return super().execute(context)
        counts = self._read_counts()
        if counts is not None and counts_state(counts) != "running":
            return self._result()
        defer_to(self, AzureBatchJobTrigger(
            job_id=self.job_id,
            azure_batch_conn_id=self.azure_batch_conn_id,
            deadline=time.time() + self.timeout,
            poll_interval=self.poke_interval,
            transient_error_budget=self.transient_error_budget,
        ))

    def execute_complete(self, context: Context, event: dict[str, Any] | None = None) -> Any:
        """Back from the trigger: judge the tasks, or time out, or report why waiting failed."""
        event = trigger_event(event, "AzureBatchJobTrigger")
        status = event.get("status")
        if status in ("success", "failed"):
            return self._result()
        if status == "timeout":
            message = f"Batch job {self.job_id} did not finish within {self.timeout} s"
            if event.get("counts"):
                message += f" ({format_counts(event['counts'])})"
            # Logged here too: with soft_fail, resume_execution replaces it with a generic skip message.
            self.log.error("%s", message)
            raise AirflowSensorTimeout(message)
        raise AirflowException(event.get("message") or f"unexpected trigger event {event!r}")


__all__ = ["AzureBatchJobSensor"]
