"""The node side of the local Batch service: what happens to one task on the pool's node.

Task execution follows Batch on Linux: the command line is split like a POSIX shell would split it
(``shlex``) and run directly, without a shell; ``environmentSettings`` plus the ``AZ_BATCH_*``
variables; a directory per task (``stdout.txt``, ``stderr.txt``, ``wd/``); resource files downloaded
before the start; output files uploaded after the process exits, per their ``uploadCondition``.

Task processes stay in the server's process group, so killing the server's group kills them too.
"""

from __future__ import annotations

import asyncio
import contextlib
import glob
import logging
import os
import shlex
import signal
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp

from logproc_local.batch_service import blobs
from logproc_local.batch_service.model import Task, parse_duration

__all__ = [
    "DEFAULT_TASK_ENV_PASSTHROUGH",
    "NODE_ID",
    "NodeSettings",
    "download_resources",
    "end_message",
    "kill_tree",
    "match_output_files",
    "node_reference",
    "process_failure",
    "run_command_line",
    "task_ended",
    "task_environment",
    "upload_outputs",
]

log = logging.getLogger("localbatch")

NODE_ID = "tvmps_local_0"
# What a task inherits from the server's environment: enough to find programs and a home, no secrets.
DEFAULT_TASK_ENV_PASSTHROUGH = ("PATH", "HOME", "LANG", "LC_ALL", "TZ", "TMPDIR", "VIRTUAL_ENV", "PYTHONPATH")


@dataclass(frozen=True)
class NodeSettings:
    """What a task's environment says of the account, the pool and the node it runs on."""

    account_name: str
    base_url: str
    pool_id: str
    root: Path
    env_passthrough: tuple[str, ...]


def node_reference(base_url: str, pool_id: str) -> dict[str, str]:
    """Return the node's reference (``nodeInfo``) that a task's and a pool's documents carry."""
    return {
        "affinityId": f"TVM:{NODE_ID}",
        "nodeUrl": f"{base_url}/pools/{pool_id}/nodes/{NODE_ID}",
        "poolId": pool_id,
        "nodeId": NODE_ID,
    }


def task_environment(task: Task, task_dir: Path, work_dir: Path, node: NodeSettings) -> dict[str, str]:
    """Return a task process's environment: the passed-through variables, the settings, ``AZ_BATCH_*``."""
    assert task.job is not None
    env = {name: os.environ[name] for name in node.env_passthrough if name in os.environ}
    # `python` in a command line is the interpreter running this service, as a pool's start task
    # would have installed the packages a task needs on a real node.
    interpreter_dir = str(Path(sys.executable).parent)
    env["PATH"] = os.pathsep.join([interpreter_dir, *(p for p in env.get("PATH", "").split(os.pathsep)
                                                      if p and p != interpreter_dir)])
    for setting in (task.job.spec.get("commonEnvironmentSettings") or []) + (task.spec.get("environmentSettings")
                                                                            or []):
        env[str(setting["name"])] = str(setting.get("value") or "")
    env.update({
        "AZ_BATCH_ACCOUNT_NAME": node.account_name,
        "AZ_BATCH_ACCOUNT_URL": node.base_url,
        "AZ_BATCH_POOL_ID": node.pool_id,
        "AZ_BATCH_NODE_ID": NODE_ID,
        "AZ_BATCH_NODE_IS_DEDICATED": "true",
        "AZ_BATCH_NODE_ROOT_DIR": str(node.root),
        "AZ_BATCH_NODE_SHARED_DIR": str(node.root / "shared"),
        "AZ_BATCH_NODE_STARTUP_DIR": str(node.root / "startup"),
        "AZ_BATCH_JOB_ID": task.job.id,
        "AZ_BATCH_TASK_ID": task.id,
        "AZ_BATCH_TASK_DIR": str(task_dir),
        "AZ_BATCH_TASK_WORKING_DIR": str(work_dir),
    })
    return env


