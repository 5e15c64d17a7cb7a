"""The local Batch service's admin routes (``/_local/...``): no Batch authentication, loopback only.

What tests use to look inside and steer the service: health, the routes served, fault rules, the
request log and the scheduling delay (see the ``server`` module's docstring for the table).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from aiohttp import web

if TYPE_CHECKING:
    from logproc_local.batch_service.server import BatchServer

__all__ = ["handle_admin"]


async def handle_admin(server: BatchServer, http: web.Request) -> web.StreamResponse:
    """Answer a ``/_local/...`` admin request: health, routes, faults, the request log, settings."""
    tail = http.match_info["tail"].strip("/")
    try:
        if tail == "health":
            return web.json_response({"status": "ok", "account": server.account.account_name,
                                      "pool": server.account.pool.pool_id,
                                      "taskSlots": server.account.pool.task_slots})
        if tail == "routes":
            return web.json_response({"routes": [{"method": route.method, "path": route.template,
                                                  "operation": route.operation} for route in server.routes]})
        if tail == "faults":
            if http.method == "GET":
                return web.json_response({"rules": server.faults.rules()})
            if http.method == "POST":
                body = await http.json()
                specs = body if isinstance(body, list) else [body]
                added = [server.faults.add(**spec) for spec in specs]
                return web.json_response({"added": added}, status=201)
            if http.method == "DELETE":
                server.faults.clear()
                return web.json_response({"rules": []})
        if tail == "requests":
            if http.method == "GET":
                since = int(http.query.get("since", "0"))
                return web.json_response({"requests": server.request_log.entries(since),
                                          "last_seq": server.request_log.last_seq()})
            if http.method == "DELETE":
                server.request_log.clear()
                return web.json_response({"requests": []})
        if tail == "settings":
            if http.method == "POST":
                body = await http.json()
                if "scheduling_delay" in body:
                    server.account.scheduling_delay = float(body["scheduling_delay"])
                    server.account.wake()
            return web.json_response({"scheduling_delay": server.account.scheduling_delay})
    except (ValueError, TypeError) as exc:
        return web.json_response({"error": str(exc)}, status=400)
    return web.json_response({"error": f"no admin route {http.method} /_local/{tail}"}, status=404)
