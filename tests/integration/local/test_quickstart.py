"""The local quickstart as a user runs it: logproc-local-stack, its env file, logproc-sample-logs.

The stack on fixed ports (here free ones passed as options) writes the connections to an owner-only
env file and prints no key; sample logs go to the broker of the kafka connection, onto a topic that
keeps them; a topic that would delete them at once is refused before anything is written.
"""

from __future__ import annotations

import datetime as dt
import os
import shlex
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from logproc_local.processes import free_port

pytestmark = pytest.mark.integration
BIN = Path(sys.executable).parent


def read_env_file(path: Path) -> dict[str, str]:
    values = {}
    for line in path.read_text().splitlines():
        if line and not line.startswith("#"):
            name, _, value = line.partition("=")
            values[name] = shlex.split(value)[0]
    return values


@pytest.fixture
def stack_env(tmp_path: Path):
    env_file = tmp_path / "logproc-local.env"
    ports = {"--kafka-port": free_port(), "--blob-port": free_port(), "--batch-port": free_port()}
    process = subprocess.Popen(
        [str(BIN / "logproc-local-stack"), "--dir", str(tmp_path / "stack"), "--env-file", str(env_file),
         *(str(item) for pair in ports.items() for item in pair)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 90
        while not env_file.exists():
            assert process.poll() is None, f"the stack exited: {process.communicate()[1][-2000:]}"
            assert time.monotonic() < deadline, "the stack did not write its env file"
            time.sleep(0.2)
        time.sleep(0.2)  # the file is written in one go; let the announcement lines follow
        yield env_file, ports, process
    finally:
        process.send_signal(signal.SIGTERM)
        out, err = process.communicate(timeout=60)
        stack_output = out + err
        # No key reaches the terminal: Azurite's well-known account key and the Batch account key.
        assert "AccountKey" not in stack_output and "Eby8vdM02" not in stack_output, stack_output


def test_the_stack_writes_an_owner_only_env_file_with_its_fixed_ports(stack_env) -> None:
    env_file, ports, _ = stack_env
    assert oct(env_file.stat().st_mode & 0o777) == "0o600"
    values = read_env_file(env_file)
    assert set(values) == {f"AIRFLOW_CONN_{conn_id}" for conn_id in ("KAFKA_DEFAULT", "WASB_DEFAULT",
                                                                      "AZURE_BATCH_DEFAULT")}
    assert f"127.0.0.1:{ports['--kafka-port']}" in values["AIRFLOW_CONN_KAFKA_DEFAULT"]
    assert f"127.0.0.1:{ports['--blob-port']}" in values["AIRFLOW_CONN_WASB_DEFAULT"]
    assert f"127.0.0.1:{ports['--batch-port']}" in values["AIRFLOW_CONN_AZURE_BATCH_DEFAULT"]


def test_sample_logs_go_to_the_kafka_connection_onto_a_topic_that_keeps_them(stack_env) -> None:
    env_file, ports, _ = stack_env
    env = {**os.environ, **read_env_file(env_file)}
    old_day = (dt.datetime.now(dt.UTC) - dt.timedelta(days=30)).date().isoformat()
    produced = subprocess.run([str(BIN / "logproc-sample-logs"), "--day", old_day, "--count", "200", "--topic",
                               "quickstart-logs"], env=env, capture_output=True, text=True, timeout=120)
    assert produced.returncode == 0, produced.stderr
    assert f"produced 200 records of {old_day} to quickstart-logs at 127.0.0.1:{ports['--kafka-port']}" \
        in produced.stderr

    from confluent_kafka import Consumer, TopicPartition
    from confluent_kafka.admin import AdminClient, ConfigResource, NewTopic

    bootstrap = f"127.0.0.1:{ports['--kafka-port']}"
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "quickstart-check"})
    try:
        # Retention off: the 30-day-old records are all still there.
        held = sum(consumer.get_watermark_offsets(TopicPartition("quickstart-logs", p), timeout=10)[1]
                   for p in range(3))
    finally:
        consumer.close()
    assert held == 200

    # A topic with the broker's usual 7-day retention would delete them at once: refused, nothing written.
    admin = AdminClient({"bootstrap.servers": bootstrap})
    for future in admin.create_topics([NewTopic("week-logs", 1, 1, config={"retention.ms": "604800000"})]).values():
        future.result(15)
    refused = subprocess.run([str(BIN / "logproc-sample-logs"), "--day", old_day, "--count", "10", "--topic",
                              "week-logs"], env=env, capture_output=True, text=True, timeout=120)
    assert refused.returncode == 2
    assert "topic 'week-logs' keeps records for 7 day(s) (retention.ms=604800000)" in refused.stderr
    resource = ConfigResource("topic", "week-logs")
    assert admin.describe_configs([resource])[resource].result(15)["retention.ms"].value == "604800000"


def test_a_port_in_use_is_named_with_the_option_that_changes_it(tmp_path: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = subprocess.run([str(BIN / "logproc-local-stack"), "--dir", str(tmp_path), "--kafka-port", str(port),
                                 "--env-file", str(tmp_path / "env")], capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert f"127.0.0.1:{port} is in use (another Kafka broker still running?): stop it, or pass --kafka-port" \
        in result.stderr
    assert not (tmp_path / "env").exists()
