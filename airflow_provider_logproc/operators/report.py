"""The pipeline's last step: merge the Batch tasks' partial analyses into a summary and a report."""

from __future__ import annotations

import contextlib
import datetime as dt
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any

from airflow.providers.common.compat.sdk import BaseOperator, BaseOperatorLink, XCom, conf

from airflow_provider_logproc._templating import from_rendered_list
from airflow_provider_logproc.reporting.accounting import accounting, compare_with_previous, count_reasons
from airflow_provider_logproc.reporting.volume import (
    DEFAULT_MIN_RECORDS,
    DEFAULT_MIN_SHARE_OF_BASELINE,
    add_volume_anomalies,
    volume_anomalies,
    window_record_count,
)
from airflow_provider_logproc.version_compat import AIRFLOW_V_3_1_PLUS

if TYPE_CHECKING:
    from airflow.providers.common.compat.sdk import Context, TaskInstanceKey

SUMMARY_NAME = "summary.json"
REPORT_NAME = "report.html"
# Kept-aside records, copied beside the results: (pipeline_counts key of the file, blob name).
KEPT_ASIDE = {"dead_lettered": ("undecodable_records_file", "kept-aside/dead-letters.jsonl"),
              "invalid_at_conversion": ("invalid_records_file", "kept-aside/invalid.jsonl")}


REPORT_PAGE_XCOM_KEY = "report_page"
# A read-only SAS link to the report, for notifications read outside Airflow: long enough to be read
# the next working morning, short enough to be worthless a few days later.
DEFAULT_REPORT_LINK_LIFETIME = dt.timedelta(hours=36)


class LogReportLink(BaseOperatorLink):
    """The window's report on the "Log reports" page of the UI (Airflow 3.1+; no link on earlier versions)."""

    name = "Log report"

    def get_link(self, operator: BaseOperator, *, ti_key: TaskInstanceKey) -> str:
        return XCom.get_value(key=REPORT_PAGE_XCOM_KEY, ti_key=ti_key) or ""


def api_base_url() -> str:
    """Return the API server's configured base URL (``[api] base_url``), or "" (links relative to the server)."""
    return (conf.get("api", "base_url", fallback="") or "").rstrip("/")


def report_page(report_uri: str) -> str | None:
    """Return the plugin's URL of a report (Airflow 3.1+, where the plugin serves it), else None."""
    if not AIRFLOW_V_3_1_PLUS:
        return None
    from airflow_provider_logproc.reporting.catalog import report_page_url

    container, name = blob_location(report_uri)
    return report_page_url(api_base_url(), container, name)


def blob_location(url: str) -> tuple[str, str]:
    """``(container, blob name)`` of a blob URL, for Azure and for emulator-style (account in path) URLs."""
    from azure.storage.blob import BlobClient

    client = BlobClient.from_blob_url(url)
    if not client.container_name or not client.blob_name:
        raise ValueError(f"not a blob URL (no container or blob name): {url}")
    return client.container_name, client.blob_name


def anomaly_count(summary: dict[str, Any]) -> int:
    anomalies = summary.get("anomalies") or {}
    return sum(len(items) for items in anomalies.values() if isinstance(items, list))


def headline(summary: dict[str, Any]) -> dict[str, Any]:
    """Return the small counters that go to XCom (the summary itself stays in Blob Storage)."""
    totals, errors = summary["totals"], summary["errors"]
    return {
        "valid": totals["valid"],
        "invalid": totals["invalid"],
        "client_errors": errors["client_errors"],
        "server_errors": errors["server_errors"],
        "unique_ips": summary["unique_ips"],
        "anomalies": anomaly_count(summary),
    }


