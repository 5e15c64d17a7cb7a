"""Staging names and atomic writes (file://)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pendulum
import pytest

from airflow_provider_logproc import staging

START = dt.datetime(2024, 3, 2, tzinfo=dt.UTC)
END = dt.datetime(2024, 3, 3, tzinfo=dt.UTC)


def test_default_uri_is_named_by_dag_task_and_interval(monkeypatch, tmp_path):
    monkeypatch.setenv(staging.STAGING_BASE_ENV, f"file://{tmp_path}/base")
    label = staging.interval_label(START, END)
    assert label == "20240302T000000Z--20240303T000000Z"
    uri = staging.default_uri(dag_id="daily", task_id="consume", label=label, filename="raw.ion")
    assert str(uri) == f"file://{tmp_path}/base/daily/consume/20240302T000000Z--20240303T000000Z/raw.ion"
    explicit = staging.default_uri(dag_id="d", task_id="t", label=label, filename="f", base=f"file://{tmp_path}/x")
    assert str(explicit) == f"file://{tmp_path}/x/d/t/{label}/f"


def test_interval_label_converts_to_utc_and_accepts_pendulum():
    berlin = dt.timezone(dt.timedelta(hours=1))
    assert staging.interval_label(dt.datetime(2024, 3, 2, 1, tzinfo=berlin), pendulum.datetime(2024, 3, 3)) == (
        "20240302T000000Z--20240303T000000Z")
    with pytest.raises(staging.StagingConfigError, match="naive"):
        staging.interval_label(dt.datetime(2024, 3, 2), END)
    with pytest.raises(staging.StagingConfigError, match="data interval"):
        staging.interval_label(None, END)


def test_missing_base_and_bad_segments(monkeypatch):
    monkeypatch.delenv(staging.STAGING_BASE_ENV, raising=False)
    with pytest.raises(staging.StagingConfigError, match="LOGPROC_STAGING_BASE"):
        staging.staging_base()
    with pytest.raises(staging.StagingConfigError, match="task_id 'a/b'"):
        staging.default_uri(dag_id="d", task_id="a/b", label="l", filename="f", base="file:///tmp")
    with pytest.raises(staging.StagingConfigError, match="neither a URI nor an absolute path"):
        staging.as_path("relative/dir")
    assert str(staging.as_path("/abs/file.ion")) == "file:///abs/file.ion"


def test_sibling():
    path = staging.as_path("file:///s/raw.ion")
    assert str(staging.sibling(path, "dead-letter.jsonl")) == "file:///s/raw.dead-letter.jsonl"
    assert str(staging.sibling(staging.as_path("file:///s/raw"), "x")) == "file:///s/raw.x"


def test_atomic_write_publishes_only_complete_files(tmp_path):
    target = tmp_path / "deep" / "dir" / "out.bin"
    with staging.atomic_write(f"file://{target}") as handle:
        handle.write(b"first")
        assert not target.exists()  # readers never see the half-written file
        assert [p.name.startswith(".out.bin.tmp-") for p in target.parent.iterdir()] == [True]
    assert target.read_bytes() == b"first"

    def fail_halfway() -> None:
        with staging.atomic_write(str(target)) as handle:
            handle.write(b"second, half")
            raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"):
        fail_halfway()
    assert target.read_bytes() == b"first"  # the previous complete version stays
    assert [p.name for p in target.parent.iterdir()] == ["out.bin"]

    with staging.atomic_write(str(target), "w") as handle:
        handle.write("text")
    assert target.read_text() == "text"
    with pytest.raises(ValueError, match="modes"):
        staging.atomic_write(str(target), "ab").__enter__()


def test_remove_if_exists(tmp_path):
    target = tmp_path / "x"
    target.write_bytes(b"1")
    assert staging.remove_if_exists(str(target)) is True
    assert staging.remove_if_exists(str(target)) is False


def test_local_staging_does_not_load_the_providers_filesystems(tmp_path):
    # The first ObjectStoragePath.fs makes Airflow import every provider's filesystem module
    # (azure-identity, msal: ~0.3 s of a task's process); a file:// location must not need it.
    import subprocess
    import sys
    import textwrap

    script = textwrap.dedent(f"""
        import sys
        from airflow_provider_logproc import staging
        target = "file://{tmp_path}/day/raw.ion"
        with staging.atomic_write(target) as handle:
            handle.write(b"x")
        assert staging.exists(target) and not staging.exists(target + ".missing")
        assert staging.remove_if_exists(target) and not staging.remove_if_exists(target)
        loaded = [name for name in sys.modules if name.startswith(("azure.identity", "msal", "adlfs"))]
        print(loaded)
    """)
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    assert result.stdout.strip() == "[]", result.stdout


def test_local_file_is_none_for_object_storage():
    assert staging.local_file(staging.as_path("file:///tmp/a/b.ion")) == Path("/tmp/a/b.ion")
    assert staging.local_file(staging.as_path("abfs://wasb_default@staging/logproc/b.ion")) is None
