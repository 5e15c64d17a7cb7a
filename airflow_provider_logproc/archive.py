"""Re-analysis past retention: does Kafka still hold a window, and the run's archived raw window.

Each daily run archives its raw Ion window in Blob Storage. When the topic's retention has since
removed part of a window, the pipeline restores that archive instead of consuming (a partial window
from Kafka would silently give a different answer for the same day).
"""

from __future__ import annotations

import datetime as dt
import logging
from typing import Any

from airflow_provider_logproc.kafka.config import connection_config
from airflow_provider_logproc.kafka.window import to_epoch_ms

log = logging.getLogger(__name__)


def earliest_retained_timestamps(consumer: Any, topic: str, timeout: float = 10.0) -> dict[int, int | None]:
    """Per partition, the timestamp (ms) of the earliest retained record, or None if nothing was deleted.

    ``None`` means the partition's low watermark is 0: retention has removed nothing from it.
    A partition whose every record was removed reports ``-1`` (something was deleted, nothing is left).
    """
    from confluent_kafka import TopicPartition

    metadata = consumer.list_topics(topic, timeout=timeout)
    if topic not in metadata.topics or metadata.topics[topic].error is not None:
        raise ValueError(f"Kafka topic {topic!r} does not exist (or is not readable with this connection)")
    earliest: dict[int, int | None] = {}
    for partition in sorted(metadata.topics[topic].partitions):
        low, high = consumer.get_watermark_offsets(TopicPartition(topic, partition), timeout=timeout)
        if low <= 0:
            earliest[partition] = None
            continue
        if low >= high:
            earliest[partition] = -1
            continue
        consumer.assign([TopicPartition(topic, partition, low)])
        message = consumer.poll(timeout)
        if message is None or message.error() is not None:
            raise RuntimeError(f"could not read the earliest retained record of {topic}[{partition}] at offset {low}")
        earliest[partition] = message.timestamp()[1]
    consumer.unassign()
    return earliest


def window_retained(earliest: dict[int, int | None], since: dt.datetime) -> bool:
    """Kafka still holds every record of a window starting at ``since`` (pure; see module doc)."""
    since_ms = to_epoch_ms(since)
    return all(ts is None or (ts != -1 and ts <= since_ms) for ts in earliest.values())


def kafka_holds_window(
    topic: str, since: dt.datetime, until: dt.datetime, kafka_config_id: str = "kafka_default"
) -> bool:
    from confluent_kafka import Consumer

    config = {**connection_config(kafka_config_id), "enable.auto.commit": False}
    config.setdefault("group.id", "logproc-retention-check")
    consumer = Consumer(config)
    try:
        earliest = earliest_retained_timestamps(consumer, topic)
    finally:
        consumer.close()
    held = window_retained(earliest, since)
    if not held:
        log.warning("Kafka no longer holds all of window [%s, %s) of %s: earliest retained per partition %s",
                    since, until, topic, earliest)
    return held


def archive_exists(container: str, blob_name: str, wasb_conn_id: str = "wasb_default") -> bool:
    from airflow.providers.microsoft.azure.hooks.wasb import WasbHook

    client = WasbHook(wasb_conn_id=wasb_conn_id).get_conn().get_blob_client(container, blob_name)
    return bool(client.exists())


def download_archive(
    container: str, blob_name: str, target_uri: str, wasb_conn_id: str = "wasb_default"
) -> tuple[str, dict[str, str]]:
    """Stream the archived window to ``target_uri`` (atomically: a temp name, then a rename).

    Returns the target and the archive's metadata (the counters its run recorded beside it).
    """
    from airflow.providers.common.compat.sdk import ObjectStoragePath
    from airflow.providers.microsoft.azure.hooks.wasb import WasbHook

    client = WasbHook(wasb_conn_id=wasb_conn_id).get_conn().get_blob_client(container, blob_name)
    target = ObjectStoragePath(target_uri)
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.parent / f".{target.name}.partial"
    with partial.open("wb") as out:
        for chunk in client.download_blob(max_concurrency=2).chunks():
            out.write(chunk)
    partial.rename(target)
    metadata = dict(client.get_blob_properties().metadata or {})
    log.info("restored the archived window %s/%s to %s (%s)", container, blob_name, target_uri, metadata)
    return str(target), metadata


__all__ = [
    "archive_exists",
    "download_archive",
    "earliest_retained_timestamps",
    "kafka_holds_window",
    "window_retained",
]
