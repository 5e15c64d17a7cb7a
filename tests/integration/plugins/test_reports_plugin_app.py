"""The "Log reports" plugin app against Azurite (real blobs) and Airflow's simple auth manager (real tokens)."""

from __future__ import annotations

import datetime as dt

import pytest
from fastapi.testclient import TestClient

from airflow_provider_logproc.operators.report import headline
from airflow_provider_logproc.version_compat import AIRFLOW_V_3_1_PLUS
from tests.fixtures.report_days import write_report_day

pytestmark = [pytest.mark.integration,
              pytest.mark.skipif(not AIRFLOW_V_3_1_PLUS, reason="the plugin app serves on Airflow 3.1+")]


@pytest.fixture(scope="module")
def auth_manager(airflow_db):
    """Airflow's simple auth manager, initialised as the API server does."""
    mp = pytest.MonkeyPatch()
    mp.setenv("AIRFLOW__CORE__AUTH_MANAGER",
              "airflow.api_fastapi.auth.managers.simple.simple_auth_manager.SimpleAuthManager")
    mp.setenv("AIRFLOW__API_AUTH__JWT_SECRET", "test-secret-for-the-plugin-app-only-0123456789")
    from airflow.api_fastapi.app import init_auth_manager

    try:
        yield init_auth_manager()
    finally:
        mp.undo()


@pytest.fixture
def reports(azurite, blob_service_client, blob_container):
    container = blob_container("results")
    days = {day: write_report_day(blob_service_client, container, "access-logs", day, seed=day.day)
            for day in (dt.date(2026, 3, 1), dt.date(2026, 3, 2))}
    # Other results beside the reports must never be served.
    blob_service_client.get_blob_client(container, "access-logs/2026/03/02/partials/t1/partial.json").upload_blob(b"{}")
    return container, days


def client_for(auth_manager, container, *, role: str | None = "viewer", signed_in: bool = True) -> TestClient:
    from airflow.api_fastapi.auth.managers.simple.user import SimpleAuthManagerUser

    from airflow_provider_logproc.plugins.reports import create_app

    client = TestClient(create_app(containers=[container]), follow_redirects=False)
    if signed_in:
        token = auth_manager.generate_jwt(SimpleAuthManagerUser(username="reader", role=role))
        client.cookies.set("_token", token)
    return client


def test_lists_the_days_with_their_numbers_and_opens_each_report(auth_manager, reports):
    container, days = reports
    client = client_for(auth_manager, container)
    page = client.get("/")
    assert page.status_code == 200, page.text
    text = page.text
    # Newest window first, each with the summary's headline counters.
    assert text.index("2026/03/02") < text.index("2026/03/01")
    for day, summary in days.items():
        numbers = headline(summary)
        assert f'data-key="valid">{numbers["valid"]:,}<' in text
        assert f'data-key="unique_ips">{numbers["unique_ips"]:,}<' in text
        link = f"{container}/access-logs/{day:%Y/%m/%d}/report.html"
        assert f'href="{link}"' in text
        report = client.get(f"/{link}")
        assert report.status_code == 200
        assert report.headers["content-type"].startswith("text/html")
        assert f"Log analysis {day}" in report.text
        # Served on Airflow's origin: no script may run in it, nothing loads from elsewhere.
        policy = report.headers["content-security-policy"]
        assert "default-src 'none'" in policy and "sandbox" in policy and "allow-scripts" not in policy
    summary = client.get(f"/{container}/access-logs/2026/03/01/summary.json")
    assert summary.json()["totals"] == days[dt.date(2026, 3, 1)]["totals"]


def test_serves_only_reports_and_summaries_of_the_configured_container(auth_manager, reports, blob_container):
    container, _ = reports
    client = client_for(auth_manager, container)
    assert client.get(f"/{container}/access-logs/2026/03/02/partials/t1/partial.json").status_code == 404
    assert client.get(f"/{container}/access-logs/2026/03/09/report.html").status_code == 404  # no such day
    other = blob_container("other")
    assert client.get(f"/{other}/access-logs/2026/03/02/report.html").status_code == 404
    assert client.get(f"/{container}/access-logs/../x/report.html").status_code in (404, 400)


def test_needs_airflow_login(auth_manager, reports):
    container, _ = reports
    anonymous = client_for(auth_manager, container, signed_in=False)
    assert anonymous.get("/").status_code == 401
    browser = anonymous.get("/", headers={"Accept": "text/html"})
    assert browser.status_code == 303
    assert "/auth/login" in browser.headers["location"] and "next=" in browser.headers["location"]
    anonymous.cookies.set("_token", "not-a-token")
    assert anonymous.get(f"/{container}/access-logs/2026/03/01/report.html").status_code == 403


def test_a_signed_in_user_who_may_not_read_dag_runs_is_refused(auth_manager, reports):
    container, _ = reports
    no_role = client_for(auth_manager, container, role=None)  # the simple auth manager's "no access"
    assert no_role.get("/").status_code == 403
    assert no_role.get(f"/{container}/access-logs/2026/03/01/report.html").status_code == 403