async def run_command_line(
    task: Task, task_dir: Path, work_dir: Path, node: NodeSettings,
) -> tuple[int | None, dict | None, bool]:
    """Run the command line: (exit code, failure info, whether the wall clock ended it)."""
    assert task.job is not None
    try:
        argv = shlex.split(task.command_line)
    except ValueError as exc:
        return None, {"category": "usererror", "code": "InvalidCommandLine",
                      "message": f"The command line cannot be split into arguments: {exc}"}, False
    wall_clock = parse_duration(task.constraints()["maxWallClockTime"], "constraints.maxWallClockTime")
    with open(task_dir / "stdout.txt", "wb") as stdout, open(task_dir / "stderr.txt", "wb") as stderr:
        try:
            task.process = await asyncio.create_subprocess_exec(
                *argv, cwd=work_dir, env=task_environment(task, task_dir, work_dir, node),
                stdin=asyncio.subprocess.DEVNULL, stdout=stdout, stderr=stderr)
        except (FileNotFoundError, PermissionError, NotADirectoryError) as exc:
            stderr.write(f"{exc}\n".encode())
            return None, {"category": "usererror", "code": "CommandProgramNotFound",
                          "message": f"The specified command program is not found: {argv[0]!r} ({exc.strerror})"
                          }, False
    if task.end_reason:  # ended while starting
        kill_tree(task.process.pid)
    timed_out = False
    try:
        await asyncio.wait_for(task.process.wait(), timeout=min(wall_clock, 10 * 365 * 86400))
    except TimeoutError:
        timed_out = True
        kill_tree(task.process.pid)
        await task.process.wait()
    returncode = task.process.returncode
    assert returncode is not None
    exit_code = returncode if returncode >= 0 else 128 - returncode  # killed by signal N → 128+N
    if timed_out:
        log.info("task %s/%s: ended after its maxWallClockTime (%s)", task.job.id, task.id,
                 task.constraints()["maxWallClockTime"])
        return exit_code, {
            "category": "usererror",
            "code": "TaskEnded",
            "message": "The task ran longer than its maxWallClockTime and was ended by the Batch service",
            "details": [{"name": "Reason", "value": "MaxWallClockTimeExpiry"},
                        {"name": "MaxWallClockTime", "value": task.constraints()["maxWallClockTime"]}],
        }, True
    return exit_code, None, False


async def download_resources(session: aiohttp.ClientSession, task: Task, work_dir: Path) -> dict[str, Any] | None:
    """Download the task's resource files into its working directory; the failure info if one fails."""
    for resource in task.spec.get("resourceFiles") or []:
        target_base = work_dir / (resource.get("filePath") or "")
        try:
            if resource.get("httpUrl"):
                await blobs.download(session, resource["httpUrl"], target_base)
                targets = [target_base]
            else:
                container_url = resource["storageContainerUrl"]
                names = await blobs.list_blobs(session, container_url, resource.get("blobPrefix"))
                targets = []
                for name in names:
                    target = target_base / name
                    if ".." in Path(name).parts:
                        raise blobs.BlobTransferError(f"blob name {name!r} escapes the working directory")
                    await blobs.download(session, blobs.blob_url(container_url, name), target)
                    targets.append(target)
            if resource.get("fileMode"):
                for target in targets:
                    target.chmod(int(str(resource["fileMode"]), 8))
        except (blobs.BlobTransferError, OSError, ValueError) as exc:
            status = getattr(exc, "status", None)
            code = {403: "BlobAccessDenied", 404: "BlobNotFound"}.get(status or 0, "BlobDownloadMiscError")
            if resource.get("storageContainerUrl") and code == "BlobAccessDenied":
                code = "ResourceContainerAccessDenied"
            log.info("task %s: resource file download failed: %s", task.id, exc)
            return {"category": "usererror", "code": code,
                    "message": "One or more resource files failed to download",
                    "details": [{"name": "Message", "value": str(exc)}]}
    return None


