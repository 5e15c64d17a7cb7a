"""The "Log reports" page: the day's reports served from Blob Storage behind Airflow's own login.

What each Airflow version gets:

- **3.1 and later**: a FastAPI app mounted on the API server at ``/logproc-reports`` (plugin
  ``fastapi_apps``) and a "Log reports" entry in the UI's *Browse* menu (``external_views``). Airflow
  does not authenticate plugin apps, so every route here asks for the user the way the core API does
  (``get_user``: the UI's ``_token`` session cookie, or a bearer token) and then for read access to
  DAG runs from the configured auth manager (simple, FAB, Keycloak...). A browser without a session
  is sent to the login page and comes back.
- **3.0**: nothing is mounted. Its API server reads only bearer tokens (no session cookie), so a page
  opened from a link could not be authenticated; the anomaly notifications carry a short-lived SAS
  link to the report instead.
- **2.11**: likewise the SAS link only (no Flask view: the plugin registers nothing on 2.x).

Settings (``[logproc]`` section, or ``AIRFLOW__LOGPROC__...`` variables): ``reports_containers``, the
results containers to list (comma-separated, default ``results``), and ``reports_wasb_conn_id``
(default ``wasb_default``). Only ``.../report.html`` and ``.../summary.json`` blobs of those
containers are ever served.
"""

# No "from __future__ import annotations": FastAPI reads the annotations of routes defined in functions.
from typing import Annotated, Any

from airflow.providers.common.compat.sdk import AirflowPlugin, conf

from airflow_provider_logproc.reporting.catalog import PLUGIN_URL_PREFIX
from airflow_provider_logproc.version_compat import AIRFLOW_V_3_1_PLUS

DEFAULT_CONTAINERS = "results"
# The pages are served on Airflow's own origin, next to the user's session: they need no script, so
# none may run (the report escapes every value from the logs; this is the second line of defence),
# they load nothing from elsewhere and post no form, and only Airflow's UI may frame them. The report
# is also sandboxed (an origin of its own); the list is not, so that its links carry the session.
_POLICY = ("default-src 'none'; style-src 'unsafe-inline'; img-src data:; form-action 'none'; "
           "frame-ancestors 'self'")
LIST_HEADERS = {"Content-Security-Policy": _POLICY, "Cache-Control": "no-store", "X-Content-Type-Options": "nosniff"}
REPORT_HEADERS = {**LIST_HEADERS, "Content-Security-Policy": f"{_POLICY}; sandbox allow-popups"}


def configured_containers() -> list[str]:
    """Return the results containers the page lists and serves (``[logproc] reports_containers``)."""
    raw = conf.get("logproc", "reports_containers", fallback=DEFAULT_CONTAINERS) or DEFAULT_CONTAINERS
    return [name.strip() for name in raw.split(",") if name.strip()]


def configured_conn_id() -> str:
    return conf.get("logproc", "reports_wasb_conn_id", fallback="wasb_default") or "wasb_default"


