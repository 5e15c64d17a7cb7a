"""The DAG files parse on every supported Airflow, as the DAG processor would parse them.

Run by the version matrix on 2.11, 3.0, 3.1 and by the full suite on 3.3: each version gets the DAGs it
can run, and a DAG that needs a newer Airflow is left out with a message, never an import error.
"""

from __future__ import annotations

import importlib
import logging
from pathlib import Path
from typing import Any

import pytest

from airflow_provider_logproc.version_compat import AIRFLOW_V_3_0_PLUS

DAGS = Path(__file__).resolve().parents[3] / "dags"


def parse_folder(folder: Path) -> Any:
    try:  # moved in Airflow 3.2
        dag_bag = importlib.import_module("airflow.dag_processing.dagbag").DagBag
    except ImportError:
        dag_bag = importlib.import_module("airflow.models.dagbag").DagBag
    return dag_bag(dag_folder=str(folder))  # examples: off in the test environment


def test_dag_files_parse_without_import_errors(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING):
        bag = parse_folder(DAGS)
    assert bag.import_errors == {}
    if AIRFLOW_V_3_0_PLUS:
        assert sorted(bag.dag_ids) == ["logproc_daily", "logproc_on_new_logs", "logproc_report_consumer"]
    else:
        # Asset watchers are Airflow 3: the event-driven DAG says why it is not there.
        assert sorted(bag.dag_ids) == ["logproc_daily", "logproc_report_consumer"]
        assert "logproc_on_new_logs is not defined: event-driven scheduling (asset watchers) needs Airflow 3.0" \
            in caplog.text


def test_daily_dag_covers_whole_days() -> None:
    """The daily DAG's runs cover a whole UTC day each (not the zero-length intervals of "@daily" on 3.x)."""
    import pendulum

    timetable = parse_folder(DAGS).dags["logproc_daily"].timetable
    interval = timetable.infer_manual_data_interval(run_after=pendulum.datetime(2026, 11, 21, 0, 30, tz="UTC"))
    assert (interval.start, interval.end) == (pendulum.datetime(2026, 11, 20, tz="UTC"),
                                              pendulum.datetime(2026, 11, 21, tz="UTC"))


def test_example_dags_in_the_package_are_the_dags_folder() -> None:
    """The wheel ships dags/ as airflow_provider_logproc.example_dags (setup.py maps the folder)."""
    import airflow_provider_logproc

    installed = Path(airflow_provider_logproc.__file__).parent / "example_dags"
    if not installed.is_dir():
        pytest.skip("editable install: example_dags exists only in built wheels (checked by the wheel tests)")
    for name in ("logproc_daily.py", "logproc_on_new_logs.py", "logproc_report_consumer.py"):
        assert (installed / name).read_bytes() == (DAGS / name).read_bytes(), f"example_dags/{name} is stale"


def test_the_report_consumer_is_scheduled_on_the_asset_the_report_step_updates() -> None:
    bag = parse_folder(DAGS)
    report_task = bag.dags["logproc_daily"].get_task("report")
    [outlet] = report_task.outlets
    assert outlet.uri == "logproc://access-logs/report"
    timetable = bag.dags["logproc_report_consumer"].timetable
    # AssetTriggeredTimetable (Airflow 3) / DatasetTriggeredTimetable (2.x), on exactly that asset.
    condition = getattr(timetable, "asset_condition", None) or getattr(timetable, "dataset_condition", None)
    assert condition is not None, timetable
    assert [asset.uri for asset in condition.objects] == [outlet.uri]


def test_only_the_daily_report_waits_for_the_previous_days_report() -> None:
    """The daily report reads earlier days' summaries: it runs after the previous day's, whatever the order
    a backfill's runs reach it in; the steps before it run days side by side."""
    bag = parse_folder(DAGS)
    daily = bag.dags["logproc_daily"]
    assert [task.task_id for task in daily.tasks if task.depends_on_past] == ["report"]
    if AIRFLOW_V_3_0_PLUS:
        # The event-driven DAG's runs compare with nothing: they do not wait for each other.
        assert not any(task.depends_on_past for task in bag.dags["logproc_on_new_logs"].tasks)
