"""Downstream of the daily report: runs when ``logproc_daily`` has written a window's report.

An example of scheduling on the report asset (``logproc://<topic>/report``; a Dataset on Airflow 2):
the asset event's extra names the window, the summary and the report, and carries the headline
counters. This DAG reads the summary and logs the figures a dashboard refresh or a security job on the
anomalous IPs would start from. Runs on Airflow 2.11 and 3.x.
"""

from __future__ import annotations

import datetime as dt
import logging
from typing import Any

from airflow.providers.common.compat.sdk import DAG, task

from airflow_provider_logproc.pipeline import report_asset

REPORT = report_asset()

with DAG(
    dag_id="logproc_report_consumer",
    description="Reads each new daily log report (scheduled on the report asset)",
    schedule=[REPORT],
    start_date=dt.datetime(2026, 1, 1, tzinfo=dt.UTC),
    catchup=False,
    tags=["logproc", "example"],
    doc_md=__doc__,
) as dag:

    @task(inlets=[REPORT])
    def read_latest_report(**context: Any) -> dict[str, Any]:
        from airflow_provider_logproc.reporting.summary_reader import latest_report_event, read_summary

        event = latest_report_event(context, REPORT)
        summary = read_summary(event["summary_uri"])
        anomalous_ips = [a.get("ip") for a in summary["anomalies"].get("ips", [])]
        logging.getLogger(__name__).info(
            "report of %s for %s to %s: %s valid records, %s distinct IPs, anomalous IPs %s; %s",
            event["topic"], event["window_start"], event["window_end"], summary["totals"]["valid"],
            summary["unique_ips"], anomalous_ips, event["report_uri"])
        return {"window_start": event["window_start"], "valid": summary["totals"]["valid"],
                "anomalous_ips": anomalous_ips}

    read_latest_report()
