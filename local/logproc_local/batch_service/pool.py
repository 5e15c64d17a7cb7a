"""The local Batch account's one pool and its one node, as the Pools and Nodes APIs describe them."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from logproc_local.batch_service.model import iso
from logproc_local.batch_service.node import NODE_ID

if TYPE_CHECKING:
    from logproc_local.batch_service.engine import BatchAccount

__all__ = ["node_document", "pool_document"]


def pool_document(account: BatchAccount, base_url: str) -> dict[str, Any]:
    """Return the one pool's document, as Pools_GetPool answers."""
    pool = account.pool
    created = account.created
    return {
        "id": pool.pool_id,
        "displayName": "local pool (tasks run as processes on this machine)",
        "url": f"{base_url}/pools/{pool.pool_id}",
        "eTag": f"0x{int(created.timestamp() * 1e7):X}",
        "lastModified": iso(created),
        "creationTime": iso(created),
        "state": "active",
        "stateTransitionTime": iso(created),
        "allocationState": "steady",
        "allocationStateTransitionTime": iso(created),
        "vmSize": pool.vm_size,
        "resizeTimeout": "PT15M",
        "currentDedicatedNodes": 1,
        "currentLowPriorityNodes": 0,
        "targetDedicatedNodes": 1,
        "targetLowPriorityNodes": 0,
        "enableAutoScale": False,
        "enableInterNodeCommunication": False,
        "taskSlotsPerNode": pool.task_slots,
        "taskSchedulingPolicy": {"nodeFillType": "pack"},
    }


def node_document(account: BatchAccount, base_url: str) -> dict[str, Any]:
    """Return the one node's document, as Nodes_GetNode answers: its state from the running tasks."""
    running = [task for job in account.jobs.values() for task in job.tasks.values()
               if task.state in ("preparing", "running")]
    created = iso(account.created)
    return {
        "id": NODE_ID,
        "url": f"{base_url}/pools/{account.pool.pool_id}/nodes/{NODE_ID}",
        "state": "running" if running else "idle",
        "schedulingState": "enabled",
        "stateTransitionTime": created,
        "lastBootTime": created,
        "allocationTime": created,
        "ipAddress": "127.0.0.1",
        "ipv6Address": "::1",
        "affinityId": f"TVM:{NODE_ID}",
        "vmSize": account.pool.vm_size,
        "totalTasksRun": account.tasks_run,
        "runningTasksCount": len(running),
        "runningTaskSlotsCount": account.slots_in_use,
        "totalTasksSucceeded": account.tasks_succeeded,
        "isDedicated": True,
        "virtualMachineInfo": {},
    }
