"""A notifier that works with no mail server or chat app: a JSON-lines file plus the task log.

It is the pipeline's default; SMTP, Slack and other standard notifiers are added beside it when
configured (see ``dags/logproc_daily.py``). Messages go through Airflow's secrets masker before they
are written, so a connection's password in an exception text never reaches the file.
"""

from __future__ import annotations

import datetime as dt
import fcntl
import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import orjson
from airflow.providers.common.compat.sdk import BaseNotifier

log = logging.getLogger(__name__)

DEFAULT_FILE_ENV = "LOGPROC_NOTIFICATIONS_FILE"


def default_notifications_file() -> Path:
    configured = os.environ.get(DEFAULT_FILE_ENV)
    if configured:
        return Path(configured)
    return Path(os.environ.get("AIRFLOW_HOME", Path.home() / "airflow")) / "logproc-notifications.jsonl"


def _redact(value: Any) -> Any:
    from airflow.providers.common.compat.sdk import redact

    return redact(value)


class LogprocFileNotifier(BaseNotifier):
    """Append one JSON line per notification to ``path`` and log it.

    :param message: what happened (templated), e.g. ``"{{ dag.dag_id }} failed for {{ ds }}"``.
    :param kind: ``failure`` or ``anomaly`` (free text; recorded as is).
    :param path: the file (templated); default ``$LOGPROC_NOTIFICATIONS_FILE`` or
        ``$AIRFLOW_HOME/logproc-notifications.jsonl``.
    :param details: extra JSON-serialisable facts (templated), e.g. anomaly counts.
    """

    template_fields: Sequence[str] = ("message", "path", "details")
    # Messages are text whatever the DAG's setting (a serialized DAG in a callback may not have one).
    render_template_as_native_obj = False

    def __init__(
        self,
        *,
        message: str,
        kind: str = "failure",
        path: str | None = None,
        details: dict[str, Any] | None = None,
    ):
        super().__init__()
        self.message = message
        self.kind = kind
        self.path = path
        self.details = details or {}

    def render_template_fields(self, context: Any, jinja_env: Any = None) -> None:
        # Render with a plain text environment: a DAG that renders templates as native objects would turn
        # "window {{ data_interval_start }}" into a failed concatenation, and a SerializedDAG handed to
        # DAG-level callbacks (e.g. under `airflow dags test`) has no template environment at all.
        super().render_template_fields(context, jinja_env or self.get_template_env(dag=None))

    def _render(self, template: Any, context: Any, dag: Any = None) -> Any:
        # The notifier, not the context's DAG, decides text vs native rendering (its class attribute
        # above): Airflow 2's base notifier would read the flag from whatever ``context["dag"]`` is.
        return super()._render(template, context, dag=self)  # type: ignore[arg-type]  # duck-typed: the flag

    def notify(self, context: Any) -> None:
        ti = context.get("ti") or context.get("task_instance")
        exception = context.get("exception")
        entry = {
            "at": dt.datetime.now(dt.UTC).isoformat(),
            "kind": self.kind,
            "message": self.message,
            "dag_id": getattr(context.get("dag"), "dag_id", None),
            "run_id": context.get("run_id"),
            "task_id": getattr(ti, "task_id", None),
            "try_number": getattr(ti, "try_number", None),
            "exception": f"{type(exception).__name__}: {exception}" if exception else None,
            "details": self.details,
        }
        entry = _redact(entry)
        target = Path(self.path) if self.path else default_notifications_file()
        target.parent.mkdir(parents=True, exist_ok=True)
        line = orjson.dumps(entry, default=str) + b"\n"
        with open(target, "ab") as handle:
            # Several tasks may notify at once; a line must never interleave with another.
            fcntl.flock(handle, fcntl.LOCK_EX)
            handle.write(line)
        log.warning("logproc notification (%s): %s", self.kind, entry["message"])


__all__ = ["LogprocFileNotifier"]
