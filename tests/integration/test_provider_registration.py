"""Airflow finds the provider through its entry point."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration


def test_airflow_providers_list_shows_the_provider():
    airflow = Path(sys.executable).parent / "airflow"
    result = subprocess.run(
        [str(airflow), "providers", "list", "--output", "json"],
        capture_output=True, text=True, timeout=180, env=os.environ.copy(), check=False,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert "airflow-provider-logproc" in result.stdout


def test_provider_info_has_package_name():
    from airflow_provider_logproc.get_provider_info import get_provider_info

    info = get_provider_info()
    assert info["package-name"] == "airflow-provider-logproc"
    assert info["versions"]
