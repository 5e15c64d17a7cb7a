"""Worker-process reading: when to use workers, and the job hand-over (no broker)."""

from __future__ import annotations

import subprocess
import sys

import pytest

from airflow_provider_logproc.consume.loop import ReadLimits
from airflow_provider_logproc.consume.parallel import (
    MIN_RECORDS_FOR_WORKERS,
    PartitionJob,
    PartitionReadError,
    _collect,
    choose_workers,
    config_is_portable,
)
from airflow_provider_logproc.kafka.window import PartitionPlan, RetentionGapError, TimeWindow

CONFIG = {"bootstrap.servers": "127.0.0.1:1", "group.id": "g", "enable.auto.commit": False}


def plans(*sizes: int) -> list[PartitionPlan]:
    return [PartitionPlan("t", index, 0, size, 0) for index, size in enumerate(sizes)]


def usable_cpus(monkeypatch, count: int) -> None:
    monkeypatch.setattr("os.sched_getaffinity", lambda _pid: set(range(count)))


def test_two_cpus_read_in_one_process_as_measured(monkeypatch):
    usable_cpus(monkeypatch, 2)
    big = MIN_RECORDS_FOR_WORKERS
    assert choose_workers(None, plans(big, big, big), CONFIG) == 1
    usable_cpus(monkeypatch, 3)
    assert choose_workers(None, plans(big, big, big), CONFIG) == 1


def test_small_windows_stay_in_process_and_large_ones_get_a_worker_per_two_cpus(monkeypatch):
    usable_cpus(monkeypatch, 8)
    assert choose_workers(None, plans(10, 10, 10), CONFIG) == 1
    big = MIN_RECORDS_FOR_WORKERS
    assert choose_workers(None, plans(big, big, big, 0), CONFIG) == 3  # the idle partition needs none
    assert choose_workers(None, plans(*[big] * 8), CONFIG) == 4  # one per two CPUs
    assert choose_workers(2, plans(5, 5, 5), CONFIG) == 2  # asked for: used even for small windows
    assert choose_workers(8, plans(5, 0), CONFIG) == 1
    with pytest.raises(ValueError, match="at least 1"):
        choose_workers(0, plans(5), CONFIG)


def test_configs_with_callbacks_are_read_in_process():
    assert config_is_portable(CONFIG)
    callback_config = {**CONFIG, "oauth_cb": lambda _: ("token", 0.0)}
    assert not config_is_portable(callback_config)
    assert choose_workers(3, plans(5, 5, 5), callback_config) == 1


def test_job_survives_the_json_hand_over():
    job = PartitionJob(CONFIG, PartitionPlan("t", 2, 5, 90, 7), TimeWindow(1, 2, 3), "text", "string", "json",
                       "warn", ReadLimits(batch_size=100), "/tmp/a.ion", "/tmp/a.dead")
    assert PartitionJob.from_json(job.to_json()) == job


def _finished(stdout: bytes, stderr_path, code: int = 0) -> subprocess.Popen[bytes]:
    script = f"import sys; sys.stdout.buffer.write({stdout!r}); sys.exit({code})"
    process = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE)
    process.wait()
    stderr_path.write_bytes(b"librdkafka said something\n")
    return process


def test_worker_errors_are_raised_in_the_parent(tmp_path):
    ion_path = tmp_path / "0.ion"
    job = PartitionJob(CONFIG, PartitionPlan("logs", 1, 0, 9, 0), TimeWindow(1, 2, 3), "text", "string", "json",
                       "fail", ReadLimits(), str(ion_path), str(tmp_path / "0.dead"))
    stderr_path = tmp_path / "0.ion.stderr"
    gap = b'{"error_type": "RetentionGapError", "message": "window starts before retention: ..."}'
    with pytest.raises(RetentionGapError, match="window starts before retention"):
        _collect(_finished(gap, stderr_path, 1), job)
    other = b'{"error_type": "KafkaException", "message": "broker down"}'
    with pytest.raises(PartitionReadError, match=r"logs\[1\]: KafkaException: broker down"):
        _collect(_finished(other, stderr_path, 1), job)
    with pytest.raises(PartitionReadError, match=r"exited with code 3 without a result.*librdkafka said"):
        _collect(_finished(b"", stderr_path, 3), job)
