"""The log pipeline's task graph, shared by the example DAGs (daily and event-driven).

DAG files stay short and declarative; what they share (names derived from the window, the task chain,
notifiers) lives here so that both DAGs name their objects the same way.

Heavy client libraries (confluent-kafka, azure-*) are imported by the operators only when they run,
so parsing a DAG file that uses this module stays fast.
"""

from __future__ import annotations

import datetime as dt
import functools
import logging
import os
import shlex
from typing import Any

from airflow.providers.common.compat.sdk import task

from airflow_provider_logproc.kafka.groups import parts_per_group
from airflow_provider_logproc.notifications.file import LogprocFileNotifier
from airflow_provider_logproc.version_compat import push_xcoms

STAGING_BASE_ENV = "LOGPROC_STAGING_BASE"
DEFAULT_STAGING_BASE = "file:///tmp/logproc-staging"

PIPELINE_DEFAULT_ARGS: dict[str, Any] = {
    "owner": "logproc",
    "retries": 2,
    "retry_delay": dt.timedelta(minutes=1),
    "retry_exponential_backoff": True,
    "max_retry_delay": dt.timedelta(minutes=15),
    # Bounds every attempt, deferral included: a broker that stays down ends in a retry, not a hang.
    "execution_timeout": dt.timedelta(hours=3),
}


def window_path(start: dt.datetime, end: dt.datetime) -> str:
    """``yyyy/mm/dd`` for a whole UTC day, else ``yyyy/mm/dd/HHMMSS-HHMMSS`` (never collides)."""
    start_utc, end_utc = start.astimezone(dt.UTC), end.astimezone(dt.UTC)
    day = start_utc.strftime("%Y/%m/%d")
    whole_day = start_utc.time() == dt.time(0) and end_utc - start_utc == dt.timedelta(days=1)
    return day if whole_day else f"{day}/{start_utc:%H%M%S}-{end_utc:%H%M%S}"


def previous_window_prefixes(topic: str, start: dt.datetime, end: dt.datetime, count: int) -> list[str]:
    """``<topic>/<window path>`` of the ``count`` windows of the same length just before this one."""
    length = end - start
    return [f"{topic}/{window_path(start - length * back, end - length * back)}" for back in range(1, count + 1)]


def default_topic() -> str:
    """Return the topic the DAG files are parsed for (``LOGPROC_TOPIC``); a run may override it in its params."""
    return os.environ.get("LOGPROC_TOPIC", "access-logs")


def report_asset(topic: str | None = None) -> Any:
    """Return the daily report of ``topic`` as an Airflow Asset (a Dataset on Airflow 2) to schedule on.

    The report step updates it after every window; the event's extra says which window, where the
    summary and the report are, and the headline counters.
    """
    from airflow.providers.common.compat.sdk import Asset

    return Asset(f"logproc://{topic or default_topic()}/report")


def staging_base() -> str:
    return os.environ.get(STAGING_BASE_ENV, DEFAULT_STAGING_BASE).rstrip("/")


# Executors whose tasks all run on the machine that parsed the DAG: a local staging folder is shared.
SINGLE_MACHINE_EXECUTORS = {"LocalExecutor", "SequentialExecutor", "DebugExecutor"}


def unshared_staging_warning(base: str, executors: str) -> str | None:
    """Why a ``file://`` staging base cannot work with ``executors`` (the ``[core] executor`` value), or None."""
    if not base.startswith("file:") and "://" in base:
        return None
    names = {name.strip().split(".")[-1].split(":")[-1] for name in executors.split(",") if name.strip()}
    remote = sorted(names - SINGLE_MACHINE_EXECUTORS)
    if not remote:
        return None
    return (f"logproc: staging is {base!r}, a local folder, but tasks run with {', '.join(remote)}: consecutive "
            f"tasks may land on different machines and not find each other's files. Set {STAGING_BASE_ENV} to "
            "shared object storage, e.g. abfs://wasb_default@<container>/logproc (the container must exist).")


@functools.cache
def warn_if_staging_is_not_shared() -> None:
    """Log :func:`unshared_staging_warning` once per process (the DAG processor parses files again and again)."""
    from airflow.providers.common.compat.sdk import conf

    message = unshared_staging_warning(staging_base(), conf.get("core", "executor", fallback="") or "")
    if message:
        logging.getLogger(__name__).warning("%s", message)


