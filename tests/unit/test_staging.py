"""Staging names and atomic writes (file://)."""

from __future__ import annotations

import datetime as dt

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
