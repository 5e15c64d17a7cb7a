"""Requests per poll: AzureBatchJobTrigger (task counts) vs the official AzureBatchTrigger (lists tasks).

Both triggers wait on the same job of N tasks (default 1,000) on the local Batch service; the tasks
are held in ``active`` by a long scheduling delay so every poll sees the job unfinished. Each trigger
runs until its own deadline; the service's request log says what each poll cost.

    .venv/bin/python bench/bench_batch_polling.py [--tasks 1000] [--seconds 4] [--poll-interval 0.5]

Printed per trigger: polls, requests per poll, server time per poll (from the request log), client
wall time per poll, response bytes per poll (one extra call of the same request, measured by the
SDK's raw response hook), and the ratios official / ours.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import sys
import tempfile
import time
from functools import partial
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from azure.batch import models as batch_models  # noqa: E402

from airflow_provider_logproc.azure_batch.task_collection import chunked  # noqa: E402
from logproc_local.batch_service import LocalBatchService  # noqa: E402

CONN_ENV = "AIRFLOW_CONN_AZURE_BATCH_DEFAULT"


def create_job(client: Any, job_id: str, pool_id: str, tasks: int) -> None:
    client.create_job(batch_models.BatchJobCreateOptions({"id": job_id, "poolInfo": {"poolId": pool_id}}))
    specs = [{"id": f"task-{index:05d}", "commandLine": "true"} for index in range(tasks)]
    for chunk in chunked(specs):
        client.create_task_collection(job_id, batch_models.BatchTaskGroup({"value": list(chunk)}))


async def run_to_event(trigger: Any) -> dict[str, Any]:
    async for event in trigger.run():
        return event.payload
    raise RuntimeError("no event")


def measure(service: Any, name: str, trigger: Any, operations: set[str]) -> dict[str, Any]:
    seq = service.request_log.last_seq()
    started = time.monotonic()
    payload = asyncio.run(run_to_event(trigger))
    wall = time.monotonic() - started
    entries = [entry for entry in service.request_log.entries(since=seq) if entry["operation"] in operations]
    # A poll starts with a request that is not the continuation of a paged list.
    polls = sum(1 for entry in entries if "$skiptoken" not in (entry.get("query") or {}))
    return {
        "trigger": name,
        "event": payload.get("status"),
        "polls": polls,
        "requests": len(entries),
        "requests_per_poll": len(entries) / polls if polls else float("nan"),
        "server_ms_per_poll": sum(entry["duration_ms"] for entry in entries) / polls if polls else float("nan"),
        "wall_s": wall,
    }


def response_bytes(call: Any) -> int:
    sizes: list[int] = []
    result = call(raw_response_hook=lambda response: sizes.append(len(response.http_response.body())))
    if hasattr(result, "__iter__") and not isinstance(result, dict):
        for _ in result:  # walk every page
            pass
    return sum(sizes)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", default="1000,3000", help="comma-separated job sizes (tasks per job)")
    parser.add_argument("--seconds", type=float, default=4.0, help="how long each trigger waits (its deadline)")
    parser.add_argument("--poll-interval", type=float, default=0.5)
    args = parser.parse_args()

    from airflow.providers.microsoft.azure.triggers.batch import AzureBatchTrigger

    from airflow_provider_logproc.triggers.batch import AzureBatchJobTrigger

    # The official trigger logs the whole list of incomplete tasks at every poll (~450 KB for 1,000
    # tasks): give it a quiet logger to keep the terminal readable.
    quiet = logging.getLogger("bench.official_trigger")
    quiet.addHandler(logging.NullHandler())
    quiet.propagate = False

    rows: list[tuple[int, dict[str, Any], dict[str, Any]]] = []
    with tempfile.TemporaryDirectory(prefix="bench-batch-") as data_dir:
        # Tasks stay active for the whole run: every poll sees an unfinished job.
        service = LocalBatchService(Path(data_dir) / "batch", task_slots=4, scheduling_delay=3600).start()
        os.environ[CONN_ENV] = json.dumps(service.airflow_connection())
        try:
            client = service.client()
            for size in (int(value) for value in args.tasks.split(",")):
                job_id = f"bench-{size}-{int(time.time())}"
                started = time.monotonic()
                create_job(client, job_id, service.pool_id, size)
                print(f"job {job_id}: {size} tasks added in {time.monotonic() - started:.1f} s", flush=True)
                ours = measure(
                    service, "AzureBatchJobTrigger (logproc)",
                    AzureBatchJobTrigger(job_id, "azure_batch_default", deadline=time.time() + args.seconds,
                                         poll_interval=args.poll_interval),
                    {"Jobs_GetJobTaskCounts"},
                )
                official_trigger = AzureBatchTrigger(
                    job_id, "azure_batch_default", end_time=time.time() + args.seconds,
                    poll_interval=args.poll_interval,  # type: ignore[arg-type]
                )
                official_trigger._log = quiet  # type: ignore[assignment]
                official = measure(
                    service, "AzureBatchTrigger (official 15.2.1)", official_trigger, {"Tasks_ListTasks"}
                )
                ours["bytes_per_poll"] = response_bytes(partial(client.get_job_task_counts, job_id))
                official["bytes_per_poll"] = response_bytes(partial(client.list_tasks, job_id))
                client.begin_terminate_job(job_id, {"terminateReason": "bench done"}, polling_interval=0.2)
                rows.append((size, ours, official))
            client.close()
        finally:
            os.environ.pop(CONN_ENV, None)
            service.stop()

    print(f"\n{'tasks':>6} {'trigger':36} {'event':8} {'polls':>5} {'req/poll':>9} {'server ms/poll':>15} "
          f"{'bytes/poll':>11}")
    for size, ours, official in rows:
        for row in (ours, official):
            print(f"{size:6d} {row['trigger']:36} {row['event']:8} {row['polls']:5d} {row['requests_per_poll']:9.2f} "
                  f"{row['server_ms_per_poll']:15.2f} {row['bytes_per_poll']:11d}")
    print()
    for size, ours, official in rows:
        print(
            f"{size}-task job, official/ours: requests per poll {official['requests_per_poll']:.0f} vs "
            f"{ours['requests_per_poll']:.0f} ({official['requests_per_poll'] / ours['requests_per_poll']:.1f}x), "
            f"server time per poll {official['server_ms_per_poll'] / ours['server_ms_per_poll']:.0f}x, "
            f"bytes per poll {official['bytes_per_poll'] / ours['bytes_per_poll']:.0f}x"
        )


if __name__ == "__main__":
    main()