def analyzer_command() -> list[str]:
    """Return the analyzer's argv on a Batch node (``LOGPROC_ANALYZER_COMMAND`` overrides; no shell)."""
    return shlex.split(os.environ.get("LOGPROC_ANALYZER_COMMAND", "logproc-analyze"))


def failure_notifiers() -> list[Any]:
    """Return the file notifier always, and SMTP when ``LOGPROC_NOTIFY_EMAIL`` is set (uses ``smtp_default``)."""
    notifiers: list[Any] = [
        LogprocFileNotifier(
            kind="failure",
            message="{{ dag.dag_id }}: task {{ ti.task_id }} failed for window "
            "{{ data_interval_start }} to {{ data_interval_end }} (run {{ run_id }})",
        )
    ]
    email = os.environ.get("LOGPROC_NOTIFY_EMAIL")
    if email:
        from airflow.providers.smtp.notifications.smtp import SmtpNotifier

        notifiers.append(SmtpNotifier(to=email, subject="[logproc] {{ dag.dag_id }} failed for {{ ds }}"))
    return notifiers


def anomaly_notifiers() -> list[Any]:
    notifiers: list[Any] = [
        LogprocFileNotifier(
            kind="anomaly",
            message="{{ dag.dag_id }}: anomalies in window {{ data_interval_start }} to {{ data_interval_end }}",
        )
    ]
    email = os.environ.get("LOGPROC_NOTIFY_EMAIL")
    if email:
        from airflow.providers.smtp.notifications.smtp import SmtpNotifier

        notifiers.append(SmtpNotifier(to=email, subject="[logproc] anomalies for {{ ds }}"))
    return notifiers


def _templated(value: Any) -> Any:
    """Mark an argument filled in at run time (Jinja or an XComArg), not the parameter's declared type."""
    return value


def batch_job_id(topic: str, start: Any, end: Any, run_id: str, content_fingerprint: str | None) -> str:
    """``logproc-<topic>-<window>-<fingerprint>``: one Batch job per window *and* input content.

    A retry, or a rerun over identical parts, finds the job it created and re-attaches; parts that
    changed (late records, a fixed parser) get a job of their own instead of the stale results.
    """
    from airflow_provider_logproc.azure_batch.ids import sanitize_batch_id

    if start is not None and end is not None and start != end:
        window = window_path(start, end).replace("/", "")
    else:  # event-driven runs have no window of their own
        window = run_id
    return sanitize_batch_id(f"logproc-{topic}-{window}-{(content_fingerprint or 'none')[:8]}")


def first_xcom(ti: Any, task_ids: list[str], key: str) -> Any:
    """Return what the first of ``task_ids`` that pushed ``key`` pushed (branches: consume or restore_from_archive).

    An item ``"task_id:other_key"`` pulls that task's ``other_key`` instead.
    """
    for item in task_ids:
        task_id, _, own_key = item.partition(":")
        value = ti.xcom_pull(task_ids=task_id, key=own_key or key)
        if value is not None:
            return value
    return None


# Up to 5% of a window's records may be undecodable (kept aside and counted); more fails the run.
# A day consumed in parts is held to it as a whole, by collect_parts, not part by part.
MAX_BAD_SHARE = 0.05

# XCom key of the consume step → metadata name on the archived window.
ARCHIVE_COUNTERS = {
    "record_count": "consumed_records",
    "dead_letter_count": "undecodable_records",
    "dead_letter_uri": "undecodable_records_file",
}

PIPELINE_MACROS = {
    "logproc_window_path": window_path,
    "logproc_batch_job_id": batch_job_id,
    "logproc_first_xcom": first_xcom,
    "logproc_previous_window_prefixes": previous_window_prefixes,
    "logproc_parts_per_group": parts_per_group,
}

# Jinja snippets for the names every task derives from the run's window.
WINDOW_PATH = "{{ logproc_window_path(data_interval_start, data_interval_end) }}"
TOPIC = "{{ params.topic }}"
# Event-driven runs have no window of their own: their objects are named by the run id, made path-safe.
RUN_KEY = "{{ run_id | replace(':', '_') | replace('+', '_') }}"


