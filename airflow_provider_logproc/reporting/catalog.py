"""The days whose reports are in a results container, with their headline numbers (for the UI plugin).

The report step writes ``<topic>/<window path>/summary.json`` and ``report.html`` side by side (see
:mod:`airflow_provider_logproc.operators.report`). This module finds those pairs, reads the summaries'
headline counters and renders the "Log reports" page; it talks to Blob Storage through a
``ContainerClient`` handed in, and knows nothing of Airflow's web servers.
"""

from __future__ import annotations

import html
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

SUMMARY_SUFFIX = "/summary.json"
REPORT_SUFFIX = "/report.html"
# Where the plugin app is mounted on the API server, and the UI's menu entry.
PLUGIN_URL_PREFIX = "/logproc-reports"
DEFAULT_LIMIT = 60
MAX_LIMIT = 500


@dataclass(frozen=True)
class ReportDay:
    """One window's results: where they are and the counters a person looks at first."""

    container: str
    prefix: str
    headline: dict[str, Any] | None  # None: the summary could not be read (shown as such, not hidden)

    @property
    def report_path(self) -> str:
        """Return the report's path under the plugin's mount point (URL-quoted, no leading slash)."""
        return report_path(self.container, f"{self.prefix}{REPORT_SUFFIX}")


def report_path(container: str, blob_name: str) -> str:
    """``<container>/<blob name>``, URL-quoted: the part of the plugin URL that names a report."""
    return f"{quote(container, safe='')}/{quote(blob_name, safe='/')}"


def report_page_url(base_url: str, container: str, blob_name: str) -> str:
    """Return the plugin's URL of the report ``blob_name`` (relative to the server when ``base_url`` is empty)."""
    return f"{base_url.rstrip('/')}{PLUGIN_URL_PREFIX}/{report_path(container, blob_name)}"


def is_servable(blob_name: str) -> bool:
    """Say whether the plugin may serve ``blob_name``: only a report or a summary, never other results."""
    if not blob_name or blob_name.startswith("/") or any(part in ("", ".", "..") for part in blob_name.split("/")):
        return False
    return blob_name.endswith((REPORT_SUFFIX, SUMMARY_SUFFIX))


def summary_prefixes(blob_names: Iterable[str], limit: int = DEFAULT_LIMIT) -> list[str]:
    """Return the prefixes that hold a ``summary.json``, newest window first (names sort by date), at most ``limit``."""
    prefixes = {name[: -len(SUMMARY_SUFFIX)] for name in blob_names if name.endswith(SUMMARY_SUFFIX)}
    # "<topic>/yyyy/mm/dd[/HHMMSS-HHMMSS]": newest window first, whatever the topic.
    return sorted(prefixes, key=lambda p: (p.partition("/")[2], p), reverse=True)[: max(0, limit)]


def read_report_days(container_client: Any, limit: int = DEFAULT_LIMIT) -> list[ReportDay]:
    """List the container's windows that have a summary, newest first, with the summaries' headlines."""
    import orjson
    from azure.core.exceptions import ResourceNotFoundError

    from airflow_provider_logproc.operators.report import headline

    container = container_client.container_name
    names = (blob.name for blob in container_client.list_blobs())
    days = []
    for prefix in summary_prefixes(names, limit):
        counters: dict[str, Any] | None
        try:
            data = container_client.get_blob_client(f"{prefix}{SUMMARY_SUFFIX}").download_blob().readall()
            counters = headline(orjson.loads(data))
        except (ResourceNotFoundError, orjson.JSONDecodeError, KeyError, TypeError):
            counters = None
        days.append(ReportDay(container, prefix, counters))
    return days


COLUMNS = (("valid", "valid records"), ("invalid", "invalid"), ("client_errors", "4xx"),
           ("server_errors", "5xx"), ("unique_ips", "unique IPs"), ("anomalies", "anomalies"))


def render_report_list(days: list[ReportDay], containers: list[str]) -> str:
    """Return the "Log reports" page: one row per window with its numbers and a link to its report."""
    rows = []
    for day in days:
        topic, _, window = day.prefix.partition("/")
        if day.headline is None:
            cells = f'<td colspan="{len(COLUMNS)}" class="missing">summary unreadable</td>'
        else:
            cells = "".join(f'<td class="num" data-key="{key}">{_number(day.headline.get(key))}</td>'
                            for key, _ in COLUMNS)
        anomalous = " anomalous" if day.headline and day.headline.get("anomalies") else ""
        rows.append(
            f'<tr class="day{anomalous}" data-prefix="{html.escape(day.prefix)}">'
            f"<td>{html.escape(window or day.prefix)}</td><td>{html.escape(topic)}</td>{cells}"
            f'<td><a href="{html.escape(day.report_path)}">open report</a></td></tr>'
        )
    head = "".join(f"<th>{html.escape(label)}</th>" for _, label in COLUMNS)
    body = "\n".join(rows) or f'<tr><td colspan="{len(COLUMNS) + 3}">no reports yet</td></tr>'
    where = ", ".join(html.escape(c) for c in containers)
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Log reports</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 1.5rem; color: #1b1f23; }}
table {{ border-collapse: collapse; }} th, td {{ padding: .35rem .8rem; border-bottom: 1px solid #ddd; }}
th {{ text-align: left; background: #f4f6f8; }} td.num {{ text-align: right; font-variant-numeric: tabular-nums; }}
tr.anomalous td {{ background: #fff4e5; }} .missing {{ color: #a00; }} .where {{ color: #666; }}
</style></head><body>
<h1>Log reports</h1>
<p class="where">Results container(s): {where}. Newest window first.</p>
<table><thead><tr><th>window</th><th>topic</th>{head}<th></th></tr></thead>
<tbody>
{body}
</tbody></table>
</body></html>
"""


def _number(value: Any) -> str:
    return f"{value:,}" if isinstance(value, int) else html.escape(str(value))


__all__ = [
    "PLUGIN_URL_PREFIX",
    "ReportDay",
    "is_servable",
    "read_report_days",
    "render_report_list",
    "report_page_url",
    "report_path",
    "summary_prefixes",
]
