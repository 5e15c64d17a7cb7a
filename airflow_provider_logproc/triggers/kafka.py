"""KafkaWindowCompleteTrigger: the deferred half of KafkaWindowCompleteSensor.

Pure async: the blocking confluent-kafka calls (metadata, watermarks, one fetch per partition) run
in a worker thread via ``asyncio.to_thread``. The trigger changes nothing on the cluster (an assigned
consumer, no group, no commit), so it is safe to run twice at once, as the triggerer may.

Its serialized form carries every partition's state with absolute times (when each high watermark
was first seen) and an absolute deadline, so a trigger rebuilt from it — after a triggerer restart,
or from the state the sensor observed before deferring — resumes the idle clocks and the timeout
instead of starting them over. (The triggerer keeps the kwargs given at deferral, i.e. the state of the
sensor's own check just before it deferred; a partition that moved after that restarts its idle clock
when the rebuilt trigger first sees it — completion can come later than ideal, never earlier.)
"""

from __future__ import annotations

import asyncio
import datetime as dt
import time
from collections.abc import AsyncIterator, Sequence
from typing import Any

from airflow.triggers.base import BaseTrigger, TriggerEvent

from airflow_provider_logproc._templating import to_utc_datetime
from airflow_provider_logproc.kafka import progress as window_progress


class KafkaWindowCompleteTrigger(BaseTrigger):
    """Fire when the window ending at ``until`` is complete on every partition of ``topics``.

    :param topics: Topic names.
    :param until: End of the window (aware datetime).
    :param since: Start of the window; only used in messages.
    :param kafka_config_id: The ``kafka`` connection (librdkafka config in its extra).
    :param max_lateness: Seconds the stream must have moved past ``until`` on a partition.
    :param idle_timeout: Seconds without a new record after which a partition counts as complete;
        None: never.
    :param poll_interval: Seconds between checks.
    :param timeout_at: Absolute deadline (aware datetime); at it the trigger fires a ``timeout`` event
        naming the partitions still behind. None: wait forever.
    :param timeout: The sensor's timeout in seconds, only used in the timeout message.
    :param partition_state: Per-partition state from a previous check (``WindowProgress.state()``).
    :param request_timeout: Seconds to wait for each cluster request.

    Events: ``{"status": "complete", "summary": {...}}``, ``{"status": "timeout", "message": ...}``
    or ``{"status": "error", "message": ...}`` (bad topic or connection: retrying will not help).
    """

    def __init__(
        self,
        *,
        topics: Sequence[str],
        until: dt.datetime | str,
        since: dt.datetime | str | None = None,
        kafka_config_id: str = "kafka_default",
        max_lateness: float = 0.0,
        idle_timeout: float | None = None,
        poll_interval: float = 60.0,
        timeout_at: dt.datetime | str | None = None,
        timeout: float | None = None,
        partition_state: list[dict[str, Any]] | None = None,
        request_timeout: float = 10.0,
    ) -> None:
        super().__init__()
        self.topics = list(topics)
        config_error = window_progress.KafkaWindowConfigError
        self.until = to_utc_datetime(until, "until", error=config_error)
        self.since = None if since is None else to_utc_datetime(since, "since", error=config_error)
        self.kafka_config_id = kafka_config_id
        self.max_lateness = float(max_lateness)
        self.idle_timeout = None if idle_timeout is None else float(idle_timeout)
        self.poll_interval = float(poll_interval)
        self.timeout_at = (None if timeout_at is None
                           else to_utc_datetime(timeout_at, "timeout_at", error=config_error))
        self.timeout = timeout
        self.partition_state = [dict(state) for state in partition_state or ()]
        self.request_timeout = float(request_timeout)

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return (
            f"{type(self).__module__}.{type(self).__qualname__}",
            {
                "topics": list(self.topics),
                "until": self.until,
                "since": self.since,
                "kafka_config_id": self.kafka_config_id,
                "max_lateness": self.max_lateness,
                "idle_timeout": self.idle_timeout,
                "poll_interval": self.poll_interval,
                "timeout_at": self.timeout_at,
                "timeout": self.timeout,
                "partition_state": [dict(state) for state in self.partition_state],
                "request_timeout": self.request_timeout,
            },
        )

    def _log_progress(self, progress: window_progress.WindowProgress) -> None:
        done = len(progress.partitions) - len(progress.behind)
        self.log.info("Kafka window ending %s: %d of %d partitions complete",
                      self.until.isoformat(), done, len(progress.partitions))
        for line in progress.partition_lines():
            self.log.info("  %s", line)

    def _timeout_event(self, progress: window_progress.WindowProgress | None, last_error: str | None) -> TriggerEvent:
        message = window_progress.timeout_message(
            topics=self.topics, window_start=self.since, window_end=self.until, timeout=self.timeout,
            progress=progress, last_error=last_error)
        self.log.warning("%s", message)
        behind = [] if progress is None else [p.to_state() for p in progress.behind]
        return TriggerEvent({"status": "timeout", "message": message, "behind": behind})

    async def run(self) -> AsyncIterator[TriggerEvent]:
        try:
            config = await asyncio.to_thread(window_progress.build_consumer_config, self.kafka_config_id)
        except Exception as error:
            yield TriggerEvent({"status": "error",
                                "message": f"cannot use Kafka connection {self.kafka_config_id!r}: {error}"})
            return
        progress: window_progress.WindowProgress | None = None
        last_error: str | None = None
        while True:
            try:
                progress = await asyncio.to_thread(
                    window_progress.check_window, config, self.topics, window_end=self.until,
                    max_lateness=self.max_lateness, idle_timeout=self.idle_timeout, previous_state=self.partition_state,
                    request_timeout=self.request_timeout)
            except window_progress.KafkaUnavailableError as error:
                # A broker restart should not fail a wait of hours: try again on the next check.
                last_error = str(error)
                self.log.warning("Kafka window check failed, retrying in %gs: %s", self.poll_interval, error)
            except Exception as error:
                yield TriggerEvent({"status": "error", "message": f"Kafka window check failed: {error}"})
                return
            else:
                last_error = None
                self.partition_state = progress.state()
                self._log_progress(progress)
                if progress.complete:
                    yield TriggerEvent({"status": "complete", "summary": progress.summary()})
                    return
            delay = self.poll_interval
            if self.timeout_at is not None:
                remaining = self.timeout_at.timestamp() - time.time()
                if remaining <= 0:
                    yield self._timeout_event(progress, last_error)
                    return
                # Check once more right at the deadline, then give up.
                delay = min(delay, remaining)
            await asyncio.sleep(delay)


__all__ = ["KafkaWindowCompleteTrigger"]