def archive_options(blob_name: str, xcom_pull_args: str) -> dict[str, Any]:
    """Return the upload options of a raw Ion archive: its blob, and the consume step's counters as metadata.

    ``xcom_pull_args`` selects the consume task whose counters go into the blob's metadata, e.g.
    ``"task_ids='consume'"`` (a mapped part adds ``map_indexes=ti.map_index``).
    """
    return {
        "container": "{{ params.archive_container }}",
        "blob_name": blob_name,
        "content_type": "application/ion",
        "create_container": True,
        "metadata": {name: f"{{{{ ti.xcom_pull({xcom_pull_args}, key='{key}') }}}}"
                     for key, name in ARCHIVE_COUNTERS.items()},
    }


@task.branch(task_id="choose_source")
def choose_source(params: dict[str, Any] | None = None, **context: Any) -> str:
    """Consume from Kafka while it still holds the window (one task, or mapped over partition groups); else restore.

    The partition groups are planned here, once per run (XCom ``partition_groups``), from the
    ``consume_groups`` param and the window's size: one group is the single ``consume`` task.
    """
    from airflow_provider_logproc.archive import archived_window, kafka_holds_window
    from airflow_provider_logproc.kafka.groups import plan_partition_groups

    assert params is not None
    start, end = context["data_interval_start"], context["data_interval_end"]
    if kafka_holds_window(params["topic"], start, end):
        groups = plan_partition_groups([params["topic"]], start, end, int(params.get("consume_groups") or 0))
        context["ti"].xcom_push(key="partition_groups", value=groups)
        logging.getLogger(__name__).info("consume in %d group(s): %s", len(groups), groups)
        return "consume" if len(groups) == 1 else "plan_consume_groups"
    if archived_window(params["archive_container"], f"{params['topic']}/{window_path(start, end)}"):
        return "restore_from_archive"
    return "consume"  # fails there with the retention message, naming the window and the gap


@task(task_id="restore_from_archive")
def restore_from_archive(params: dict[str, Any] | None = None, **context: Any) -> str:
    """Restore the window's newest archive into staging: its ``raw.ion``, or a mapped run's parts, joined."""
    from airflow_provider_logproc.archive import archived_window, download_archive, download_archive_parts

    assert params is not None
    start, end = context["data_interval_start"], context["data_interval_end"]
    container, archived = params["archive_container"], f"{params['topic']}/{window_path(start, end)}"
    window_dir = f"{staging_base()}/{context['dag'].dag_id}/{params['topic']}/{window_path(start, end)}"
    blobs = archived_window(container, archived)
    if blobs == [f"{archived}/raw.ion"]:
        uri, metadata = download_archive(container, blobs[0], f"{window_dir}/raw.ion")
    else:
        # Where the mapped run's collect_parts joined the parts' undecodable records.
        uri, metadata = download_archive_parts(container, blobs, f"{window_dir}/raw.ion",
                                               f"{window_dir}/groups/raw.dead-letter.jsonl")
    # The counters the archiving run recorded, so the report of a restored window reads the same.
    counters = {key: metadata.get(name) for key, name in ARCHIVE_COUNTERS.items()}
    push_xcoms(context["ti"], **{key: int(value) if value.isdigit() else value
                                 for key, value in counters.items() if value not in (None, "", "None")})
    return uri


def pipeline_counts(*source_task_ids: str, collected: str | None = None) -> dict[str, str]:
    """Templates of the earlier steps' counters, so the report accounts for every record read.

    ``collected``: the task that adds up a mapped consume's counters, when the run may take that branch.
    """
    if collected:
        source_task_ids = (*source_task_ids, collected)
        to_json = ["to_json", f"{collected}:analysed_count"]
        return {
            **pipeline_counts(*source_task_ids),
            "invalid_records": f"{{{{ logproc_first_xcom(ti, ['to_json', '{collected}'], 'invalid_count') }}}}",
            "invalid_records_file": f"{{{{ logproc_first_xcom(ti, ['to_json', '{collected}'], 'invalid_uri') }}}}",
            "records_analysed": f"{{{{ logproc_first_xcom(ti, {to_json}, 'record_count') }}}}",
        }
    return {
        "consumed_records": f"{{{{ logproc_first_xcom(ti, {list(source_task_ids)}, 'record_count') }}}}",
        "undecodable_records": f"{{{{ logproc_first_xcom(ti, {list(source_task_ids)}, 'dead_letter_count') }}}}",
        "undecodable_records_file": f"{{{{ logproc_first_xcom(ti, {list(source_task_ids)}, 'dead_letter_uri') }}}}",
        "invalid_records": "{{ ti.xcom_pull(task_ids='to_json', key='invalid_count') }}",
        "invalid_records_file": "{{ ti.xcom_pull(task_ids='to_json', key='invalid_uri') }}",
        "records_analysed": "{{ ti.xcom_pull(task_ids='to_json', key='record_count') }}",
    }