async def upload_outputs(session: aiohttp.ClientSession, task: Task, work_dir: Path, *,
                         succeeded: bool) -> dict[str, Any] | None:
    """Upload the task's output files per their ``uploadCondition``; the failure info if one fails."""
    for output in task.spec.get("outputFiles") or []:
        condition = str(output["uploadOptions"]["uploadCondition"]).lower()
        if (condition == "tasksuccess" and not succeeded) or (condition == "taskfailure" and succeeded):
            continue
        container = output["destination"]["container"]
        headers = {str(h["name"]): str(h.get("value") or "") for h in container.get("uploadHeaders") or []}
        try:
            for source, blob_name in match_output_files(work_dir, output["filePattern"], container.get("path")):
                await blobs.upload(session, container["containerUrl"], blob_name, source, headers)
        except (blobs.BlobTransferError, OSError) as exc:
            log.info("task %s: output file upload failed: %s", task.id, exc)
            return {"category": "usererror", "code": "FileUploadError",
                    "message": "One or more output files failed to upload",
                    "details": [{"name": "Message", "value": str(exc)}]}
    return None


def _descendants(pid: int) -> list[int]:
    """Return the live descendants of ``pid`` (from /proc), deepest last."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            raw = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        parent = int(raw[raw.rfind(")") + 2 :].split()[1])
        children.setdefault(parent, []).append(int(entry))
    found: list[int] = []
    frontier = [pid]
    while frontier:
        current = frontier.pop()
        for child in children.get(current, []):
            found.append(child)
            frontier.append(child)
    return found


def kill_tree(pid: int) -> None:
    """SIGKILL a task process and everything it started (they share the server's process group)."""
    for target in [pid, *_descendants(pid)]:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.kill(target, signal.SIGKILL)


def task_ended(message: str) -> dict[str, Any]:
    """Return the failure info of a task the service ended (job terminated or deleted, or by request)."""
    return {"category": "usererror", "code": "TaskEnded", "message": message}


def end_message(task: Task) -> str:
    """Say why the service ended ``task``, as Batch words it."""
    return {
        "job-terminated": "Task Was Ended because the Job was terminated",
        "job-deleted": "Task Was Ended because the Job was deleted",
    }.get(task.end_reason or "", "Task Was Ended by User Request")


def process_failure(
    task: Task, exit_code: int | None, failure: dict[str, Any] | None, *, timed_out: bool,
) -> dict[str, Any] | None:
    """Return the failure info of a finished task process: ended by the service, or a non-zero exit code."""
    if task.end_reason and failure is None and not timed_out:
        return task_ended(end_message(task))
    if exit_code is not None and failure is None and exit_code != 0:
        return {
            "category": "usererror",
            "code": "FailureExitCode",
            "message": "The task process exited with an unexpected exit code",
            "details": [{"name": "Message", "value": "The task process exited with an unexpected exit code"}],
        }
    return failure


def match_output_files(work_dir: Path, pattern: str, path: str | None) -> list[tuple[Path, str]]:
    """Find the files an output file spec uploads, and their blob names.

    ``pattern`` is relative to the working directory (``../stdout.txt`` reaches the task dir).
    Without wildcards, ``path`` is the blob name (default: the file name). With wildcards, ``path``
    is a virtual directory and each blob keeps its path relative to where the wildcards start.
    """
    has_wildcard = any(char in pattern for char in "*?[")
    full_pattern = os.path.normpath(os.path.join(work_dir, pattern))
    if not has_wildcard:
        source = Path(full_pattern)
        if not source.is_file():
            return []
        return [(source, path or source.name)]
    parts = Path(pattern).parts
    fixed = []
    for part in parts:
        if any(char in part for char in "*?["):
            break
        fixed.append(part)
    base = Path(os.path.normpath(os.path.join(work_dir, *fixed))) if fixed else work_dir
    matches = sorted({Path(found) for found in glob.glob(full_pattern, recursive=True) if os.path.isfile(found)})
    prefix = (path or "").strip("/")
    out = []
    for source in matches:
        relative = source.relative_to(base).as_posix()
        out.append((source, f"{prefix}/{relative}" if prefix else relative))
    return out
