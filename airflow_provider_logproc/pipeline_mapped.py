"""The daily pipeline's mapped consume: a day read by several tasks, one per partition group.

``choose_source`` decides (``consume_groups`` param, see :mod:`airflow_provider_logproc.kafka.groups`)
between the single ``consume`` task and this branch::

    plan_consume_groups → consume_part[i] → to_json_part[i] → upload_part[i] → collect_parts → analyze
                                          ↘ archive_part[i]

Each ``consume_part`` reads exactly the window of its partitions into its own Ion part (the same
read as the single task's, restricted to those partitions), so the parts stay on the workers that
wrote them until each is converted and uploaded by its own mapped tasks; ``collect_parts`` only
gathers the blob URLs for the Batch job, adds up the counters, and joins the small kept-aside
files into one of each for the report. Names are derived from the window and the part index: a
rerun of the day with the same groups rewrites the same objects with the same bytes.
"""

from __future__ import annotations

import hashlib
from typing import Any

from airflow.providers.common.compat.sdk import task

PLAN_TASK = "plan_consume_groups"
CONSUME_TASK = "consume_part"
TO_JSON_TASK = "to_json_part"
UPLOAD_TASK = "upload_part"
COLLECT_TASK = "collect_parts"
# The part index in a mapped task's templates: part-000, part-001, ...
PART = "{{ '%03d' % ti.map_index }}"


@task(task_id=PLAN_TASK)
def plan_consume_groups(**context: Any) -> list[Any]:
    """Return the partition groups ``choose_source`` planned (one mapped consume task each)."""
    groups = context["ti"].xcom_pull(task_ids="choose_source", key="partition_groups", map_indexes=-1)
    if not groups:
        raise ValueError("choose_source planned no partition groups for this run: clear choose_source too")
    return list(groups)


def _pull_parts(ti: Any, task_id: str, key: str, count: int) -> list[Any]:
    """Pull ``key`` of each of the ``count`` mapped instances of ``task_id``, in part order."""
    return [ti.xcom_pull(task_ids=task_id, key=key, map_indexes=index) for index in range(count)]


def _join_files(uris: list[Any], target: str) -> str | None:
    """Copy the kept-aside files ``uris`` (None: the part had none) into ``target``, in part order."""
    from airflow_provider_logproc import staging

    present = [str(uri) for uri in uris if uri not in (None, "", "None")]
    if not present:
        staging.remove_if_exists(target)  # also clears an earlier run's
        return None
    with staging.atomic_write(target) as out:
        for uri in present:
            with staging.as_path(uri).open("rb") as source:
                while chunk := source.read(1 << 20):
                    out.write(chunk)
    return target


def _total(counts: list[Any]) -> int:
    """Return the sum of the parts' counters (a part that pushed none counts 0)."""
    return sum(int(n or 0) for n in counts)


def check_day_bad_share(good: int, undecodable: int, dead_letter_uri: str | None) -> None:
    """Fail as the single consume task would when the day's parts hold too many undecodable records."""
    from airflow_provider_logproc.operators.kafka import DeadLetterThresholdError
    from airflow_provider_logproc.pipeline import MAX_BAD_SHARE

    total = good + undecodable
    if total and undecodable / total > MAX_BAD_SHARE:
        raise DeadLetterThresholdError(
            f"{undecodable} of {total} records ({undecodable / total:.2%}) of the day's parts could not be "
            f"deserialized, more than max_bad_share={MAX_BAD_SHARE:.2%}; they are in {dead_letter_uri}")


