"""Daily log analysis: Kafka window → Ion → JSON lines → Blob parts → Azure Batch fan-out → report.

One DAG run is one data interval [data_interval_start, data_interval_end). Every name is derived from
the window and the topic, so re-running a day (``airflow backfill create --dag-id logproc_daily
--from-date ... --to-date ... --reprocess-behavior completed``) overwrites the same objects and gives
the same summary.

A day's ``report`` compares with the previous days' summaries, so it waits for the previous run's
``report`` (``depends_on_past``): the result does not depend on how a backfill's runs interleave. When a
day's report fails, the following days' reports wait until it is cleared and succeeds.

The schedule is a *cron data-interval* timetable: in Airflow 3 ``schedule="@daily"`` means the cron
trigger timetable, whose runs have zero-length intervals — there would be no window to consume.

Configure with environment variables (read when the file is parsed) or override params per run:
``LOGPROC_TOPIC``, ``LOGPROC_POOL_ID``, ``LOGPROC_SCHEDULE`` (a cron expression or preset).

Multi-worker deployments (Celery, Kubernetes): stage in object storage (``LOGPROC_STAGING_BASE=
abfs://wasb_default@<container>/logproc``); a large day is consumed by ``consume_groups`` mapped tasks,
one per partition group, each converting and uploading its own part.
"""

from __future__ import annotations

import datetime as dt
import os

from airflow.providers.common.compat.sdk import DAG, Param
from airflow.timetables.interval import CronDataIntervalTimetable

from airflow_provider_logproc.pipeline import (
    PIPELINE_DEFAULT_ARGS,
    PIPELINE_MACROS,
    build_daily_pipeline,
    failure_notifiers,
)

with DAG(
    dag_id="logproc_daily",
    description="Daily analysis of a Kafka log topic on Azure Blob Storage and Azure Batch",
    schedule=CronDataIntervalTimetable(os.environ.get("LOGPROC_SCHEDULE", "@daily"), timezone="UTC"),
    start_date=dt.datetime(2026, 1, 1, tzinfo=dt.UTC),
    catchup=False,
    # XCom lists (blob URIs) and integer params reach the operators as Python values, not strings.
    render_template_as_native_obj=True,
    user_defined_macros=PIPELINE_MACROS,
    # A few days at once lets a backfill progress without flooding the pool; only the report step
    # waits for the previous day's report (depends_on_past), whose summary it compares with.
    max_active_runs=3,
    default_args=PIPELINE_DEFAULT_ARGS,
    on_failure_callback=failure_notifiers(),
    params={
        "topic": Param(os.environ.get("LOGPROC_TOPIC", "access-logs"), type="string"),
        "logs_container": Param("logs", type="string", description="raw JSON-lines parts"),
        "archive_container": Param("archive", type="string", description="raw Ion window archive"),
        "results_container": Param("results", type="string", description="summary.json, report.html"),
        "pool_id": Param(os.environ.get("LOGPROC_POOL_ID", "local-pool"), type="string"),
        "parts": Param(4, type="integer", minimum=1, maximum=1000, description="Batch tasks per day"),
        "consume_groups": Param(0, type="integer", minimum=0, maximum=256,
                                description="consume tasks (partition groups) per day, mapped over workers; "
                                            "1 = one task; 0 = auto: one for a small day, else min(partitions, 4)"),
        "max_lateness_minutes": Param(0, type="integer", minimum=0,
                                      description="wait this long past the window for late records"),
        "idle_timeout_minutes": Param(10, type="number", minimum=0,
                                      description="a partition silent this long counts as complete"),
    },
    tags=["logproc", "kafka", "azure"],
    doc_md=__doc__,
) as dag:
    build_daily_pipeline()
