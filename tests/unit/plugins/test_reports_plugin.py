"""The Log reports plugin's registration and the report task's extra link, per Airflow version."""

from __future__ import annotations

from importlib.metadata import entry_points

import pytest

from airflow_provider_logproc.operators import report as report_module
from airflow_provider_logproc.plugins import reports
from airflow_provider_logproc.version_compat import AIRFLOW_V_3_1_PLUS

REPORT_URI = "http://127.0.0.1:10000/devstoreaccount1/results/access-logs/2026/03/02/report.html"


def test_the_plugin_is_registered_through_the_airflow_plugins_entry_point():
    found = {ep.name: ep.value for ep in entry_points(group="airflow.plugins")}
    assert found["logproc_reports"] == "airflow_provider_logproc.plugins.reports:LogReportsPlugin"


def test_the_plugin_mounts_an_app_and_a_menu_entry_on_3_1_plus_only(monkeypatch):
    monkeypatch.setattr(reports, "AIRFLOW_V_3_1_PLUS", True)
    (app,) = reports._fastapi_apps()
    assert app["url_prefix"] == "/logproc-reports"
    (view,) = reports._external_views()
    assert view["href"] == "logproc-reports/" and view["destination"] == "nav" and view["url_route"]
    monkeypatch.setattr(reports, "AIRFLOW_V_3_1_PLUS", False)
    assert reports._fastapi_apps() == [] and reports._external_views() == []


@pytest.mark.skipif(not AIRFLOW_V_3_1_PLUS, reason="loads the plugin as the 3.1+ API server does")
def test_airflow_loads_the_plugin():
    from airflow import plugins_manager

    # get_plugin_info is public on 3.1 and 3.3 alike (3.3's _get_plugins does not exist on 3.1).
    names = [info["name"] for info in plugins_manager.get_plugin_info()]
    assert "logproc_reports" in names


def test_containers_come_from_the_logproc_section(monkeypatch):
    assert reports.configured_containers() == ["results"]
    monkeypatch.setenv("AIRFLOW__LOGPROC__REPORTS_CONTAINERS", " results, archive-results ,")
    assert reports.configured_containers() == ["results", "archive-results"]
    monkeypatch.setenv("AIRFLOW__LOGPROC__REPORTS_WASB_CONN_ID", "wasb_results")
    assert reports.configured_conn_id() == "wasb_results"


def test_report_page_points_at_the_plugin_from_the_api_base_url(monkeypatch):
    monkeypatch.setattr(report_module, "AIRFLOW_V_3_1_PLUS", True)
    monkeypatch.setenv("AIRFLOW__API__BASE_URL", "https://airflow.example.com/")
    assert report_module.report_page(REPORT_URI) == (
        "https://airflow.example.com/logproc-reports/results/access-logs/2026/03/02/report.html")
    monkeypatch.delenv("AIRFLOW__API__BASE_URL")
    assert report_module.report_page(REPORT_URI) == "/logproc-reports/results/access-logs/2026/03/02/report.html"


def test_no_report_page_before_3_1(monkeypatch):
    monkeypatch.setattr(report_module, "AIRFLOW_V_3_1_PLUS", False)
    assert report_module.report_page(REPORT_URI) is None


def test_the_report_task_has_the_log_report_link_registered_with_the_provider():
    from airflow_provider_logproc.get_provider_info import get_provider_info
    from airflow_provider_logproc.operators.report import LogAnalysisReportOperator, LogReportLink

    assert [link.name for link in LogAnalysisReportOperator.operator_extra_links] == ["Log report"]
    assert "airflow_provider_logproc.operators.report.LogReportLink" in get_provider_info()["extra-links"]
    assert LogReportLink.name == "Log report"
