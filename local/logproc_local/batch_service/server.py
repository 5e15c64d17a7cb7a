"""The HTTP face of the local Batch service: Batch data-plane REST routes, SharedKey, faults, admin.

Batch routes (api-version 2025-06-01; operation ids as in the OpenAPI spec):

    GET/POST /jobs                                  Jobs_ListJobs / Jobs_CreateJob
    GET/PATCH/DELETE /jobs/{jobId}                  Jobs_GetJob / Jobs_UpdateJob / Jobs_DeleteJob
    POST /jobs/{jobId}/terminate                    Jobs_TerminateJob
    GET  /jobs/{jobId}/taskcounts                   Jobs_GetJobTaskCounts
    GET/POST /jobs/{jobId}/tasks                    Tasks_ListTasks / Tasks_CreateTask
    POST /jobs/{jobId}/addtaskcollection            Tasks_CreateTaskCollection
    GET  /jobs/{jobId}/tasks/{taskId}               Tasks_GetTask
    POST /jobs/{jobId}/tasks/{taskId}/terminate     Tasks_TerminateTask
    GET  /jobs/{jobId}/tasks/{taskId}/files         Tasks_ListTaskFiles
    GET/HEAD /jobs/{jobId}/tasks/{taskId}/files/{filePath}   Tasks_GetTaskFile / Tasks_GetTaskFileProperties
    GET/POST /pools, GET/HEAD /pools/{poolId}       Pools_ListPools / Pools_CreatePool (PoolExists only) /
                                                    Pools_GetPool / Pools_PoolExists
    GET  /pools/{poolId}/nodes[/{nodeId}]           Nodes_ListNodes / Nodes_GetNode

Admin routes (no Batch authentication; the server listens on 127.0.0.1 only):

    GET  /_local/health                             {"status": "ok", ...}
    GET/POST/DELETE /_local/faults                  list / add a rule (JSON body, see faults.py) / clear
    GET/DELETE /_local/requests[?since=SEQ]         the request log / clear it
    GET/POST /_local/settings                       {"scheduling_delay": seconds}
    GET  /_local/routes                             the Batch routes served (method, path, operation)
"""

from __future__ import annotations

import asyncio
import functools
import logging
import mimetypes
import re
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, quote, unquote

from aiohttp import web

from logproc_local.batch_service import auth, odata
from logproc_local.batch_service.admin import handle_admin
from logproc_local.batch_service.engine import BatchAccount
from logproc_local.batch_service.faults import FAULT_ERROR_CODES, FaultInjector, RequestLog
from logproc_local.batch_service.model import (
    BatchApiError,
    Job,
    Task,
    iso,
    rfc1123,
    task_counts,
)
from logproc_local.batch_service.node import NODE_ID, node_reference
from logproc_local.batch_service.pool import node_document, pool_document
from logproc_local.batch_service.protocol import (
    MAX_BODY_BYTES,
    BatchRequest,
    apply_range,
    check_api_version,
    check_conditions,
    created_response,
    drop_connection,
    empty_response,
    error_response,
    from_mtime,
    json_response,
    paged_response,
    select_fields,
)
from logproc_local.batch_service.validation import MAX_TASKS_PER_COLLECTION

log = logging.getLogger("localbatch")


Handler = Callable[["BatchRequest"], Awaitable[web.StreamResponse]]


@dataclass(frozen=True)
class Route:
    method: str
    template: str
    pattern: re.Pattern[str]
    operation: str
    handler: Handler


