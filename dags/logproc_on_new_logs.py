"""Event-driven log analysis: new records on the topic start a run (Airflow 3 asset watchers).

The Kafka message-queue trigger watches the topic in the triggerer; each message becomes an asset
event. The run treats the event as a wake-up only: it consumes what has arrived with its own consumer
group, commits the offsets after the Ion file is durably written (at-least-once), and analyses that
batch with the same steps as the daily DAG.

Needs Airflow 3.0+ (asset watchers): on Airflow 2 this file defines no DAG and logs why.

``LOGPROC_TOPIC`` names the topic, ``LOGPROC_KAFKA_SERVER`` the asset URI's host (informational).
"""

from __future__ import annotations

import datetime as dt
import logging
import os

from airflow_provider_logproc.version_compat import AIRFLOW_V_3_0_PLUS

# The Kafka provider's AwaitMessageTrigger itself, not KafkaMessageQueueTrigger: that wrapper
# (common.messaging) only hands over to this trigger, but importing it discovers every provider's
# message queues (Azure Service Bus, SQLAlchemy models...), ~150 ms of every parse of this file.
if AIRFLOW_V_3_0_PLUS:
    from airflow.providers.apache.kafka.triggers.await_message import AwaitMessageTrigger
    from airflow.sdk import DAG, Asset, AssetWatcher, Param

    from airflow_provider_logproc.pipeline import (
        PIPELINE_DEFAULT_ARGS,
        PIPELINE_MACROS,
        build_event_pipeline,
        failure_notifiers,
    )

    TOPIC = os.environ.get("LOGPROC_TOPIC", "access-logs")

    new_logs = Asset(
        name=f"logproc_new_logs_{TOPIC}",
        uri=f"kafka://{os.environ.get('LOGPROC_KAFKA_SERVER', 'kafka')}/{TOPIC}",
        watchers=[
            AssetWatcher(
                name=f"logproc_new_logs_watcher_{TOPIC}",
                trigger=AwaitMessageTrigger(
                    topics=[TOPIC],
                    kafka_config_id="kafka_default",
                    apply_function="airflow_provider_logproc.events.new_logs_wakeup",
                    poll_interval=5,
                ),
            )
        ],
    )

    with DAG(
        dag_id="logproc_on_new_logs",
        description="Analyse new Kafka log records as they arrive (event-driven)",
        schedule=[new_logs],
        start_date=dt.datetime(2026, 1, 1, tzinfo=dt.UTC),
        catchup=False,
        # One consumer group drains the topic: runs one at a time, so batches never overlap.
        max_active_runs=1,
        render_template_as_native_obj=True,
        user_defined_macros=PIPELINE_MACROS,
        default_args=PIPELINE_DEFAULT_ARGS,
        on_failure_callback=failure_notifiers(),
        params={
            "topic": Param(TOPIC, type="string"),
            "logs_container": Param("logs", type="string"),
            "results_container": Param("results", type="string"),
            "pool_id": Param(os.environ.get("LOGPROC_POOL_ID", "local-pool"), type="string"),
            "parts": Param(2, type="integer", minimum=1, maximum=1000),
            "max_records": Param(1_000_000, type="integer", minimum=1),
            "max_duration_seconds": Param(300, type="integer", minimum=1),
        },
        tags=["logproc", "kafka", "azure", "event-driven"],
        doc_md=__doc__,
    ) as dag:
        build_event_pipeline()
else:
    from airflow import __version__ as _airflow_version

    logging.getLogger(__name__).warning(
        "logproc_on_new_logs is not defined: event-driven scheduling (asset watchers) needs Airflow 3.0 or "
        "newer, this is Airflow %s. The daily DAG (logproc_daily) runs on this version.", _airflow_version)
