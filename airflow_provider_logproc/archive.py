"""Re-analysis past retention: does Kafka still hold a window, and the run's archived raw window.

Each daily run archives its raw Ion window in Blob Storage: one ``raw.ion``, or, when the day was
consumed by mapped tasks, one ``raw-groups/part-NNN.ion`` per partition group. When the topic's
retention has since removed part of a window, the pipeline restores that archive instead of consuming
(a partial window from Kafka would silently give a different answer for the same day).
"""

from __future__ import annotations

import datetime as dt
import logging
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from airflow_provider_logproc.kafka.config import connection_config
from airflow_provider_logproc.kafka.window import to_epoch_ms

log = logging.getLogger(__name__)

# Metadata of an archived part: how many groups the run that wrote it had (parts 000 to count-1).
GROUP_COUNT_METADATA = "consume_groups"
# Counters archived beside a window that add up over its parts.
SUMMED_COUNTERS = ("consumed_records", "undecodable_records")
_PART_NAME = re.compile(r"part-(\d{3,})\.ion$")
# The Ion binary version marker: a binary part starts with it; text parts are joined by a newline.
_ION_BINARY_MARKER = b"\xe0\x01\x00\xea"


class ArchiveIncompleteError(RuntimeError):
    """The window was archived in parts, but not all parts of its last mapped run are there."""


@dataclass(frozen=True)
class ArchivedPart:
    """One blob of a window archived in parts, as listed: its name, group count metadata and age."""

    name: str
    group_count: int | None
    last_modified: dt.datetime


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


def _stream_blobs(container: str, blob_names: list[str], target_uri: str, wasb_conn_id: str
                  ) -> tuple[str, list[dict[str, str]]]:
    """Stream blobs, in order, into one ``target_uri`` (atomically: a temp name, then a rename); return the
    target and each blob's metadata, as its download reported it.

    Ion streams concatenate: a binary part starts with its own version marker, text parts are joined on a
    line break (one blob is copied byte for byte).
    """
    from airflow.providers.common.compat.sdk import ObjectStoragePath
    from airflow.providers.microsoft.azure.hooks.wasb import WasbHook

    container_client = WasbHook(wasb_conn_id=wasb_conn_id).get_conn().get_container_client(container)
    target = ObjectStoragePath(target_uri)
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.parent / f".{target.name}.partial"
    per_blob = []
    last = b"\n"  # the last byte written: a text part that ends without a line break gets one
    with partial.open("wb") as out:
        for name in blob_names:
            download = container_client.get_blob_client(name).download_blob(max_concurrency=2)
            for index, chunk in enumerate(download.chunks()):
                if index == 0 and not chunk.startswith(_ION_BINARY_MARKER) and last not in (b"\n", b" "):
                    out.write(b"\n")
                out.write(chunk)
                last = chunk[-1:] or last
            per_blob.append(dict(download.properties.metadata or {}))
    partial.rename(target)
    return str(target), per_blob


def download_archive(
    container: str, blob_name: str, target_uri: str, wasb_conn_id: str = "wasb_default"
) -> tuple[str, dict[str, str]]:
    """Stream the archived window to ``target_uri`` (atomically: a temp name, then a rename).

    Returns the target and the archive's metadata (the counters its run recorded beside it).
    """
    target, (metadata,) = _stream_blobs(container, [blob_name], target_uri, wasb_conn_id)
    log.info("restored the archived window %s/%s to %s (%s)", container, blob_name, target_uri, metadata)
    return target, metadata


