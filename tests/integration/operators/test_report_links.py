"""Where a notification's reader opens the report: the UI page, else a read-only SAS link (Azurite)."""

from __future__ import annotations

import datetime as dt
import logging
from urllib.parse import parse_qs, urlsplit

import pytest
from airflow.providers.microsoft.azure.hooks.wasb import WasbHook
from azure.core.exceptions import HttpResponseError
from azure.storage.blob import BlobClient

from airflow_provider_logproc.operators.report import LogAnalysisReportOperator

pytestmark = pytest.mark.integration


@pytest.fixture
def report(azurite, blob_service_client, blob_container):
    container = blob_container("results")
    blob = blob_service_client.get_blob_client(container, "access-logs/2026/03/02/report.html")
    blob.upload_blob(b"<html>the day's report</html>")
    return {"report_uri": blob.url, "summary_uri": blob.url.replace("report.html", "summary.json")}


def operator(**kwargs):
    return LogAnalysisReportOperator(task_id="report", partials=[], container="results", prefix="p", **kwargs)


def test_without_the_ui_plugin_the_notification_gets_a_short_lived_read_only_sas_link(report, caplog, capsys):
    service = WasbHook(wasb_conn_id="wasb_default").get_conn()
    caplog.set_level(logging.DEBUG)
    links = operator(report_link_lifetime=dt.timedelta(hours=2))._report_links(service, report, page=None)
    (url,) = links.values()
    assert list(links) == ["report_link"]
    fields = {k: v[0] for k, v in parse_qs(urlsplit(url).query).items()}
    assert fields["sp"] == "r" and fields["sr"] == "b"
    expiry = dt.datetime.fromisoformat(fields["se"].replace("Z", "+00:00"))
    assert dt.timedelta(minutes=119) < expiry - dt.datetime.now(dt.UTC) <= dt.timedelta(hours=2)
    anonymous = BlobClient.from_blob_url(url)
    assert anonymous.download_blob().readall() == b"<html>the day's report</html>"
    with pytest.raises(HttpResponseError):
        anonymous.upload_blob(b"changed", overwrite=True)
    # Airflow 3 logs through structlog (captured output), Airflow 2 through logging (caplog).
    logged = caplog.text + capsys.readouterr().out
    assert "devstoreaccount1" in logged  # the download's request logging was captured ...
    assert fields["sig"] not in logged  # ... and the token is in none of it


def test_a_relative_ui_page_is_no_use_in_a_notification_so_the_sas_link_is_given(report):
    service = WasbHook(wasb_conn_id="wasb_default").get_conn()
    assert list(operator()._report_links(service, report, page="/logproc-reports/results/x/report.html")) == [
        "report_link"]


def test_with_the_ui_plugin_at_a_known_address_the_notification_gets_the_page(report):
    service = WasbHook(wasb_conn_id="wasb_default").get_conn()
    page = "https://airflow.example.com/logproc-reports/results/access-logs/2026/03/02/report.html"
    assert operator()._report_links(service, report, page=page) == {"report_page": page}


def test_a_connection_that_cannot_sign_gives_no_link_and_says_why(report, caplog, capsys):
    from azure.storage.blob import BlobServiceClient

    anonymous_service = BlobServiceClient(account_url=report["report_uri"].split("/results-")[0])
    with caplog.at_level(logging.WARNING):
        assert operator()._report_links(anonymous_service, report, page=None) == {}
    assert "no SAS link to the report" in caplog.text + capsys.readouterr().out
