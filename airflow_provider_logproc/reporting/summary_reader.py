"""For DAGs downstream of the report asset: the latest report event, and the summary it points at."""

from __future__ import annotations

from typing import Any

from airflow_provider_logproc.operators.report import blob_location


class NoReportEventError(LookupError):
    """No event of the report asset yet: the daily DAG has not finished a window."""


def latest_report_event(context: Any, asset: Any) -> dict[str, Any]:
    """Return the extra of the asset's latest event (what triggered this run, or the newest one for a manual run)."""
    events = list(context["inlet_events"][asset])
    if not events:
        raise NoReportEventError(f"no event of {asset.uri} yet: run the daily DAG for a window first")
    extra = dict(events[-1].extra or {})
    if "summary_uri" not in extra:
        raise NoReportEventError(f"the latest event of {asset.uri} names no summary_uri: {sorted(extra)}")
    return extra


def read_summary(summary_uri: str, wasb_conn_id: str = "wasb_default") -> dict[str, Any]:
    """Read the summary.json a report event points at."""
    import orjson
    from airflow.providers.microsoft.azure.hooks.wasb import WasbHook

    container, name = blob_location(summary_uri)
    service = WasbHook(wasb_conn_id=wasb_conn_id).get_conn()
    return orjson.loads(service.get_blob_client(container, name).download_blob().readall())
