"""A person opens the day's report from the Airflow 3 UI: log in, the "Log reports" page, the extra link.

A private Airflow (own home and metadata DB, the simple auth manager with one viewer) runs the report
task of a one-task DAG over a partial analysis in Azurite (``airflow dags test``), then serves the UI
(``airflow api-server`` on 127.0.0.1). Headless Chromium logs in through the UI's login form, opens
the plugin page in the UI's menu, reads the day's numbers, opens the report from there, and opens it
again through the task's "Log report" extra link.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
import sqlite3
import subprocess
import sys
import textwrap
import urllib.request
from pathlib import Path
from urllib.parse import quote

import orjson
import pytest

from airflow_provider_logproc.operators.report import headline
from airflow_provider_logproc.version_compat import AIRFLOW_V_3_1_PLUS
from logproc_analyzer import analyze_lines
from logproc_local import sample_logs
from logproc_local.processes import ManagedProcess, free_port

pytestmark = [pytest.mark.system,
              pytest.mark.skipif(not AIRFLOW_V_3_1_PLUS, reason="the Log reports plugin serves on Airflow 3.1+")]

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
BIN = Path(sys.executable).parent
DAY = dt.date(2026, 3, 2)
PREFIX = f"access-logs/{DAY:%Y/%m/%d}"
DAG_ID = "logproc_report_in_ui"
USER, PASSWORD = "reader", "reader-password"

DAG_FILE = textwrap.dedent(f"""
    import os

    import pendulum
    from airflow.providers.common.compat.sdk import DAG

    from airflow_provider_logproc.operators.report import LogAnalysisReportOperator

    with DAG("{DAG_ID}", schedule=None, start_date=pendulum.datetime(2026, 1, 1, tz="UTC"), catchup=False):
        LogAnalysisReportOperator(task_id="report", partials=os.environ["TEST_PARTIAL_URL"],
                                  container=os.environ["TEST_RESULTS_CONTAINER"], prefix="{PREFIX}",
                                  title="Log analysis {DAY} (access-logs)")
""")


def ready(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return response.status == 200
    except OSError:
        return False


@pytest.fixture
def airflow_ui(tmp_path, airflow_db, azurite, blob_service_client, blob_container):
    """The report task run once, then the API server serving the UI and the plugin."""
    container = blob_container("results")
    records = sample_logs.generate(DAY, 3_000, seed=11, bad_share=0.01)
    partial = analyze_lines((r.value for r in records), source="part-00000.jsonl").to_partial()
    blob = blob_service_client.get_blob_client(container, f"{PREFIX}/partials/t0/partial.json")
    blob.upload_blob(orjson.dumps(partial))

    home = tmp_path / "airflow-home"
    (home / "dags").mkdir(parents=True)
    (home / "dags" / "report_dag.py").write_text(DAG_FILE)
    # The session's migrated DB, copied with SQLite's backup API (WAL included): no `airflow db migrate` here.
    with sqlite3.connect(airflow_db) as source, sqlite3.connect(home / "airflow.db") as copy:
        source.backup(copy)
    (home / "passwords.json").write_text(json.dumps({USER: PASSWORD}))
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = {
        **os.environ,
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home / 'airflow.db'}",
        "AIRFLOW__CORE__DAGS_FOLDER": str(home / "dags"),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__AUTH_MANAGER":
            "airflow.api_fastapi.auth.managers.simple.simple_auth_manager.SimpleAuthManager",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": f"{USER}:viewer",
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(home / "passwords.json"),
        "AIRFLOW__API_AUTH__JWT_SECRET": "test-only-jwt-secret-for-the-ui-test-0123456789abcdef0123456789ab",
        "AIRFLOW__API__BASE_URL": base,
        "AIRFLOW__LOGPROC__REPORTS_CONTAINERS": container,
        "TEST_PARTIAL_URL": blob.url,
        "TEST_RESULTS_CONTAINER": container,
    }
    for args in (["dags", "reserialize"], ["dags", "test", DAG_ID, DAY.isoformat()]):
        result = subprocess.run([str(BIN / "airflow"), *args], env=env, capture_output=True, text=True,
                                timeout=300, check=False)
        assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    with sqlite3.connect(home / "airflow.db") as conn:
        (run_id,) = conn.execute("SELECT run_id FROM dag_run WHERE dag_id = ?", (DAG_ID,)).fetchone()
    summary = orjson.loads(blob_service_client.get_blob_client(container, f"{PREFIX}/summary.json")
                           .download_blob().readall())
    server = ManagedProcess("api-server", [str(BIN / "airflow"), "api-server", "--host", "127.0.0.1", "--port",
                                           str(port), "--workers", "1"], tmp_path / "api-server.log", env)
    server.start()
    try:
        server.wait_ready(lambda: ready(f"{base}/api/v2/monitor/health"), timeout=120)
        yield {"base": base, "container": container, "run_id": run_id, "summary": summary, "log": server}
    finally:
        server.stop(timeout=15)


@pytest.mark.skipif(CHROMIUM is None, reason="Debian's chromium is not installed (make system-packages installs it)")
def test_log_in_and_open_the_days_report_from_the_plugin_page_and_the_extra_link(airflow_ui, tmp_path):
    from playwright.sync_api import expect, sync_playwright

    base, numbers = airflow_ui["base"], headline(airflow_ui["summary"])
    report_href = f"{airflow_ui['container']}/{PREFIX}/report.html"
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu"])
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 900})
            page.set_default_timeout(30_000)
            # Not signed in: the plugin page sends the browser to Airflow's login, which comes back.
            page.goto(f"{base}/logproc-reports/")
            page.wait_for_url("**/auth/login**")
            page.locator("input[name='username']").fill(USER)
            page.locator("input[name='password']").fill(PASSWORD)
            page.locator("button[type='submit']").click()
            page.wait_for_url(f"{base}/logproc-reports/**")

            # The page in the UI's menu (an iframe inside Airflow's layout) lists the day and its numbers.
            page.goto(f"{base}/plugin/log-reports")
            frame = page.frame_locator("iframe")
            row = frame.locator(f"tr[data-prefix='{PREFIX}']")
            for key in ("valid", "invalid", "client_errors", "server_errors", "unique_ips"):
                expect(row.locator(f"td[data-key='{key}']")).to_have_text(f"{numbers[key]:,}")
            row.get_by_role("link", name="open report").click()
            report = frame.locator("body")
            expect(report).to_contain_text(f"Log analysis {DAY} (access-logs)")
            expect(report).to_contain_text(f"{numbers['valid']:,}")
            page.screenshot(path=str(tmp_path / "plugin-page.png"))

            # The report task's extra link (on its Details tab) opens the same report, through the plugin.
            page.goto(f"{base}/dags/{DAG_ID}/runs/{quote(airflow_ui['run_id'], safe='')}/tasks/report/details")
            link = page.get_by_role("link", name="Log report")
            expect(link).to_have_attribute("href", f"{base}/logproc-reports/{report_href}")
            page.goto(link.get_attribute("href") or "")
            expect(page.locator("body")).to_contain_text(f"{numbers['valid']:,}")
            assert page.title() == f"Log analysis {DAY} (access-logs)"
        finally:
            browser.close()