def current_parts(listed: Iterable[ArchivedPart]) -> list[str]:
    """Return the part names the last mapped run of the window wrote, in part order.

    A rerun with fewer groups leaves the earlier run's higher-numbered parts behind; taking them too
    would count their records twice. The newest part says how many groups its run had (``count``);
    parts 000 to count-1 must all be there and say the same, else the archive is incomplete.
    """
    parts = {int(match.group(1)): part for part in listed if (match := _PART_NAME.search(part.name))}
    if not parts:
        return []
    newest = max(parts.values(), key=lambda part: part.last_modified)
    count = newest.group_count
    if count is None or count < 1:
        raise ArchiveIncompleteError(f"archived part {newest.name} does not say how many groups its run had "
                                     f"(metadata {GROUP_COUNT_METADATA!r}): cannot tell its parts from stale ones")
    missing = [index for index in range(count) if index not in parts or parts[index].group_count != count]
    if missing:
        raise ArchiveIncompleteError(
            f"the window was archived in {count} parts (by the run that wrote {newest.name}), but part(s) "
            f"{', '.join(f'{index:03d}' for index in missing)} are missing or from another run")
    stale = sorted(index for index in parts if index >= count)
    if stale:
        log.info("ignoring %d archived part(s) left by an earlier run with more groups: %s", len(stale),
                 [parts[index].name for index in stale])
    return [parts[index].name for index in range(count)]


def newest_archive(listed: Iterable[ArchivedPart], window_prefix: str) -> list[str]:
    """Return the blobs holding the window's newest archive: ``[<window>/raw.ion]``, or its parts in order.

    A day may have been archived both ways (a single-task run, later a mapped one, or the other way
    round); the newer holds what the later run read, late records included. ``[]``: no archive.
    """
    head = window_prefix.rstrip("/")
    listed = list(listed)
    single = next((blob for blob in listed if blob.name == f"{head}/raw.ion"), None)
    parts = [blob for blob in listed if blob.name.startswith(f"{head}/raw-groups/")]
    if parts and (single is None or max(part.last_modified for part in parts) > single.last_modified):
        return current_parts(parts)
    return [single.name] if single is not None else []


def archived_window(container: str, window_prefix: str, wasb_conn_id: str = "wasb_default") -> list[str]:
    """List the window's archive and return its newest form (see :func:`newest_archive`)."""
    from airflow.providers.microsoft.azure.hooks.wasb import WasbHook

    client = WasbHook(wasb_conn_id=wasb_conn_id).get_conn().get_container_client(container)
    if not client.exists():
        return []
    listed = []
    for blob in client.list_blobs(name_starts_with=window_prefix.rstrip("/") + "/", include=["metadata"]):
        count = (blob.metadata or {}).get(GROUP_COUNT_METADATA, "")
        listed.append(ArchivedPart(blob.name, int(count) if count.isdigit() else None, blob.last_modified))
    return newest_archive(listed, window_prefix)


def combined_part_metadata(per_part: list[dict[str, str]], dead_letter_uri: str) -> dict[str, str]:
    """Return the window's counters from its parts': sums, and the joined kept-aside file if any part had one.

    ``dead_letter_uri`` is where the mapped run joined the parts' undecodable records (its ``collect_parts``).
    """
    combined = {name: str(sum(int(meta.get(name) or 0) for meta in per_part)) for name in SUMMED_COUNTERS}
    if any(meta.get("undecodable_records_file") not in (None, "", "None") for meta in per_part):
        combined["undecodable_records_file"] = dead_letter_uri
    return combined


def download_archive_parts(
    container: str, blob_names: list[str], target_uri: str, dead_letter_uri: str, wasb_conn_id: str = "wasb_default"
) -> tuple[str, dict[str, str]]:
    """Stream the window's archived parts, in order, into one ``target_uri`` (atomically; see
    :func:`_stream_blobs`). Returns the target and the window's counters (see :func:`combined_part_metadata`).
    """
    target, per_part = _stream_blobs(container, blob_names, target_uri, wasb_conn_id)
    metadata = combined_part_metadata(per_part, dead_letter_uri)
    log.info("restored the window archived in %d parts (%s/%s...) to %s (%s)", len(blob_names), container,
             blob_names[0] if blob_names else "", target_uri, metadata)
    return target, metadata


__all__ = [
    "ArchiveIncompleteError",
    "ArchivedPart",
    "archived_window",
    "combined_part_metadata",
    "current_parts",
    "download_archive",
    "download_archive_parts",
    "earliest_retained_timestamps",
    "kafka_holds_window",
    "newest_archive",
    "window_retained",
]