def add_analysis_steps(
    jsonl_source: Any, blob_prefix: str, pipeline_counts: dict[str, str] | None = None,
    baseline_prefixes: str | None = None, report_outlets: list[Any] | None = None,
    analysis_window: bool = False, collected: Any = None,
) -> tuple[Any, Any, Any]:
    """JSON lines → Blob parts → Batch fan-out of the analyzer → merged summary and report.

    ``collected``: a mapped consume's ``collect_parts`` task; the Batch job then takes the parts of
    whichever branch ran.
    """
    from airflow_provider_logproc.operators.batch import AzureBatchJobOperator
    from airflow_provider_logproc.operators.blob import BlobUploadOperator
    from airflow_provider_logproc.operators.report import LogAnalysisReportOperator

    upload_parts = BlobUploadOperator(
        task_id="upload_parts",
        source=_templated(jsonl_source.output),
        container="{{ params.logs_container }}",
        prefix=blob_prefix,
        parts=_templated("{{ params.parts }}"),
        content_type="application/x-ndjson",
        create_container=True,
    )
    uploads = ["upload_parts", *([collected.operator.task_id] if collected is not None else [])]
    analyze = AzureBatchJobOperator(
        task_id="analyze",
        pool_id="{{ params.pool_id }}",
        job_id="{{ logproc_batch_job_id(params.topic, data_interval_start, data_interval_end, run_id, "
        f"logproc_first_xcom(ti, {uploads}, 'content_fingerprint')) }}}}",
        fan_out_inputs=_templated(upload_parts.output if collected is None
                                  else f"{{{{ logproc_first_xcom(ti, {uploads}, 'return_value') }}}}"),
        task_template={
            "command": [*analyzer_command(), "{input_file}", "--output", "{output_dir}/partial.msgpack",
                        # The window the records were read for: per-hour figures stay inside it, and
                        # records whose own clocks say otherwise are counted apart.
                        *(["--since", "{{ data_interval_start.isoformat() }}",
                           "--until", "{{ data_interval_end.isoformat() }}"] if analysis_window else [])],
            "output_file_pattern": "partial.msgpack",
            "constraints": {"max_wall_clock_time": "PT1H", "max_task_retry_count": 1},
        },
        wasb_conn_id="wasb_default",
        output_container="{{ params.results_container }}",
        output_prefix=f"{blob_prefix}/partials",
        # One taskcounts request per poll, whatever the number of tasks. Polls start a second apart
        # and back off to this as the job runs on (see AzureBatchJobTrigger).
        poll_interval=30,
        # Either branch's uploads (the other is skipped) when a mapped consume may run.
        trigger_rule="none_failed_min_one_success" if collected is not None else "all_success",
    )
    report = LogAnalysisReportOperator(
        task_id="report",
        partials="{{ ti.xcom_pull(task_ids='analyze')['outputs'] }}",
        container="{{ params.results_container }}",
        prefix=blob_prefix,
        pipeline_counts=pipeline_counts,
        baseline_prefixes=baseline_prefixes,
        anomaly_notifiers=anomaly_notifiers(),
        outlets=report_outlets or [],
        # A report that reads earlier windows' summaries (the day-over-day comparison, the volume
        # baseline) waits for the previous run's report: otherwise what it reads depends on how a
        # backfill's runs interleave, and re-processing the same days could give another summary.
        depends_on_past=baseline_prefixes is not None,
    )

    [upload_parts, *([collected] if collected is not None else [])] >> analyze >> report
    return upload_parts, analyze, report