def create_app(service_factory: Any = None, containers: list[str] | None = None) -> Any:
    """Build the FastAPI app (Airflow 3.1+): the list of days and each day's report.

    :param service_factory: returns a ``BlobServiceClient``; default: the ``wasb`` connection's (read
        on every request, so a changed connection needs no restart).
    :param containers: the containers served; default from the configuration.
    """
    from fastapi import Depends, FastAPI, HTTPException, Query, Request
    from fastapi.responses import HTMLResponse, RedirectResponse, Response

    from airflow_provider_logproc.reporting.catalog import (
        DEFAULT_LIMIT,
        MAX_LIMIT,
        is_servable,
        read_report_days,
        render_report_list,
    )

    def service() -> Any:
        if service_factory is not None:
            return service_factory()
        from airflow.providers.microsoft.azure.hooks.wasb import WasbHook

        return WasbHook(wasb_conn_id=configured_conn_id()).get_conn()

    def served() -> list[str]:
        return containers if containers is not None else configured_containers()

    app = FastAPI(title="Log reports", docs_url=None, redoc_url=None, openapi_url=None,
                  dependencies=[Depends(_require_dag_run_reader())])

    @app.exception_handler(HTTPException)
    async def to_login(request: Request, exc: HTTPException) -> Response:
        # A browser without a session goes to Airflow's login page and comes back here.
        if exc.status_code == 401 and "text/html" in request.headers.get("accept", ""):
            from airflow.api_fastapi.app import get_auth_manager

            return RedirectResponse(get_auth_manager().get_url_login(next_url=str(request.url)), status_code=303)
        return Response(content=str(exc.detail), status_code=exc.status_code, media_type="text/plain")

    @app.get("/", response_class=HTMLResponse)
    def list_reports(limit: Annotated[int, Query(ge=1, le=MAX_LIMIT)] = DEFAULT_LIMIT) -> HTMLResponse:
        client = service()
        days = [day for name in served() for day in read_report_days(client.get_container_client(name), limit)]
        days.sort(key=lambda d: (d.prefix.partition("/")[2], d.prefix), reverse=True)
        return HTMLResponse(render_report_list(days[:limit], served()), headers=LIST_HEADERS)

    @app.get("/{container}/{blob_name:path}")
    def open_result(container: str, blob_name: str) -> Response:
        from azure.core.exceptions import ResourceNotFoundError

        if container not in served() or not is_servable(blob_name):
            raise HTTPException(status_code=404, detail="not a report of a configured results container")
        try:
            downloader = service().get_blob_client(container, blob_name).download_blob()
        except ResourceNotFoundError:
            raise HTTPException(status_code=404, detail=f"no {blob_name} in {container}") from None
        media = "application/json" if blob_name.endswith(".json") else "text/html; charset=utf-8"
        return Response(downloader.readall(), media_type=media, headers=REPORT_HEADERS)

    return app


def _require_dag_run_reader() -> Any:
    """Return the dependency every route has: a signed-in user allowed to read DAG runs."""
    from airflow.api_fastapi.core_api.security import get_user
    from fastapi import Depends, HTTPException

    def inner(user: Annotated[Any, Depends(get_user)]) -> None:
        from airflow.api_fastapi.app import get_auth_manager
        from airflow.api_fastapi.auth.managers.models.resource_details import DagAccessEntity

        if not get_auth_manager().is_authorized_dag(method="GET", access_entity=DagAccessEntity.RUN, user=user):
            raise HTTPException(status_code=403, detail="reading DAG runs is not allowed for this user")

    return inner


class _AppOnFirstRequest:
    """An ASGI app that builds :func:`create_app` on its first request.

    Every Airflow component loads plugins (scheduler, workers, DAG processor); only the API server
    serves them. Building the FastAPI app there, on first use, keeps FastAPI and the API server's
    security module out of the other components' imports.
    """

    def __init__(self) -> None:
        self._app: Any = None

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if self._app is None:
            self._app = create_app()
        await self._app(scope, receive, send)


def _fastapi_apps() -> list[dict[str, Any]]:
    if not AIRFLOW_V_3_1_PLUS:
        return []
    return [{"app": _AppOnFirstRequest(), "url_prefix": PLUGIN_URL_PREFIX, "name": "Log reports"}]


def _external_views() -> list[dict[str, Any]]:
    if not AIRFLOW_V_3_1_PLUS:
        return []
    # Relative href: resolved against the API server's base URL, so it works behind a path prefix.
    return [{"name": "Log reports", "href": PLUGIN_URL_PREFIX.lstrip("/") + "/", "destination": "nav",
             "category": "browse", "url_route": "log-reports"}]


class LogReportsPlugin(AirflowPlugin):
    """Serve the log pipeline's reports in the Airflow UI (Airflow 3.1+; registers nothing earlier)."""

    name = "logproc_reports"
    fastapi_apps = _fastapi_apps()
    external_views = _external_views()


__all__ = ["LogReportsPlugin", "configured_conn_id", "configured_containers", "create_app"]