@task(task_id=COLLECT_TASK)
def collect_parts(uploaded: Any, kept_aside_dir: str, **context: Any) -> list[str]:
    """Gather the parts' blob URLs for the Batch job; add up their counters; join their kept-aside files."""
    from airflow_provider_logproc.version_compat import push_xcoms

    ti = context["ti"]
    per_part = [list(urls) for urls in uploaded]
    count = len(per_part)
    consumed = _pull_parts(ti, CONSUME_TASK, "record_count", count)
    dead = _pull_parts(ti, CONSUME_TASK, "dead_letter_count", count)
    analysed = _pull_parts(ti, TO_JSON_TASK, "record_count", count)
    invalid = _pull_parts(ti, TO_JSON_TASK, "invalid_count", count)
    fingerprints = _pull_parts(ti, UPLOAD_TASK, "content_fingerprint", count)
    base = kept_aside_dir.rstrip("/")
    dead_letter_uri = _join_files(_pull_parts(ti, CONSUME_TASK, "dead_letter_uri", count),
                                  f"{base}/raw.dead-letter.jsonl")
    record_count, dead_letter_count = _total(consumed), _total(dead)
    check_day_bad_share(record_count, dead_letter_count, dead_letter_uri)
    push_xcoms(
        ti,
        record_count=record_count,
        dead_letter_count=dead_letter_count,
        dead_letter_uri=dead_letter_uri,
        analysed_count=_total(analysed),
        invalid_count=_total(invalid),
        invalid_uri=_join_files(_pull_parts(ti, TO_JSON_TASK, "invalid_uri", count), f"{base}/raw.invalid.jsonl"),
        # One Batch job per window and content: the parts' fingerprints, in part order.
        content_fingerprint=hashlib.sha256("\n".join(map(str, fingerprints)).encode()).hexdigest(),
    )
    return [url for urls in per_part for url in urls]


def add_mapped_consume(window_dir: str, topic: str, window_path: str, max_lateness: str) -> tuple[Any, Any]:
    """Add the mapped branch (see the module doc); return its first task and ``collect_parts``."""
    from airflow_provider_logproc.archive import GROUP_COUNT_METADATA
    from airflow_provider_logproc.operators.blob import BlobUploadOperator
    from airflow_provider_logproc.operators.ion import IonToJsonOperator
    from airflow_provider_logproc.operators.kafka import KafkaBatchConsumeOperator
    from airflow_provider_logproc.pipeline import archive_options

    part_dir = f"{window_dir}/groups"
    plan = plan_consume_groups()
    consume = KafkaBatchConsumeOperator.partial(
        # The share of undecodable records is the day's, checked over all parts by collect_parts: a part
        # holding one misbehaving producer's partition must not fail a day the single task would pass.
        task_id=CONSUME_TASK, topics=topic, output_uri=f"{part_dir}/part-{PART}.ion", max_bad_share=1.0,
        max_lateness=max_lateness,
    ).expand(partitions=plan)
    archive_part = archive_options(f"{topic}/{window_path}/raw-groups/part-{PART}.ion",
                                   f"task_ids='{CONSUME_TASK}', map_indexes=ti.map_index")
    # How many parts this run wrote, so a restore tells them from a run's with more groups (stale).
    archive_part["metadata"][GROUP_COUNT_METADATA] = (
        f"{{{{ ti.xcom_pull(task_ids='{PLAN_TASK}', map_indexes=-1) | length }}}}")
    BlobUploadOperator.partial(task_id="archive_part", **archive_part).expand(source=consume.output)
    to_json = IonToJsonOperator.partial(
        task_id=TO_JSON_TASK, output_uri=f"{part_dir}/part-{PART}.jsonl", validate_records=True,
    ).expand(source_uri=consume.output)
    upload = BlobUploadOperator.partial(
        task_id=UPLOAD_TASK,
        container="{{ params.logs_container }}",
        prefix=f"{topic}/{window_path}/group-{PART}",
        # About params.parts Batch tasks for the day in all, whatever the number of groups.
        parts=f"{{{{ logproc_parts_per_group(params.parts, ti.xcom_pull(task_ids='{PLAN_TASK}', map_indexes=-1) "
              "| length) }}",
        content_type="application/x-ndjson",
        create_container=True,
    ).expand(source=to_json.output)
    collected = collect_parts(upload.output, part_dir)
    return plan, collected


__all__ = ["add_mapped_consume", "check_day_bad_share", "collect_parts", "plan_consume_groups"]
