"""KafkaWindowCompleteSensor: wait until late records of a time window have had their chance to arrive.

A daily run starts at midnight, but devices that were offline still send records of the day that
just ended; consuming right away loses them. Put this sensor before ``KafkaBatchConsumeOperator``:
with the same defaults (connection ``kafka_default``, window = the data interval) the two cover the
same window without repeating arguments.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Sequence
from typing import Any

from airflow.providers.common.compat.sdk import (
    AirflowException,
    AirflowSensorTimeout,
    BaseSensorOperator,
    Context,
    PokeReturnValue,
    conf,
)

from airflow_provider_logproc._templating import normalize_topics, resolve_window, to_seconds
from airflow_provider_logproc.kafka.progress import (
    KafkaUnavailableError,
    KafkaWindowConfigError,
    WindowProgress,
    build_consumer_config,
    check_window,
    timeout_message,
)
from airflow_provider_logproc.sensors._deferral import defer_to, trigger_event
from airflow_provider_logproc.triggers.kafka import KafkaWindowCompleteTrigger


class KafkaWindowTimeoutError(AirflowSensorTimeout):
    """The window was not complete by the sensor's timeout; the message names the partitions behind.

    A subclass so that ``execute`` can tell this sensor's own timeout from the generic one
    ``BaseSensorOperator`` raises, by type rather than by the wording of Airflow core's message.
    """


class KafkaWindowCompleteSensor(BaseSensorOperator):
    """Wait until the window ``[since, until)`` is complete on every partition of ``topics``.

    A partition is complete when its latest record has a timestamp ``>= until + max_lateness``, or
    when it has had no new record (its high watermark has not moved) for ``idle_timeout``. The
    check only reads: it assigns partitions to a short-lived consumer, reads the record at
    ``high_watermark - 1`` and commits nothing.

    :param topics: Topic name(s). (templated)
    :param kafka_config_id: The ``kafka`` connection, as for ``KafkaBatchConsumeOperator``. (templated)
    :param since: Start of the window; default the data interval's start (used in messages). (templated)
    :param until: End of the window; default the data interval's end. (templated)
    :param max_lateness: How far past ``until`` each partition's stream must have got: a timedelta or
        seconds. (templated)
    :param idle_timeout: A partition whose high watermark has not moved for this long counts as
        complete (quiet partitions, devices switched off): a timedelta or seconds; None: never.
        (templated)
    :param request_timeout: Seconds to wait for each request to the cluster.
    :param deferrable: Wait in the triggerer (``KafkaWindowCompleteTrigger``) instead of a worker slot.
        Default from ``[operators] default_deferrable``.

    ``timeout``, ``poke_interval`` and ``soft_fail`` work as for every sensor: on timeout the task
    fails with ``AirflowSensorTimeout`` naming the partitions still behind (skipped with
    ``soft_fail``). Returns (XCom) the window and each partition's high watermark, latest record
    timestamp and status. Checking the idle clock needs memory between checks, which ``reschedule``
    mode does not keep: with ``idle_timeout`` use the default ``poke`` mode or ``deferrable=True``
    (which frees the worker slot too).
    """

    template_fields: Sequence[str] = ("topics", "kafka_config_id", "since", "until", "max_lateness",
                                      "idle_timeout")
    ui_color = "#e8f4e4"

    def __init__(
        self,
        *,
        topics: Sequence[str] | str,
        kafka_config_id: str = "kafka_default",
        since: dt.datetime | str | None = None,
        until: dt.datetime | str | None = None,
        max_lateness: dt.timedelta | float | str = dt.timedelta(0),
        idle_timeout: dt.timedelta | float | str | None = dt.timedelta(minutes=15),
        request_timeout: float = 10.0,
        deferrable: bool = conf.getboolean("operators", "default_deferrable", fallback=False),
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.topics = topics
        self.kafka_config_id = kafka_config_id
        self.since = since
        self.until = until
        self.max_lateness = max_lateness
        self.idle_timeout = idle_timeout
        self.request_timeout = request_timeout
        self.deferrable = deferrable
        if self.reschedule and idle_timeout is not None:
            raise ValueError(
                f"{self.task_id}: idle_timeout needs the sensor to remember watermarks between checks, which "
                "mode='reschedule' does not: use deferrable=True (frees the worker slot too), mode='poke', "
                "or idle_timeout=None")
        # Filled by _prepare() when the task runs (after templating).
        self._state: list[dict[str, Any]] = []
        self._progress: WindowProgress | None = None
        self._last_error: str | None = None
        self._started: float | None = None

    # -- shared by both modes --------------------------------------------------------------------

    def _prepare(self, context: Context) -> None:
        """Check the rendered arguments once, before any request is made."""
        self._topics = normalize_topics(self.topics, error=KafkaWindowConfigError)
        self._window_start, self._window_end = resolve_window(context, self.since, self.until,
                                                              error=KafkaWindowConfigError)
        self._max_lateness = to_seconds(self.max_lateness, "max_lateness", error=KafkaWindowConfigError) or 0.0
        self._idle_timeout = to_seconds(self.idle_timeout, "idle_timeout", allow_none=True,
                                        error=KafkaWindowConfigError)
        self._config = build_consumer_config(self.kafka_config_id)
        self.log.info(
            "Waiting for Kafka window [%s, %s) on %s: each partition past until + %gs, or idle for %s",
            self._window_start.isoformat(), self._window_end.isoformat(), ", ".join(self._topics),
            self._max_lateness, "ever" if self._idle_timeout is None else f"{self._idle_timeout:g}s")

    def _check(self) -> WindowProgress | None:
        """One check of every partition; None when the cluster did not answer (retried next time)."""
        try:
            progress = check_window(
                self._config, self._topics, window_end=self._window_end, max_lateness=self._max_lateness,
                idle_timeout=self._idle_timeout, previous_state=self._state,
                request_timeout=self.request_timeout)
        except KafkaUnavailableError as error:
            self._last_error = str(error)
            self.log.warning("Kafka window check failed, retrying: %s", error)
            return None
        self._last_error = None
        self._progress = progress
        self._state = progress.state()
        for line in progress.partition_lines():
            self.log.info("  %s", line)
        return progress

    def _result(self, summary: dict[str, Any]) -> dict[str, Any]:
        return {"since": self._window_start.isoformat(), "until": self._window_end.isoformat(), **summary}

    def _timeout_message(self) -> str:
        return timeout_message(topics=self._topics, window_start=self._window_start, window_end=self._window_end,
                               timeout=self.timeout, progress=self._progress, last_error=self._last_error)

    # -- poke / reschedule mode ------------------------------------------------------------------

    def _elapsed(self) -> float:
        return 0.0 if self._started is None else time.time() - self._started

    def poke(self, context: Context) -> bool | PokeReturnValue:
        progress = self._check()
        if progress is not None and progress.complete:
            self.log.info("Kafka window complete on all %d partitions", len(progress.partitions))
            return PokeReturnValue(is_done=True, xcom_value=self._result(progress.summary()))
        # Timing out here (BaseSensorOperator would do it right after, with a generic message) lets
        # the error name the partitions still behind; soft_fail still turns it into a skip.
        if self._elapsed() >= self.timeout:
            message = self._timeout_message()
            self.log.error("%s", message)
            raise KafkaWindowTimeoutError(message)
        return False

    # -- entry points ----------------------------------------------------------------------------

    def execute(self, context: Context) -> Any:
        self._prepare(context)
        if not self.deferrable:
            # Same start as BaseSensorOperator.execute measures from (a clock read just before it).
            first_reschedule = context["ti"].get_first_reschedule_date(context) if self.reschedule else None
            self._started = first_reschedule.timestamp() if first_reschedule else time.time()
            try:
                return super().execute(context)
            except KafkaWindowTimeoutError:
                raise
            except AirflowSensorTimeout as error:
                # BaseSensorOperator's generic timeout (it measured a hair later than poke() did):
                # the same verdict, told with the partitions still behind.
                raise KafkaWindowTimeoutError(self._timeout_message()) from error
        progress = self._check()
        if progress is not None and progress.complete:
            self.log.info("Kafka window already complete on all %d partitions", len(progress.partitions))
            return self._result(progress.summary())
        timeout_at = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=self.timeout)
        defer_to(self, KafkaWindowCompleteTrigger(
            topics=self._topics, until=self._window_end, since=self._window_start,
            kafka_config_id=self.kafka_config_id, max_lateness=self._max_lateness,
            idle_timeout=self._idle_timeout, poll_interval=self.poke_interval, timeout_at=timeout_at,
            timeout=self.timeout, partition_state=self._state, request_timeout=self.request_timeout))

    def execute_complete(self, context: Context, event: dict[str, Any] | None = None) -> Any:
        """Back from the trigger: the window is complete, or it timed out, or the check failed."""
        event = trigger_event(event, "KafkaWindowCompleteTrigger")
        status = event.get("status")
        if status == "complete":
            self._window_start, self._window_end = resolve_window(context, self.since, self.until,
                                                                  error=KafkaWindowConfigError)
            self.log.info("Kafka window complete: %s", event["summary"])
            return self._result(event["summary"])
        if status == "timeout":
            # Logged here too: with soft_fail, resume_execution replaces it with a generic skip message.
            self.log.error("%s", event["message"])
            raise KafkaWindowTimeoutError(event["message"])
        raise AirflowException(event.get("message") or f"unexpected trigger event {event!r}")


__all__ = ["KafkaWindowCompleteSensor", "KafkaWindowConfigError", "KafkaWindowTimeoutError"]
