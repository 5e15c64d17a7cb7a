"""The account's jobs and tasks on disk (``<data-dir>/state.json``), so a restarted service keeps them.

Written atomically (temp file + rename) at most about once a second while things change, and at
shutdown. On start, tasks that were preparing or running when the service went away are requeued
(``requeueCount`` + 1), as Batch requeues the tasks of a node that was lost; jobs that were being
terminated or deleted finish that.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import time
from dataclasses import fields
from pathlib import Path
from typing import Any

from logproc_local.batch_service.model import Job, Stamped, Task

log = logging.getLogger("localbatch")

STATE_FILE = "state.json"
FORMAT_VERSION = 1
_RUNTIME_FIELDS = {"job", "process", "runner", "tasks", "pending", "eligible_at", "deadline"}


def _encode(entity: Stamped) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for item in fields(entity):
        if item.name in _RUNTIME_FIELDS:
            continue
        value = getattr(entity, item.name)
        out[item.name] = {"$dt": value.isoformat()} if isinstance(value, dt.datetime) else value
    return out


def _decode(values: dict[str, Any]) -> dict[str, Any]:
    return {name: dt.datetime.fromisoformat(value["$dt"]) if isinstance(value, dict) and "$dt" in value else value
            for name, value in values.items()}


def snapshot(jobs: dict[str, Job]) -> dict[str, Any]:
    now_wall, now_mono = time.time(), time.monotonic()
    return {
        "version": FORMAT_VERSION,
        "jobs": [
            {
                **_encode(job),
                "deadline_wall": None if job.deadline is None else now_wall + (job.deadline - now_mono),
                "tasks": [_encode(task) for task in sorted(job.tasks.values(), key=lambda t: t.seq)],
                "pending": list(job.pending),
            }
            for job in sorted(jobs.values(), key=lambda j: j.seq)
        ],
    }


def write(path: Path, document: dict[str, Any]) -> None:
    temporary = path.with_suffix(".tmp")
    temporary.write_text(json.dumps(document))
    os.replace(temporary, path)


def load(path: Path) -> tuple[dict[str, Job], int]:
    """Load the saved jobs (by lower-cased id) and the highest sequence number used."""
    if not path.exists():
        return {}, 0
    document = json.loads(path.read_text())
    if document.get("version") != FORMAT_VERSION:
        raise ValueError(f"{path}: state format {document.get('version')!r} is not {FORMAT_VERSION}")
    jobs: dict[str, Job] = {}
    top_seq = 0
    now_wall, now_mono = time.time(), time.monotonic()
    for saved in document["jobs"]:
        saved = dict(saved)
        task_docs = saved.pop("tasks")
        pending_ids = saved.pop("pending")
        deadline_wall = saved.pop("deadline_wall")
        job = Job(**_decode(saved))
        job.deadline = None if deadline_wall is None else now_mono + (deadline_wall - now_wall)
        for task_doc in task_docs:
            task = Task(**_decode(task_doc))
            task.job = job
            if task.state in ("preparing", "running"):
                task.set_state("active")
                task.requeue_count += 1
                task.touch()
                pending_ids.append(task.id.lower())
            job.tasks[task.id.lower()] = task
            top_seq = max(top_seq, task.seq)
        ordered = sorted({key for key in pending_ids if key in job.tasks}, key=lambda key: job.tasks[key].seq)
        job.pending = {key: job.tasks[key] for key in ordered if job.tasks[key].state == "active"}
        jobs[job.id.lower()] = job
        top_seq = max(top_seq, job.seq)
    log.info("restored %d jobs with %d tasks from %s", len(jobs), sum(len(j.tasks) for j in jobs.values()), path)
    return jobs, top_seq
