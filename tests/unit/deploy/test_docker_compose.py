"""docker-compose.yaml is valid Compose: checked against the Compose Specification's JSON schema.

There is no Docker engine here; `docker compose config` runs too when the Docker CLI has compose.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import jsonschema
import pytest
import yaml

ROOT = Path(__file__).resolve().parents[3]
SCHEMA = ROOT / "tests" / "contracts" / "compose-spec.json"
COMPOSE = ROOT / "docker-compose.yaml"


def _compose() -> dict:
    return yaml.safe_load(COMPOSE.read_text())


def test_compose_file_matches_the_compose_specification():
    schema = json.loads(SCHEMA.read_text())
    jsonschema.Draft7Validator(schema).validate(_compose())


def test_compose_sets_the_three_official_connections_and_parses_them():
    env = _compose()["x-airflow-common"]["environment"]
    for name, conn_type in [("AIRFLOW_CONN_KAFKA_DEFAULT", "kafka"), ("AIRFLOW_CONN_WASB_DEFAULT", "wasb"),
                            ("AIRFLOW_CONN_AZURE_BATCH_DEFAULT", "azure_batch")]:
        # Compose substitutes ${VAR:-default}; the JSON must parse after that.
        value = env[name].replace("${LOCAL_BATCH_KEY:-bG9jYWwtYmF0Y2gta2V5LWZvci1kb2NrZXI=}", "a2V5")
        assert json.loads(value)["conn_type"] == conn_type


def test_compose_brings_kafka_in_kraft_mode_and_airflow_3():
    services = _compose()["services"]
    assert "broker,controller" in services["kafka"]["environment"]["KAFKA_PROCESS_ROLES"]
    assert {"airflow-scheduler", "airflow-api-server", "airflow-dag-processor", "airflow-triggerer"} <= set(services)
    assert "apache/airflow:3.3" in (ROOT / "docker" / "airflow" / "Dockerfile").read_text()


def test_docker_compose_config_accepts_the_file():
    docker = shutil.which("docker")
    if not docker or subprocess.run([docker, "compose", "version"], capture_output=True, check=False).returncode:
        pytest.skip("the Docker CLI with the compose plugin is not installed here; the schema test above covers it")
    result = subprocess.run([docker, "compose", "-f", str(COMPOSE), "config", "--quiet"],
                            capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr


def test_the_celery_profile_runs_two_workers_that_share_only_blob_storage():
    compose = _compose()
    services = compose["services"]
    workers = [name for name, service in services.items() if "celery" in service.get("profiles", [])
               and service.get("command", [None, None])[:2] == ["airflow", "celery"]]
    assert workers == ["airflow-worker-1", "airflow-worker-2"]
    assert "redis" in services and services["redis"]["profiles"] == ["celery"]
    for name in workers:
        mounts = [volume.split(":")[0] for volume in services[name]["volumes"]]
        assert "staging" not in mounts, f"{name} must not share a local staging volume"
    env = compose["x-airflow-common"]["environment"]
    assert env["AIRFLOW__CORE__EXECUTOR"] == "${AIRFLOW_EXECUTOR:-LocalExecutor}"
    assert env["AIRFLOW__CELERY__BROKER_URL"].startswith("redis://redis:")
    # The documented command stages in Blob Storage, which the init step prepares.
    header = COMPOSE.read_text().split("x-airflow-common")[0]
    assert "AIRFLOW_EXECUTOR=CeleryExecutor LOGPROC_STAGING_BASE=abfs://wasb_default@staging/logproc" in header
    assert "create_container('staging')" in services["airflow-init"]["command"][-1]


def test_the_parse_time_warning_matches_the_two_shapes():
    from airflow_provider_logproc.pipeline import unshared_staging_warning

    assert unshared_staging_warning("file:///opt/airflow/staging", "LocalExecutor") is None
    assert unshared_staging_warning("file:///opt/airflow/staging", "CeleryExecutor") is not None
    assert unshared_staging_warning("abfs://wasb_default@staging/logproc", "CeleryExecutor") is None
