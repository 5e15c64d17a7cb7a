"""Where sample logs go: the broker of the ``kafka`` connection, and a topic that keeps what is written.

A broker deletes records older than the topic's ``retention.ms`` (seven days by default), judged by
their timestamps, which sample logs set to the log's own time: a sample day older than the retention
would be deleted as soon as it is written, and the DAG would then read an empty window. So the topic
is created with retention off, and an existing topic that would delete the day is refused, loudly.
"""

from __future__ import annotations

import json
import os
import time
from typing import Any
from urllib.parse import parse_qs, urlsplit

DEFAULT_KAFKA_CONN_ID = "kafka_default"
DEFAULT_PARTITIONS = 3
ADMIN_TIMEOUT = 15.0


class SampleTopicError(RuntimeError):
    """Sample logs cannot go where they were asked to; the message says why and what to do."""


def bootstrap_servers(conn_id: str = DEFAULT_KAFKA_CONN_ID, explicit: str | None = None) -> str:
    """Return the broker to produce to: ``explicit``, else the ``kafka`` connection ``conn_id``.

    The connection is read from ``AIRFLOW_CONN_<CONN_ID>`` (JSON, as ``logproc-local-stack`` writes it,
    or a ``kafka://host:port`` URI), else from Airflow's own connections when Airflow is installed.
    """
    if explicit:
        return explicit
    env_name = f"AIRFLOW_CONN_{conn_id.upper()}"
    raw = os.environ.get(env_name)
    if raw:
        servers = _servers_from_connection_text(raw)
        if servers:
            return servers
        raise SampleTopicError(f"{env_name} has no bootstrap.servers in its extra: cannot tell where Kafka is")
    servers = _servers_from_airflow(conn_id)
    if servers:
        return servers
    raise SampleTopicError(
        f"no Kafka to produce to: pass --bootstrap-servers, or define the kafka connection {conn_id!r} "
        f"(e.g. set {env_name}, which logproc-local-stack writes to its env file)"
    )


def _servers_from_connection_text(raw: str) -> str | None:
    text = raw.strip()
    if text.startswith("{"):
        extra = json.loads(text).get("extra") or {}
        if isinstance(extra, str):
            extra = json.loads(extra)
        return extra.get("bootstrap.servers")
    parts = urlsplit(text)
    query = parse_qs(parts.query)
    if "bootstrap.servers" in query:
        return query["bootstrap.servers"][0]
    return parts.netloc or None


def _servers_from_airflow(conn_id: str) -> str | None:
    try:
        from airflow.providers.common.compat.sdk import BaseHook
    except ImportError:  # the local stand-ins run without Airflow too
        return None
    try:
        connection = BaseHook.get_connection(conn_id)
    except Exception:  # no such connection: the caller says what to do
        return None
    return (connection.extra_dejson or {}).get("bootstrap.servers")


def ensure_topic_keeps(bootstrap: str, topic: str, oldest_timestamp_ms: int, *,
                       partitions: int = DEFAULT_PARTITIONS, now_ms: int | None = None) -> str:
    """Create ``topic`` with retention off, or check that the existing topic keeps records this old.

    Returns what was done (``created`` / ``exists``); raises :class:`SampleTopicError` naming the topic's
    retention when it would delete the records at once.
    """
    from confluent_kafka.admin import AdminClient, ConfigResource, NewTopic

    admin = AdminClient({"bootstrap.servers": bootstrap})
    existing = admin.list_topics(timeout=ADMIN_TIMEOUT).topics
    if topic not in existing:
        futures = admin.create_topics([NewTopic(topic, partitions, 1, config={"retention.ms": "-1"})])
        for future in futures.values():
            future.result(timeout=ADMIN_TIMEOUT)
        return "created"
    resource = ConfigResource("topic", topic)
    config: dict[str, Any] = admin.describe_configs([resource])[resource].result(timeout=ADMIN_TIMEOUT)
    entry = config.get("retention.ms")
    retention_ms = int(entry.value) if entry is not None and entry.value not in (None, "") else -1
    now_ms = int(time.time() * 1000) if now_ms is None else now_ms
    if retention_ms >= 0 and oldest_timestamp_ms < now_ms - retention_ms:
        days = retention_ms / 86_400_000
        raise SampleTopicError(
            f"topic {topic!r} keeps records for {days:g} day(s) (retention.ms={retention_ms}): the broker would "
            f"delete these records at once, as their timestamps are older. Use a more recent --day, another "
            f"--topic (created with retention off), or raise the topic's retention (retention.ms=-1)"
        )
    return "exists"
