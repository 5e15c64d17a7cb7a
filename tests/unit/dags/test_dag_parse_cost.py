"""Parsing a DAG file must not import the heavy client SDKs (issue 8: parse time <= 200 ms).

Operators, sensors and triggers import azure.*, confluent_kafka, amazon.ion and the official hooks
in the methods that run at execute/poke/run time, so that the DAG processor, which re-parses every
file every few minutes, does not pay for them. Each check runs in a fresh interpreter (a module
imported by an earlier test would hide an offender), with Airflow itself imported first: what is
measured is the cost of the DAG file and of this package, not of Airflow.

No timing assertion here (see bench/bench_dag_parse.py for the numbers): which modules get
imported is deterministic, time on a shared CI machine is not.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from airflow_provider_logproc.version_compat import AIRFLOW_V_3_0_PLUS

REPO_ROOT = Path(__file__).resolve().parents[3]
DAGS = REPO_ROOT / "dags"

# The SDKs and official hooks our operators, sensors and triggers need only when they run.
HEAVY_MODULES = (
    "azure.storage.blob",
    "azure.batch",
    "azure.identity",
    "azure.servicebus",
    "azure.core",
    "confluent_kafka",
    "amazon.ion",
    "aiohttp",
    "airflow.providers.microsoft.azure.hooks.wasb",
    "airflow.providers.microsoft.azure.hooks.batch",
    "airflow.providers.apache.kafka.hooks.consume",
)

# Imported before the DAG file is executed: Airflow itself (any DAG file pays for it, and the DAG
# processor has it loaded already), plus, per DAG file, modules that are not ours to slim.
_PARSE_SCRIPT = """
import json, runpy, sys
import airflow
if int(airflow.__version__.split(".")[0]) >= 3:
    from airflow.sdk import DAG, Param, task
else:
    from airflow.decorators import task
    from airflow.models.dag import DAG
    from airflow.models.param import Param
import airflow.timetables.interval
for name in json.loads(sys.argv[2]):
    __import__(name)
before = set(sys.modules)
runpy.run_path(sys.argv[1], run_name="dag_parse_cost")
print(json.dumps({
    "before": sorted(m for m in json.loads(sys.argv[3]) if m in before),
    "new": sorted(m for m in json.loads(sys.argv[3]) if m in sys.modules and m not in before),
}))
"""


def parse_in_fresh_interpreter(dag_file: Path, preload: tuple[str, ...] = ()) -> dict[str, list[str]]:
    """Which of HEAVY_MODULES were loaded before the DAG file ran ("before") and by it ("new")."""
    result = subprocess.run(
        [sys.executable, "-c", _PARSE_SCRIPT, str(dag_file), json.dumps(list(preload)), json.dumps(HEAVY_MODULES)],
        env=dict(os.environ),  # the test session's AIRFLOW_HOME, dags folder, staging base
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, f"parsing {dag_file.name} failed:\n{result.stderr[-4000:]}"
    parsed: dict[str, list[str]] = json.loads(result.stdout.strip().splitlines()[-1])
    return parsed


def test_daily_dag_parse_imports_no_client_sdk() -> None:
    modules = parse_in_fresh_interpreter(DAGS / "logproc_daily.py")
    # Airflow 3.0's own task decorator imports aiohttp (through svcs in its execution API): not ours,
    # and the rest of the list still makes the check meaningful.
    assert set(modules["before"]) <= {"aiohttp"}, (
        f"Airflow alone already imports {modules['before']}: the check proves nothing")
    assert modules["new"] == [], (
        f"parsing dags/logproc_daily.py imports {', '.join(modules['new'])}: move these imports into the "
        f"operator/sensor/trigger methods that run at execute time")


# dags/logproc_on_new_logs.py builds the Kafka provider's AwaitMessageTrigger at parse time (an
# AssetWatcher needs the trigger object), and that module imports the Kafka provider's consumer hook
# (confluent_kafka). That cost is the provider's, not ours: it is imported first, and only what the
# rest of the file (our pipeline, operators, sensors) adds on top is checked.
WATCHER_TRIGGER_MODULE = "airflow.providers.apache.kafka.triggers.await_message"


@pytest.mark.skipif(not AIRFLOW_V_3_0_PLUS, reason="the event-driven DAG defines nothing before Airflow 3.0")
def test_event_dag_parse_imports_no_client_sdk_of_ours() -> None:
    modules = parse_in_fresh_interpreter(DAGS / "logproc_on_new_logs.py", preload=(WATCHER_TRIGGER_MODULE,))
    assert modules["new"] == [], (
        f"parsing dags/logproc_on_new_logs.py imports {', '.join(modules['new'])} beyond what "
        f"{WATCHER_TRIGGER_MODULE} imports: move these imports into the methods that run at execute time")
    # Our own modules must still be the ones that are checked: the preload must leave most SDKs out.
    # (aiohttp is not in the list: Airflow 3.0 imports it itself, see the daily DAG's test.)
    assert {"azure.storage.blob", "azure.batch", "azure.identity", "azure.servicebus", "amazon.ion"
            }.isdisjoint(modules["before"]), (
        f"{WATCHER_TRIGGER_MODULE} now imports {modules['before']}: revisit which modules this test excludes")


@pytest.mark.parametrize("module", [
    "airflow_provider_logproc.operators.blob",
    "airflow_provider_logproc.operators.batch",
    "airflow_provider_logproc.operators.ion",
    "airflow_provider_logproc.operators.kafka",
    "airflow_provider_logproc.operators.report",
    "airflow_provider_logproc.sensors.batch",
    "airflow_provider_logproc.sensors.kafka",
    "airflow_provider_logproc.triggers.batch",
    "airflow_provider_logproc.triggers.kafka",
])
def test_operator_modules_import_no_client_sdk(module: str, tmp_path: Path) -> None:
    """Each module alone, so a DAG file using only one of them is cheap too (and an offender is named)."""
    dag_file = tmp_path / "imports_only.py"
    dag_file.write_text(f"import {module}\n")
    modules = parse_in_fresh_interpreter(dag_file)
    assert modules["new"] == [], f"importing {module} imports {', '.join(modules['new'])}"
