"""README command 1 (`make demo`): its module, small, end to end on a fresh local stack."""

from __future__ import annotations

import subprocess
import sys

import pytest

pytestmark = pytest.mark.system


def test_demo_runs_the_daily_dag_and_says_where_the_report_is(tmp_path):
    report_dir = tmp_path / "report"
    result = subprocess.run(
        [sys.executable, "-m", "logproc_local.demo", "--records", "800", "--days", "1",
         "--first-day", "2026-03-03", "--dir", str(tmp_path / "demo"), "--report-dir", str(report_dir)],
        capture_output=True, text=True, timeout=600, check=False,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    report = report_dir / "2026-03-03" / "report.html"
    assert report.is_file()
    assert "<svg" in report.read_text()
    assert f"local copy:     {report}" in result.stdout
    assert "records analysed" in result.stdout
    # The Azure SDK's per-request logging stays out of what the user reads.
    assert "Response status" not in result.stdout