class LogAnalysisReportOperator(BaseOperator):
    """Merge partial analyses (blobs written by the Batch tasks) into ``summary.json`` and ``report.html``.

    Both are written to ``container`` under ``prefix`` (replacing a previous run's: same window, same
    names). Partials are merged in URL order, so the same partials always give the same bytes. When the
    analysis finds anomalies, each of ``anomaly_notifiers`` is called with the task's context.

    :param partials: blob URLs of the partial analyses (templated; usually from the Batch step's XCom).
    :param container: the results container (templated).
    :param prefix: blob name prefix for the summary and the report (templated).
    :param pipeline_counts: counters from the earlier steps (templated), e.g. dead-lettered records,
        recorded in the summary under ``pipeline`` so the report accounts for every record.
    :param baseline_prefixes: prefixes of earlier windows' results in ``container`` (templated list; the
        daily DAG passes the previous 7 days). Their ``summary.json`` files, where they exist, are the
        baseline for the volume check, and the first one's the day-over-day comparison. When runs may
        overlap (a backfill), give this task ``depends_on_past=True`` as the daily DAG does: otherwise
        what it reads depends on which run's report finished first.
    :param min_records: a window with fewer records is an anomaly (``empty_window`` at 0).
    :param min_share_of_baseline: a window with fewer records than this share of the baseline's median
        is an anomaly (``low_volume``); needs at least 3 earlier windows.
    :param title: the report's title (templated).
    :param wasb_conn_id: the ``wasb`` connection.
    :param anomaly_notifiers: Airflow notifiers called when anomalies are found. Their ``details`` get
        the anomalies and a link to the report: ``report_page`` (the UI plugin) on Airflow 3.1+ when
        ``[api] base_url`` is set, else ``report_link``, a read-only SAS URL valid for
        ``report_link_lifetime`` (never logged, never in XCom).
    :param report_link_lifetime: lifetime of that SAS link (at most 7 days).
    :param exact_keys: the merge counts client IPs, paths and user agents exactly up to this many distinct
        keys each (None: the analyzer's default, 500 000); past it a dimension is sketched and its figures
        are estimates. Partials are read one at a time, so this step's memory is bounded by this bound and
        the largest partial, whatever the day's cardinality.
    :return: ``{"summary_uri": ..., "report_uri": ...}``; XCom key ``headline`` holds the counters.
    """

    template_fields: Sequence[str] = ("partials", "container", "prefix", "pipeline_counts", "baseline_prefixes",
                                      "title")
    ui_color = "#e8f4ea"
    operator_extra_links = (LogReportLink(),)

    def __init__(
        self,
        *,
        partials: list[str] | str,
        container: str,
        prefix: str,
        pipeline_counts: dict[str, Any] | None = None,
        baseline_prefixes: Sequence[str] | str | None = None,
        min_records: int = DEFAULT_MIN_RECORDS,
        min_share_of_baseline: float = DEFAULT_MIN_SHARE_OF_BASELINE,
        title: str = "Log analysis {{ data_interval_start | ds }} ({{ params.topic }})",
        wasb_conn_id: str = "wasb_default",
        anomaly_notifiers: Sequence[Any] = (),
        report_link_lifetime: dt.timedelta = DEFAULT_REPORT_LINK_LIFETIME,
        exact_keys: int | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.partials = partials
        self.container = container
        self.prefix = prefix
        self.pipeline_counts = pipeline_counts
        self.baseline_prefixes = baseline_prefixes
        self.min_records = int(min_records)
        self.min_share_of_baseline = float(min_share_of_baseline)
        self.title = title
        self.wasb_conn_id = wasb_conn_id
        self.anomaly_notifiers = list(anomaly_notifiers)
        self.report_link_lifetime = report_link_lifetime
        self.exact_keys = exact_keys
        # (partial URLs, {"summary_uri", "report_uri"}, lines analysed) once merged, for OpenLineage.
        self._lineage: tuple[list[str], dict[str, str], int | None] = ([], {}, None)

    def execute(self, context: Context) -> dict[str, str]:
        import orjson
        from airflow.providers.microsoft.azure.hooks.wasb import WasbHook
        from azure.storage.blob import ContentSettings

        from logproc_analyzer import merge_aggregates, read_partial_bytes, render_report, summarize

        urls = [self.partials] if isinstance(self.partials, str) else list(self.partials or [])
        if not urls:
            raise ValueError(f"{self.task_id}: no partial analyses to merge (partials is empty)")
        service = WasbHook(wasb_conn_id=self.wasb_conn_id).get_conn()

        def partials() -> Iterator[Any]:
            # One partial at a time into the running merge, whose exact keys are bounded (past the
            # bound a dimension is sketched): memory stays bounded whatever the day's cardinality. Client
            # tables are read packed (addresses as bytes, no text per client until the summary names one).
            for url in sorted(urls):
                container, name = blob_location(url)
                data = service.get_blob_client(container, name).download_blob().readall()
                try:
                    yield read_partial_bytes(data, where=url, packed_ips=True)
                except ValueError as exc:
                    raise ValueError(f"{self.task_id}: {url} is not a partial analysis: {exc}") from None

        summary = summarize(merge_aggregates(partials(), exact_keys=self.exact_keys))
        if self.pipeline_counts:
            summary["pipeline"] = self.pipeline_counts
        prefix = self.prefix.strip("/")
        earlier = self._earlier_summaries(service)
        baseline = [window_record_count(found) for found in earlier.values() if found is not None]
        previous_prefix = next(iter(earlier), None)
        comparison = compare_with_previous(summary, earlier.get(previous_prefix) if previous_prefix else None)
        if comparison is not None:
            summary["previous_window"] = comparison
        if self.pipeline_counts:
            kept = {part: self._keep_beside_results(service, prefix, key, name)
                    for part, (key, name) in KEPT_ASIDE.items()}
            summary["accounting"] = accounting(self.pipeline_counts, summary["totals"]["lines"],
                                               kept["dead_lettered"], kept["invalid_at_conversion"])
            if not summary["accounting"]["adds_up"]:
                self.log.warning("the window's record counts do not add up: %s", summary["accounting"])
        records = window_record_count(summary)
        volume = volume_anomalies(records, baseline, min_records=self.min_records,
                                  min_share=self.min_share_of_baseline)
        add_volume_anomalies(summary, volume)
        for anomaly in volume:
            self.log.warning("volume anomaly: %s", anomaly["message"])
        outputs = {
            "summary_uri": (f"{prefix}/{SUMMARY_NAME}",
                            orjson.dumps(summary, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS),
                            "application/json"),
            "report_uri": (f"{prefix}/{REPORT_NAME}", render_report(summary, title=self.title).encode(),
                           "text/html; charset=utf-8"),
        }
        result: dict[str, str] = {}
        for key, (name, body, content_type) in outputs.items():
            blob = service.get_blob_client(self.container, name)
            blob.upload_blob(body, overwrite=True, content_settings=ContentSettings(content_type=content_type))
            result[key] = blob.url
        counters = headline(summary)
        self.log.info("merged %d partials: %s; summary %s, report %s",
                      len(urls), counters, result["summary_uri"], result["report_uri"])
        context["ti"].xcom_push(key="headline", value=counters)
        page = report_page(result["report_uri"])
        if page:
            context["ti"].xcom_push(key=REPORT_PAGE_XCOM_KEY, value=page)
        self._update_outlets(context, result, counters)
        self._lineage = (sorted(urls), result, summary["totals"]["lines"])
        if counters["anomalies"]:
            self._notify_anomalies(context, summary, result, self._report_links(service, result, page))
        return result

    def get_openlineage_facets_on_complete(self, task_instance: Any) -> Any:
        """Return the OpenLineage inputs (the partial analyses) and outputs (summary.json, report.html)."""
        from airflow_provider_logproc.lineage.datasets import blob_dataset, blob_datasets, operator_lineage

        partials, result, lines = self._lineage
        outputs = [blob_dataset(url, output=True, row_count=lines) for url in result.values()]
        return operator_lineage(blob_datasets(partials), outputs)

    def _update_outlets(self, context: Context, result: dict[str, str], counters: dict[str, Any]) -> None:
        """Put the window and where its results are in the extra of each outlet's event (downstream DAGs read it)."""
        outlet_events = context.get("outlet_events")
        if not self.outlets or outlet_events is None:
            return
        start, end = context.get("data_interval_start"), context.get("data_interval_end")
        extra = {
            "topic": (context.get("params") or {}).get("topic"),
            "window_start": start.isoformat() if start else None,
            "window_end": end.isoformat() if end else None,
            "summary_uri": result["summary_uri"],
            "report_uri": result["report_uri"],
            "headline": counters,
        }
        for outlet in self.outlets:
            outlet_events[outlet].extra = extra

    def _earlier_summaries(self, service: Any) -> dict[str, dict[str, Any] | None]:
        """Read the earlier windows' summaries by prefix, most recent first; None where a window has none."""
        import orjson
        from azure.core.exceptions import ResourceNotFoundError

        prefixes = from_rendered_list(self.baseline_prefixes, f"{self.task_id}: baseline_prefixes", error=ValueError)
        if prefixes is None:
            return {}
        if isinstance(prefixes, str):
            prefixes = [prefixes]
        found: dict[str, dict[str, Any] | None] = {}
        for earlier in prefixes:
            name = f"{str(earlier).strip('/')}/{SUMMARY_NAME}"
            try:
                data = service.get_blob_client(self.container, name).download_blob().readall()
                found[str(earlier)] = orjson.loads(data)
            except ResourceNotFoundError:
                found[str(earlier)] = None
        self.log.info("earlier windows: %d of %d have a summary", sum(v is not None for v in found.values()),
                      len(found))
        return found

    def _keep_beside_results(self, service: Any, prefix: str, counts_key: str, name: str) -> dict[str, Any]:
        """Count a kept-aside file by reason and copy it beside the results (or clear an earlier run's copy)."""
        from airflow.providers.common.compat.sdk import ObjectStoragePath
        from azure.core.exceptions import ResourceNotFoundError

        blob = service.get_blob_client(self.container, f"{prefix}/{name}")
        uri = (self.pipeline_counts or {}).get(counts_key)
        if not uri or uri == "None":
            with contextlib.suppress(ResourceNotFoundError):
                blob.delete_blob()  # a rerun without kept-aside records must not show the last run's
            return {"count": 0, "by_reason": {}, "file": None}
        path = ObjectStoragePath(str(uri))
        with path.open("rb") as source:
            # readline, not iteration: Airflow 2's ObjectStoragePath file wrapper is not iterable.
            counted = count_reasons(iter(source.readline, b""))
        with path.open("rb") as source:
            blob.upload_blob(source, overwrite=True)
        return {**counted, "file": blob.url}

    def _report_links(self, service: Any, result: dict[str, str], page: str | None) -> dict[str, str]:
        """Return where a notification's reader opens the report: the UI page, else a read-only SAS URL."""
        from azure.core.exceptions import AzureError

        from airflow_provider_logproc.azure_batch.sas import SasError, blob_sas_url

        if page and page.startswith(("http://", "https://")):
            return {"report_page": page}
        container, name = blob_location(result["report_uri"])
        try:
            return {"report_link": blob_sas_url(service, container, name, "r", self.report_link_lifetime)}
        except (SasError, AzureError) as exc:  # e.g. a connection that holds a SAS itself; no token exists yet
            self.log.warning("no SAS link to the report in the notification: %s", type(exc).__name__)
            return {}

    def _notify_anomalies(self, context: Context, summary: dict[str, Any], result: dict[str, str],
                          links: dict[str, str]) -> None:
        details = {
            "anomalies": [a.get("message") for items in summary["anomalies"].values() for a in items][:20],
            "report_uri": result["report_uri"],
            **links,
        }
        for notifier in self.anomaly_notifiers:
            if hasattr(notifier, "details") and isinstance(notifier.details, dict):
                notifier.details = {**notifier.details, **details}
            notifier(context)


__all__ = ["LogAnalysisReportOperator", "LogReportLink", "api_base_url", "report_page"]
