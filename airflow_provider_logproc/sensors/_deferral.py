"""What this provider's deferrable sensors share: the deferral with its grace, and the event check."""

from __future__ import annotations

import datetime as dt
from typing import Any

from airflow.providers.common.compat.sdk import AirflowException

# The deferral timeout is only a safety net behind the trigger's own deadline (which gives the better
# message, with the last state it saw): it fires if the trigger cannot report, e.g. its triggerer is gone.
DEFERRAL_TIMEOUT_GRACE = dt.timedelta(minutes=5)


def defer_to(sensor: Any, trigger: Any) -> None:
    """Defer ``sensor`` to ``trigger``, resuming in ``execute_complete``; Airflow's timeout a grace later."""
    sensor.defer(trigger=trigger, method_name="execute_complete",
                 timeout=dt.timedelta(seconds=sensor.timeout) + DEFERRAL_TIMEOUT_GRACE)


def trigger_event(event: dict[str, Any] | None, trigger_name: str) -> dict[str, Any]:
    """Return the trigger's event, or fail naming the trigger that sent none."""
    if not event:
        raise AirflowException(f"{trigger_name} returned no event")
    return event