class BatchServer:
    """The aiohttp application of one local Batch account (also usable in-process in tests)."""

    def __init__(self, account: BatchAccount, account_key: str):
        if not auth.valid_account_key(account_key):
            raise ValueError("the account key must be base64 (as Batch account keys are)")
        self.account = account
        self._account_key = account_key
        self.faults = FaultInjector()
        self.request_log = RequestLog()
        self.routes: list[Route] = []
        self._add_routes()
        self.app = web.Application(client_max_size=MAX_BODY_BYTES * 4)
        self.app.router.add_route("*", "/_local/{tail:.*}", functools.partial(handle_admin, self))
        self.app.router.add_route("*", "/{tail:.*}", self._dispatch)
        self.app.on_startup.append(self._on_startup)
        self.app.on_cleanup.append(self._on_cleanup)

    async def _on_startup(self, _app: web.Application) -> None:
        await self.account.start()

    async def _on_cleanup(self, _app: web.Application) -> None:
        await self.account.close()

    # -- routing ---------------------------------------------------------------------------------

    def _route(self, method: str, template: str, operation: str, handler: Handler) -> None:
        regex = re.sub(r"\{(\w+)\}", lambda m: f"(?P<{m.group(1)}>{'.+' if m.group(1) == 'filePath' else '[^/]+'})",
                       template)
        self.routes.append(Route(method, template, re.compile(f"^{regex}/?$"), operation, handler))

    def _add_routes(self) -> None:
        r = self._route
        r("GET", "/jobs", "Jobs_ListJobs", self.list_jobs)
        r("POST", "/jobs", "Jobs_CreateJob", self.create_job)
        r("GET", "/jobs/{jobId}", "Jobs_GetJob", self.get_job)
        r("PATCH", "/jobs/{jobId}", "Jobs_UpdateJob", self.update_job)
        r("DELETE", "/jobs/{jobId}", "Jobs_DeleteJob", self.delete_job)
        r("POST", "/jobs/{jobId}/terminate", "Jobs_TerminateJob", self.terminate_job)
        r("GET", "/jobs/{jobId}/taskcounts", "Jobs_GetJobTaskCounts", self.task_counts)
        r("GET", "/jobs/{jobId}/tasks", "Tasks_ListTasks", self.list_tasks)
        r("POST", "/jobs/{jobId}/tasks", "Tasks_CreateTask", self.create_task)
        r("POST", "/jobs/{jobId}/addtaskcollection", "Tasks_CreateTaskCollection", self.create_task_collection)
        r("GET", "/jobs/{jobId}/tasks/{taskId}", "Tasks_GetTask", self.get_task)
        r("POST", "/jobs/{jobId}/tasks/{taskId}/terminate", "Tasks_TerminateTask", self.terminate_task)
        r("GET", "/jobs/{jobId}/tasks/{taskId}/files", "Tasks_ListTaskFiles", self.list_task_files)
        r("GET", "/jobs/{jobId}/tasks/{taskId}/files/{filePath}", "Tasks_GetTaskFile", self.get_task_file)
        r("HEAD", "/jobs/{jobId}/tasks/{taskId}/files/{filePath}", "Tasks_GetTaskFileProperties",
          self.get_task_file)
        r("GET", "/pools", "Pools_ListPools", self.list_pools)
        r("POST", "/pools", "Pools_CreatePool", self.create_pool)
        r("GET", "/pools/{poolId}", "Pools_GetPool", self.get_pool)
        r("HEAD", "/pools/{poolId}", "Pools_PoolExists", self.pool_exists)
        r("GET", "/pools/{poolId}/nodes", "Nodes_ListNodes", self.list_nodes)
        r("GET", "/pools/{poolId}/nodes/{nodeId}", "Nodes_GetNode", self.get_node)

    def _match(self, method: str, raw_path: str) -> tuple[Route, dict[str, str]]:
        path_matched = False
        for route in self.routes:
            match = route.pattern.match(raw_path)
            if match is None:
                continue
            path_matched = True
            if route.method == method:
                return route, {name: unquote(value) for name, value in match.groupdict().items()}
        if path_matched:
            raise BatchApiError(405, "UnsupportedHttpVerb", f"The resource doesn't support the {method} verb.")
        raise BatchApiError(404, "UnsupportedOperation",
                            "The local Batch service does not serve this URL (it implements the jobs, tasks, task "
                            "files and pools operations the pipeline uses).", {"RequestPath": raw_path})

    async def _dispatch(self, http: web.Request) -> web.StreamResponse:
        started = time.monotonic()
        request_id = str(uuid.uuid4())
        raw_path, _, raw_query = http.raw_path.partition("?")
        operation = "Unknown"
        status: int | None = None
        fault_text: str | None = None
        client_request_id = http.headers.get("client-request-id")
        query = {name: values[0] for name, values in parse_qs(raw_query, keep_blank_values=True).items()}
        try:
            try:
                route, params = self._match(http.method, raw_path)
                operation = route.operation
            except BatchApiError as exc:
                route, params = None, {}
                routing_error: BatchApiError | None = exc
            else:
                routing_error = None
            decision = self.faults.decide(http.method, unquote(raw_path), operation)
            fault_text = decision.describe()
            if decision.latency:
                await asyncio.sleep(decision.latency)
            if decision.drop_before:
                drop_connection(http)
                status = None
                return web.Response(status=503)
            if decision.status:
                code, message = FAULT_ERROR_CODES.get(decision.status, ("InjectedFault", "Injected fault."))
                headers = {"Retry-After": f"{decision.retry_after:g}"} if decision.retry_after is not None else {}
                raise BatchApiError(decision.status, code, message, headers=headers)
            failure = auth.verify(http.method, raw_path, raw_query, http.headers, self.account.account_name,
                                  self._account_key)
            if failure is not None:
                raise BatchApiError(failure.status, failure.code,
                                    "Server failed to authenticate the request. Make sure the value of Authorization "
                                    "header is correctly formed including the signature.",
                                    {"AuthenticationErrorDetail": failure.detail})
            check_api_version(query)
            if routing_error is not None or route is None:
                raise routing_error or BatchApiError(404, "UnsupportedOperation", "Not found.")
            response = await route.handler(BatchRequest(http, operation, params, query, request_id))
            if decision.drop_after:
                drop_connection(http)
            status = response.status
        except BatchApiError as exc:
            status = exc.status
            response = error_response(exc, request_id, http.method, self.base_url)
        except Exception as exc:
            log.exception("%s %s failed", http.method, raw_path)
            status = 500
            response = error_response(BatchApiError(500, "InternalServerError", f"{type(exc).__name__}: {exc}"),
                                      request_id, http.method, self.base_url)
        finally:
            self.request_log.add(method=http.method, path=unquote(raw_path), query=query, operation=operation,
                                 status=status, duration_ms=round((time.monotonic() - started) * 1000, 3),
                                 client_request_id=client_request_id, fault=fault_text)
        response.headers["request-id"] = request_id
        if client_request_id:
            response.headers["client-request-id"] = client_request_id
        return response

    # -- admin -----------------------------------------------------------------------------------

    # -- helpers ---------------------------------------------------------------------------------

    @property
    def base_url(self) -> str:
        return self.account.base_url

    def _metadata(self, fragment: str) -> str:
        return f"{self.base_url}/$metadata#{fragment}"

    def _job(self, request: BatchRequest) -> Job:
        return self.account.get_job(request.params["jobId"])

    def _task(self, request: BatchRequest) -> Task:
        return self.account.get_task(self._job(request), request.params["taskId"])

    # -- jobs ------------------------------------------------------------------------------------

    async def list_jobs(self, request: BatchRequest) -> web.StreamResponse:
        # Listed in id order, as the service's table-backed listings come back.
        jobs = sorted(self.account.jobs.values(), key=lambda job: job.id.lower())
        return paged_response(request, [job.to_rest(self.base_url) for job in jobs], self._metadata("jobs"),
                              f"{self.base_url}/jobs")

    async def create_job(self, request: BatchRequest) -> web.StreamResponse:
        job = self.account.add_job(await request.json())
        return created_response(job.url(self.base_url), job.etag, job.last_modified)

    async def get_job(self, request: BatchRequest) -> web.StreamResponse:
        job = self._job(request)
        check_conditions(request, job.etag)
        doc = odata.apply_select({"odata.metadata": self._metadata("jobs/@Element"), **job.to_rest(self.base_url)},
                                 select_fields(request))
        return json_response(doc, etag=job.etag, last_modified=job.last_modified)

    async def update_job(self, request: BatchRequest) -> web.StreamResponse:
        job = self._job(request)
        check_conditions(request, job.etag)
        self.account.update_job(job, await request.json())
        return empty_response(200, job.url(self.base_url), job.etag, job.last_modified)

    async def delete_job(self, request: BatchRequest) -> web.StreamResponse:
        job = self._job(request)
        check_conditions(request, job.etag)
        self.account.delete_job(job)
        return empty_response(202)

    async def terminate_job(self, request: BatchRequest) -> web.StreamResponse:
        job = self._job(request)
        check_conditions(request, job.etag)
        body = await request.json()
        reason = body.get("terminateReason") if isinstance(body, dict) else None
        self.account.terminate_job(job, reason)
        return empty_response(202, job.url(self.base_url), job.etag, job.last_modified)

    async def task_counts(self, request: BatchRequest) -> web.StreamResponse:
        job = self._job(request)
        body = {"odata.metadata": self._metadata("taskcounts/@Element"), **task_counts(job)}
        return json_response(body)

    # -- tasks -----------------------------------------------------------------------------------

    async def list_tasks(self, request: BatchRequest) -> web.StreamResponse:
        job = self._job(request)
        node = node_reference(self.account.base_url, self.account.pool.pool_id)
        tasks = sorted(job.tasks.values(), key=lambda task: task.id.lower())
        return paged_response(request, [task.to_rest(self.base_url, node) for task in tasks],
                              self._metadata("tasks"), f"{self.base_url}/jobs/{quote(job.id, safe='')}/tasks")

    async def create_task(self, request: BatchRequest) -> web.StreamResponse:
        task = self.account.add_task(self._job(request), await request.json())
        return created_response(task.url(self.base_url), task.etag, task.last_modified)

    async def create_task_collection(self, request: BatchRequest) -> web.StreamResponse:
        job = self._job(request)
        body = await request.json()
        specs = body.get("value") if isinstance(body, dict) else None
        if not isinstance(specs, list):
            raise BatchApiError(400, "MissingRequiredProperty",
                                "A required property was not specified in the request body.", {"PropertyName": "value"})
        if len(specs) > MAX_TASKS_PER_COLLECTION:
            raise BatchApiError(400, "InvalidPropertyValue",
                                "The value provided for one of the properties in the request body is invalid.",
                                {"PropertyName": "value", "PropertyValue": str(len(specs)),
                                 "Reason": f"at most {MAX_TASKS_PER_COLLECTION} tasks per addtaskcollection call"})
        self.account.require_job_changeable(job)
        results = []
        for spec in specs:
            task_id = spec.get("id") if isinstance(spec, dict) else None
            try:
                task = self.account.add_task(job, spec)
            except BatchApiError as exc:
                results.append({"status": "servererror" if exc.status >= 500 else "clienterror",
                                "taskId": str(task_id or ""), "error": exc.body(request.request_id)})
            else:
                results.append({"status": "success", "taskId": task.id, "eTag": task.etag,
                                "lastModified": iso(task.last_modified), "location": task.url(self.base_url)})
        metadata = self._metadata("Microsoft.Azure.Batch.Protocol.Entities.TaskAddResults")
        return json_response({"odata.metadata": metadata, "value": results})

    async def get_task(self, request: BatchRequest) -> web.StreamResponse:
        task = self._task(request)
        check_conditions(request, task.etag)
        doc = {"odata.metadata": self._metadata("tasks/@Element"),
               **task.to_rest(self.base_url, node_reference(self.account.base_url, self.account.pool.pool_id))}
        headers = {"DataServiceId": task.url(self.base_url)}
        return json_response(odata.apply_select(doc, select_fields(request)), etag=task.etag,
                             last_modified=task.last_modified, headers=headers)

    async def terminate_task(self, request: BatchRequest) -> web.StreamResponse:
        task = self._task(request)
        check_conditions(request, task.etag)
        self.account.terminate_task(task)
        return empty_response(204, task.url(self.base_url), task.etag, task.last_modified)

    # -- task files ------------------------------------------------------------------------------

    def _task_dir_for_files(self, request: BatchRequest) -> tuple[Task, Path]:
        task = self._task(request)
        task_dir = self.account.task_dir(task)
        if not task.ran_on_node or not task_dir.exists():
            raise BatchApiError(409, "TaskNotYetStarted" if task.state == "active" else "TaskFilesUnavailable",
                                "The specified operation is not valid for the current state of the task: its "
                                "files exist once it has been scheduled on a node.")
        return task, task_dir

    async def list_task_files(self, request: BatchRequest) -> web.StreamResponse:
        task, task_dir = self._task_dir_for_files(request)
        recursive = request.query.get("recursive", "false").lower() == "true"
        entries = sorted(task_dir.rglob("*") if recursive else task_dir.iterdir())
        documents = []
        for entry in entries:
            relative = entry.relative_to(task_dir).as_posix()
            stat = entry.stat()
            document: dict[str, Any] = {
                "name": relative,
                "url": f"{task.url(self.base_url)}/files/{quote(relative, safe='')}",
                "isDirectory": entry.is_dir(),
            }
            if not entry.is_dir():
                document["properties"] = {
                    "creationTime": iso(from_mtime(stat.st_ctime)),
                    "lastModified": iso(from_mtime(stat.st_mtime)),
                    "contentLength": str(stat.st_size),
                    "contentType": mimetypes.guess_type(entry.name)[0] or "application/octet-stream",
                    "fileMode": oct(stat.st_mode & 0o7777)[2:].rjust(4, "0"),
                }
            documents.append(document)
        return paged_response(request, documents, self._metadata("files"),
                              f"{self.base_url}/jobs/{quote(task.job.id if task.job else '', safe='')}/tasks/"
                              f"{quote(task.id, safe='')}/files")

    async def get_task_file(self, request: BatchRequest) -> web.StreamResponse:
        task, task_dir = self._task_dir_for_files(request)
        file_path = request.params["filePath"]
        target = (task_dir / file_path).resolve()
        if ".." in Path(file_path).parts or not target.is_relative_to(task_dir.resolve()) or not target.exists():
            raise BatchApiError(404, "FileNotFound", "The specified file does not exist.",
                                {"FilePath": file_path})
        stat = target.stat()
        is_dir = target.is_dir()
        modified = from_mtime(stat.st_mtime)
        headers = {
            "ocp-creation-time": rfc1123(from_mtime(stat.st_ctime)),
            "ocp-batch-file-isdirectory": "true" if is_dir else "false",
            "ocp-batch-file-url": f"{task.url(self.base_url)}/files/{quote(file_path, safe='')}",
            "ocp-batch-file-mode": oct(stat.st_mode & 0o7777)[2:].rjust(4, "0"),
            "Last-Modified": rfc1123(modified),
            "ETag": f"0x{int(stat.st_mtime_ns // 100):X}",
            "Content-Type": "application/octet-stream",
        }
        content = b"" if is_dir else await asyncio.to_thread(target.read_bytes)
        ranged = request.http.headers.get("ocp-range")
        if ranged and not is_dir:
            content = apply_range(content, ranged)
        # aiohttp sends Content-Length but no body when answering HEAD; an empty body needs it said.
        if not content:
            headers["Content-Length"] = "0"
        return web.Response(status=200, body=content, headers=headers)

    # -- pools and nodes -------------------------------------------------------------------------

    def _pool_or_404(self, request: BatchRequest) -> None:
        if request.params["poolId"].lower() != self.account.pool.pool_id.lower():
            raise BatchApiError(404, "PoolNotFound", "The specified pool does not exist.")

    async def list_pools(self, request: BatchRequest) -> web.StreamResponse:
        return paged_response(request, [pool_document(self.account, self.base_url)], self._metadata("pools"),
                              f"{self.base_url}/pools")

    async def create_pool(self, request: BatchRequest) -> web.StreamResponse:
        body = await request.json()
        pool_id = body.get("id") if isinstance(body, dict) else None
        if isinstance(pool_id, str) and pool_id.lower() == self.account.pool.pool_id.lower():
            raise BatchApiError(409, "PoolExists", "The specified pool already exists.")
        raise BatchApiError(400, "UnsupportedOperation",
                            f"The local Batch service has one fixed pool, {self.account.pool.pool_id!r}; it cannot "
                            f"create pool {pool_id!r}.")

    async def get_pool(self, request: BatchRequest) -> web.StreamResponse:
        self._pool_or_404(request)
        doc = {"odata.metadata": self._metadata("pools/@Element"), **pool_document(self.account, self.base_url)}
        return json_response(odata.apply_select(doc, select_fields(request)), etag=doc["eTag"],
                             last_modified=self.account.created)

    async def pool_exists(self, request: BatchRequest) -> web.StreamResponse:
        if request.params["poolId"].lower() != self.account.pool.pool_id.lower():
            return web.Response(status=404)
        etag = pool_document(self.account, self.base_url)["eTag"]
        return empty_response(200, etag=etag, last_modified=self.account.created)

    async def list_nodes(self, request: BatchRequest) -> web.StreamResponse:
        self._pool_or_404(request)
        return paged_response(request, [node_document(self.account, self.base_url)], self._metadata("nodes"),
                              f"{self.base_url}/pools/{self.account.pool.pool_id}/nodes")

    async def get_node(self, request: BatchRequest) -> web.StreamResponse:
        self._pool_or_404(request)
        if request.params["nodeId"] != NODE_ID:
            raise BatchApiError(404, "NodeNotFound", "The specified node does not exist.")
        document = node_document(self.account, self.base_url)
        return json_response({"odata.metadata": self._metadata("nodes/@Element"), **document})


# -- response helpers ------------------------------------------------------------------------------
