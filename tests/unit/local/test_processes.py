from __future__ import annotations

import sys

import pytest

from logproc_local import azurite
from logproc_local.processes import LocalServerError, ManagedProcess, group_alive


def test_stop_kills_the_whole_process_group(tmp_path):
    # A parent that forks a child and both sleep: stopping must leave neither behind.
    script = "import os, time\nif os.fork() == 0:\n    time.sleep(600)\ntime.sleep(600)\n"
    process = ManagedProcess("sleeper", [sys.executable, "-c", script], tmp_path / "sleeper.log")
    process.start()
    process.wait_ready(lambda: True, timeout=5)
    assert process.pid and group_alive(process.pid)
    process.stop(timeout=5)
    assert not group_alive(process.pid)


def test_server_that_exits_early_reports_its_log(tmp_path):
    process = ManagedProcess("failing", [sys.executable, "-c", "print('port in use'); raise SystemExit(3)"],
                             tmp_path / "failing.log")
    process.start()
    with pytest.raises(LocalServerError, match=r"exited with code 3[\s\S]*port in use"):
        process.wait_ready(lambda: False, timeout=10)


def test_missing_azurite_says_how_to_install(tmp_path, monkeypatch):
    monkeypatch.setenv("LOGPROC_AZURITE_BLOB", str(tmp_path / "nope"))
    with pytest.raises(LocalServerError, match="make setup"):
        azurite.azurite_blob_binary()
