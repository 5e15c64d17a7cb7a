"""AzureBatchJobTrigger: waits for a Batch job's tasks with one ``taskcounts`` request per poll.

The official ``AzureBatchTrigger`` lists every task of the job on every poll (a 10,000-task job costs
100 paged requests each time, through a thread). This trigger asks the service only for the job's
task counts (``GET /jobs/{id}/taskcounts``), with the async client, whatever the number of tasks.

It has no side effects (it may run twice, e.g. after a triggerer restart) and keeps its deadline as
an absolute time, so a trigger rebuilt from ``serialize()`` resumes with the time that was left.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

from airflow.triggers.base import BaseTrigger, TriggerEvent

from airflow_provider_logproc.azure_batch.outcome import counts_state, format_counts, task_counts
from airflow_provider_logproc.azure_batch.retry import backoff_delay, is_transient, retry_after

# The hook (the official AzureBatchHook, azure.batch, azure.identity) and azure.core are imported
# where they are used: the Batch operator imports this module when a DAG file is parsed.

FIRST_POLL_INTERVAL = 1.0
POLL_INTERVAL_GROWTH = 0.1


class AzureBatchJobTrigger(BaseTrigger):
    """Fire once when every task of a Batch job has completed, or when the deadline passes.

    :param job_id: the Batch job to wait for.
    :param azure_batch_conn_id: the ``azure_batch`` connection.
    :param deadline: absolute time (``time.time()`` seconds) at which waiting ends with ``timeout``.
    :param poll_interval: the longest pause between task-count requests. Polls start a second apart
        and the pause grows to a tenth of the time waited so far, up to this: a short job is seen
        finished within a second or so, a long one costs no more requests than a fixed interval.
    :param transient_error_budget: seconds of consecutive transient errors (429, 5xx, connection)
        tolerated, retried with exponential backoff, before the trigger gives up with ``error``.
    :param max_backoff: longest pause between retries (a ``Retry-After`` from the service may ask more).
    :param stall_check_every: after this many polls without any change in the counts, look at the
        job's state once (one extra request): a job terminated with tasks still active never changes
        its counts again, and waiting for the deadline would only hide that. 0 turns it off.

    Event payload: ``status`` (``success`` / ``failed`` / ``timeout`` / ``error``), ``job_id``,
    ``counts`` (active, running, completed, succeeded, failed; ``None`` if never read), ``message``.
    """

    def __init__(
        self,
        job_id: str,
        azure_batch_conn_id: str,
        deadline: float,
        poll_interval: float = 15.0,
        transient_error_budget: float = 300.0,
        max_backoff: float = 30.0,
        stall_check_every: int = 20,
    ) -> None:
        super().__init__()
        self.job_id = job_id
        self.azure_batch_conn_id = azure_batch_conn_id
        self.deadline = float(deadline)
        self.poll_interval = float(poll_interval)
        self.transient_error_budget = float(transient_error_budget)
        self.max_backoff = float(max_backoff)
        self.stall_check_every = int(stall_check_every)

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return (
            f"{self.__class__.__module__}.{self.__class__.__name__}",
            {
                "job_id": self.job_id,
                "azure_batch_conn_id": self.azure_batch_conn_id,
                "deadline": self.deadline,
                "poll_interval": self.poll_interval,
                "transient_error_budget": self.transient_error_budget,
                "max_backoff": self.max_backoff,
                "stall_check_every": self.stall_check_every,
            },
        )

    def _event(self, status: str, counts: dict[str, int] | None, message: str) -> TriggerEvent:
        return TriggerEvent({"status": status, "job_id": self.job_id, "counts": counts, "message": message})

    async def run(self) -> AsyncIterator[TriggerEvent]:
        # The SDK's own retry policy is off: retries happen here, visible in the log and bounded by
        # the budget and the deadline, so one poll is exactly one request while the service is healthy.
        from airflow_provider_logproc.hooks.batch import AzureBatchJobHook

        hook = AzureBatchJobHook(self.azure_batch_conn_id, retry_total=0)
        try:
            client = await hook.get_async_conn()
        except Exception as error:
            yield self._event("error", None, f"Batch job {self.job_id}: cannot build the Batch client: {error}")
            return
        try:
            async with client:
                event = await self._wait(client)
        finally:
            await hook.close_async_credential()
        yield event

    async def _job_ended(self, client: Any) -> bool:
        """Whether the job has completed (one request); a failed look just says no."""
        try:
            job = await client.get_job(self.job_id, select=["id", "state"])
        except Exception as error:
            self.log.warning("Batch job %s: cannot read the job's state: %s", self.job_id, _describe(error))
            return False
        return job.state == "completed"

    def _next_poll_delay(self, waited: float) -> float:
        return min(self.poll_interval, max(FIRST_POLL_INTERVAL, waited * POLL_INTERVAL_GROWTH),
                   max(0.0, self.deadline - time.time()))

    async def _wait(self, client: Any) -> TriggerEvent:
        started = time.monotonic()
        last_counts: dict[str, int] | None = None
        unchanged_polls = 0
        first_error_at: float | None = None
        attempt = 0
        final_poll_done = False
        while True:
            now = time.time()
            past_deadline = now >= self.deadline
            if past_deadline and final_poll_done:
                return self._event(
                    "timeout",
                    last_counts,
                    f"Batch job {self.job_id} did not finish before its deadline"
                    + (f" ({format_counts(last_counts)})" if last_counts else ""),
                )
            final_poll_done = past_deadline
            try:
                result = await client.get_job_task_counts(self.job_id)
            except Exception as error:
                if not is_transient(error):
                    return self._event("error", last_counts, f"Batch job {self.job_id}: {_describe(error)}")
                if past_deadline:
                    return self._event(
                        "timeout",
                        last_counts,
                        f"Batch job {self.job_id} did not finish before its deadline (last read failed: "
                        f"{_describe(error)})",
                    )
                now = time.time()
                first_error_at = first_error_at if first_error_at is not None else now
                attempt += 1
                spent = now - first_error_at
                if spent >= self.transient_error_budget:
                    return self._event(
                        "error",
                        last_counts,
                        f"Batch job {self.job_id}: gave up after {attempt} transient error(s) over {spent:.0f} s "
                        f"(budget {self.transient_error_budget:.0f} s); last: {_describe(error)}",
                    )
                # Never sleep past the budget or the deadline: the last poll happens at the deadline.
                initial = min(1.0, self.max_backoff)
                delay = max(
                    backoff_delay(attempt, initial=initial, maximum=self.max_backoff), retry_after(error) or 0.0
                )
                delay = min(delay, self.transient_error_budget - spent, max(0.0, self.deadline - now))
                self.log.warning(
                    "Batch job %s: transient error reading task counts (attempt %d, retry in %.1f s): %s",
                    self.job_id,
                    attempt,
                    delay,
                    _describe(error),
                )
                await asyncio.sleep(delay)
                continue
            first_error_at = None
            attempt = 0
            counts = task_counts(result)
            if counts != last_counts:
                self.log.info("Batch job %s: %s", self.job_id, format_counts(counts))
                last_counts = counts
                unchanged_polls = 0
            else:
                unchanged_polls += 1
            state = counts_state(counts)
            if state != "running":
                return self._event(
                    state,
                    counts,
                    f"Batch job {self.job_id}: all {counts['completed']} task(s) completed, {counts['failed']} failed",
                )
            stalled = bool(self.stall_check_every) and unchanged_polls % max(1, self.stall_check_every) == 0
            if stalled and unchanged_polls and await self._job_ended(client):
                unfinished = counts["active"] + counts["running"]
                return self._event(
                    "failed",
                    counts,
                    f"Batch job {self.job_id} ended (terminated) with {unfinished} task(s) not completed",
                )
            if past_deadline:
                continue
            await asyncio.sleep(self._next_poll_delay(time.monotonic() - started))


def _describe(error: BaseException) -> str:
    """Describe an error in one line without request details (URLs and headers stay out of the log)."""
    from azure.core.exceptions import HttpResponseError

    if isinstance(error, HttpResponseError):
        code = getattr(getattr(error, "error", None), "code", None)
        status = error.status_code
        reason = error.reason or ""
        return f"HTTP {status} {reason}".strip() + (f" ({code})" if code else "")
    return f"{type(error).__name__}: {error}"


__all__ = ["AzureBatchJobTrigger"]