def _consume_step(task_id: str, output_uri: str, **mode: Any) -> Any:
    """Add the step that reads the topic into Ion (``mode``: the window's or the group's arguments)."""
    from airflow_provider_logproc.operators.kafka import KafkaBatchConsumeOperator

    return KafkaBatchConsumeOperator(task_id=task_id, topics=TOPIC, output_uri=output_uri,
                                     max_bad_share=MAX_BAD_SHARE, **mode)


def _to_json_step(source_uri: Any, output_uri: str, **kwargs: Any) -> Any:
    """Add the step that converts the Ion file to validated JSON lines (invalid records kept aside)."""
    from airflow_provider_logproc.operators.ion import IonToJsonOperator

    return IonToJsonOperator(task_id="to_json", source_uri=source_uri, output_uri=output_uri,
                             validate_records=True, **kwargs)


def build_daily_pipeline() -> None:
    """Create the daily pipeline's tasks in the DAG being defined."""
    warn_if_staging_is_not_shared()
    from airflow_provider_logproc.operators.blob import BlobUploadOperator
    from airflow_provider_logproc.pipeline_mapped import COLLECT_TASK, add_mapped_consume
    from airflow_provider_logproc.sensors.kafka import KafkaWindowCompleteSensor

    window_dir = f"{staging_base()}/{{{{ dag.dag_id }}}}/{TOPIC}/{WINDOW_PATH}"

    wait_for_window = KafkaWindowCompleteSensor(
        task_id="wait_for_window",
        topics=TOPIC,
        max_lateness="{{ params.max_lateness_minutes * 60 }}",
        idle_timeout="{{ params.idle_timeout_minutes * 60 }}",
        # Poke mode only (deferrable mode polls in the triggerer); the demo shortens it.
        poke_interval=float(os.environ.get("LOGPROC_SENSOR_POKE_INTERVAL", "60")),
        timeout=2 * 3600,
    )
    source = choose_source()
    max_lateness = "{{ params.max_lateness_minutes * 60 }}"
    consume = _consume_step("consume", f"{window_dir}/raw.ion", max_lateness=max_lateness)
    archive_raw = BlobUploadOperator(
        task_id="archive_raw",
        source=_templated(consume.output),
        **archive_options(f"{TOPIC}/{WINDOW_PATH}/raw.ion", "task_ids='consume'"),
    )
    restored = restore_from_archive()
    plan_groups, collected = add_mapped_consume(window_dir, TOPIC, WINDOW_PATH, max_lateness)
    to_json = _to_json_step(
        "{{ ti.xcom_pull(task_ids='consume') or ti.xcom_pull(task_ids='restore_from_archive') }}",
        f"{window_dir}/raw.jsonl",
        trigger_rule="none_failed_min_one_success",
    )
    upload_parts, _analyze, _report = add_analysis_steps(
        to_json,
        blob_prefix=f"{TOPIC}/{WINDOW_PATH}",
        # The last week's windows: an empty or far smaller window is an anomaly, not a quiet success.
        baseline_prefixes="{{ logproc_previous_window_prefixes(params.topic, data_interval_start, "
                          "data_interval_end, 7) }}",
        pipeline_counts=pipeline_counts("consume", "restore_from_archive", collected=COLLECT_TASK),
        report_outlets=[report_asset()],
        analysis_window=True,
        collected=collected,
    )

    wait_for_window >> source >> [consume, restored, plan_groups]
    consume >> archive_raw
    [consume, restored] >> to_json >> upload_parts


def build_event_pipeline(consumer_group: str = "logproc-on-new-logs") -> None:
    """Consume what arrived (group mode: committed only after the durable write) and analyse it.

    Objects are named by the run id: a retry of the run rewrites the same objects.
    """
    warn_if_staging_is_not_shared()
    run_dir = f"{staging_base()}/{{{{ dag.dag_id }}}}/{TOPIC}/{RUN_KEY}"
    consume = _consume_step("consume_new", f"{run_dir}/raw.ion", group_id=consumer_group,
                            max_records="{{ params.max_records }}", max_duration="{{ params.max_duration_seconds }}")
    to_json = _to_json_step(_templated(consume.output), f"{run_dir}/raw.jsonl")
    upload_parts, _analyze, _report = add_analysis_steps(
        to_json,
        blob_prefix=f"{TOPIC}/events/{RUN_KEY}",
        pipeline_counts=pipeline_counts("consume_new"),
    )
    consume >> to_json >> upload_parts
