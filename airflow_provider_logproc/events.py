"""Apply functions for Airflow's Kafka message-queue trigger (event-driven scheduling).

The triggerer imports these by dotted path, so they live in the installed package, not in the DAGs
folder. Each message becomes one asset event; the DAG treats it as a wake-up and consumes the batch
itself with its own consumer group, so the event carries only where the message was, never its data.
"""

from __future__ import annotations

from typing import Any


def new_logs_wakeup(message: Any) -> dict[str, Any]:
    """Return the asset event's payload: the message's coordinates (no value, no key: they may be large)."""
    _kind, timestamp_ms = message.timestamp()
    return {
        "topic": message.topic(),
        "partition": message.partition(),
        "offset": message.offset(),
        "timestamp_ms": timestamp_ms,
    }
