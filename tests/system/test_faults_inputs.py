"""Issue 9, items 7 and 9 at the step where the input bites: shell metacharacters in a Batch command
line (inert: argv is quoted, the node runs it without a shell), a truncated gzip part (a clear
error naming the file, no partial result) and a 5 MB record (consumed, then converted to JSON)."""

from __future__ import annotations

import datetime as dt
import gzip
import json
import subprocess
import sys
import time
import uuid
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

pytestmark = pytest.mark.system

# Arguments a templated value could carry; each must reach the program unchanged and do nothing.
NASTY = ["$(touch {canary})", "; touch {canary}", "`touch {canary}`", "| touch {canary}", "&& touch {canary}",
         "> {canary}", "a b 'c' \"d\" \\e", "$HOME ${{PATH}} *", "\n touch {canary}"]
WRITE_ARGV = "import json, os, sys; os.makedirs(sys.argv[1], exist_ok=True); " \
             "json.dump(sys.argv[2:], open(os.path.join(sys.argv[1], 'partial.json'), 'w'))"


class RecordingTaskInstance:
    def __init__(self) -> None:
        self.xcom: dict[str, Any] = {}

    def xcom_push(self, key: str, value: Any) -> None:
        self.xcom[key] = value


def test_shell_metacharacters_in_batch_arguments_are_inert(batch_service, batch_reset, azurite, blob_service_client,
                                                           blob_container, tmp_path):
    from airflow.sdk import DAG

    from airflow_provider_logproc.operators.batch import AzureBatchJobOperator

    canary = tmp_path / "pwned"
    nasty = [arg.format(canary=canary) for arg in NASTY]
    logs, results = blob_container("logs"), blob_container("results")
    name = "app/2026/03/01/part-00000.jsonl"
    blob_service_client.get_blob_client(logs, name).upload_blob(b'{"a": 1}\n')
    with DAG(f"faults_{uuid.uuid4().hex[:8]}", schedule=None):
        operator = AzureBatchJobOperator(
            task_id="analyze", pool_id=batch_service.pool_id, poll_interval=0.3, deferrable=False,
            fan_out_inputs=[f"{azurite.blob_endpoint}/{logs}/{name}"],
            task_template={"command": [sys.executable, "-c", WRITE_ARGV, "{output_dir}", "{input_file}", *nasty],
                           "output_file_pattern": "partial.json",
                           "constraints": {"max_wall_clock_time": "PT2M"}},
            output_container=results, wasb_conn_id="wasb_default")
    start = dt.datetime(2026, 3, 1, tzinfo=dt.UTC)
    context = {"data_interval_start": start, "data_interval_end": start + dt.timedelta(days=1),
               "dag_run": SimpleNamespace(run_id=f"faults-{uuid.uuid4().hex[:8]}"), "ti": RecordingTaskInstance()}
    outcome = operator.execute(context)  # type: ignore[arg-type]

    assert outcome is not None
    (url,) = outcome["outputs"]
    blob = url.split(f"/{results}/", 1)[1]
    argv = json.loads(blob_service_client.get_blob_client(results, blob).download_blob().readall())
    assert argv[1:] == nasty  # every argument arrived as one literal argument
    assert not canary.exists()
    assert not Path(argv[0]).is_absolute() or "pwned" not in argv[0]


def test_batch_spec_with_a_command_line_string_is_not_reinterpreted():
    """The argv form is joined with shell quoting; the service splits it back without a shell."""
    import shlex

    from airflow_provider_logproc.azure_batch.task_specs import command_line_from_argv

    argv = ["prog", *[arg.format(canary="/tmp/x") for arg in NASTY]]
    assert shlex.split(command_line_from_argv(argv, "task")) == argv


def test_truncated_gzip_part_fails_clearly_and_writes_no_partial(tmp_path):
    lines = b"".join(b'{"timestamp": 1773100800000, "client_ip": "10.0.0.%d", "method": "GET", "path": "/a", '
                     b'"status": 200, "bytes": 10}\n' % (i % 250) for i in range(20_000))
    compressed = gzip.compress(lines)
    part = tmp_path / "part-00000.jsonl.gz"
    part.write_bytes(compressed[: len(compressed) // 2])
    output = tmp_path / "partial.json"
    analyzer = Path(sys.executable).parent / "logproc-analyze"
    result = subprocess.run([str(analyzer), str(part), "--output", str(output)], capture_output=True, text=True,
                            check=False)
    assert result.returncode != 0
    assert str(part) in result.stderr and "end-of-stream" in result.stderr
    assert "Traceback" not in result.stderr
    assert not output.exists()  # nothing half-counted reaches the merge


@pytest.mark.parametrize("size", [64 * 1024, 5 * 1024 * 1024], ids=["64kB", "5MB"])
def test_a_large_record_goes_from_kafka_to_json_lines(kafka_broker, kafka_topic, session_dir, size):
    import orjson
    from confluent_kafka import KafkaError, Producer

    from airflow_provider_logproc.operators.ion import IonToJsonOperator
    from airflow_provider_logproc.operators.kafka import KafkaBatchConsumeOperator

    topic = kafka_topic(partitions=1, config={"max.message.bytes": "16000000"})
    start = dt.datetime(2026, 3, 20, tzinfo=dt.UTC)
    inside = int(start.timestamp() * 1000) + 3_600_000
    big = orjson.dumps({"timestamp": inside, "client_ip": "10.9.9.9", "method": "GET",
                        "path": "/" + "x" * size, "status": 200, "bytes": 1})
    small = orjson.dumps({"timestamp": inside + 1, "client_ip": "10.9.9.8", "method": "GET", "path": "/",
                          "status": 200, "bytes": 1})
    failures: list[Any] = []

    def record_failure(error: KafkaError | None, _message: Any) -> None:
        if error:
            failures.append(error)

    producer = Producer({"bootstrap.servers": kafka_broker.bootstrap_servers, "message.max.bytes": 16_000_000})
    for value, ts in ((big, inside), (small, inside + 1)):
        producer.produce(topic, value=value, timestamp=ts, on_delivery=record_failure)
    assert producer.flush(30) == 0 and not failures
    out = session_dir / f"big-{uuid.uuid4().hex[:6]}"
    context: dict[str, Any] = {"data_interval_start": start, "data_interval_end": start + dt.timedelta(days=1),
                               "ti": RecordingTaskInstance()}
    KafkaBatchConsumeOperator(task_id="consume", topics=topic, output_uri=f"file://{out}/raw.ion").execute(
        context)  # type: ignore[arg-type]
    assert context["ti"].xcom["record_count"] == 2
    IonToJsonOperator(task_id="to_json", source_uri=f"file://{out}/raw.ion", output_uri=f"file://{out}/raw.jsonl",
                      validate_records=True).execute(context)  # type: ignore[arg-type]
    lines = (out / "raw.jsonl").read_bytes().splitlines()
    assert [orjson.loads(line) for line in lines] == [orjson.loads(big), orjson.loads(small)]


# --- item 6: a Batch task that runs past its wall-clock limit -------------------------------------------

SLOW = "import sys, time; print('started the slow part', file=sys.stderr, flush=True); time.sleep(60)"


def test_a_batch_task_past_its_wall_clock_limit_fails_the_airflow_task_with_its_stderr(
        batch_service, batch_reset, azurite, blob_service_client, blob_container, caplog, capsys):
    import logging

    from airflow.providers.common.compat.sdk import AirflowException
    from airflow.sdk import DAG

    from airflow_provider_logproc.operators.batch import AzureBatchJobOperator

    logs = blob_container("logs")
    name = "app/2026/03/02/part-00000.jsonl"
    blob_service_client.get_blob_client(logs, name).upload_blob(b'{"a": 1}\n')
    with DAG(f"faults_{uuid.uuid4().hex[:8]}", schedule=None):
        operator = AzureBatchJobOperator(
            task_id="analyze", pool_id=batch_service.pool_id, poll_interval=0.3, deferrable=False,
            fan_out_inputs=[f"{azurite.blob_endpoint}/{logs}/{name}"],
            task_template={"command": [sys.executable, "-c", SLOW, "{input_file}"],
                           "constraints": {"max_wall_clock_time": "PT2S", "max_task_retry_count": 0}},
            wasb_conn_id="wasb_default")
    start = dt.datetime(2026, 3, 2, tzinfo=dt.UTC)
    context = {"data_interval_start": start, "data_interval_end": start + dt.timedelta(days=1),
               "dag_run": SimpleNamespace(run_id=f"faults-{uuid.uuid4().hex[:8]}"), "ti": RecordingTaskInstance()}
    started = time.monotonic()
    with caplog.at_level(logging.INFO), pytest.raises(AirflowException) as failure:
        operator.execute(context)  # type: ignore[arg-type]
    took = time.monotonic() - started
    log = caplog.text + capsys.readouterr().out
    print(f"wall-clock case: failed after {took:.1f} s: {failure.value}")
    assert took < 30
    assert "1 of 1 task(s) failed: part-00000" in str(failure.value)
    assert "started the slow part" in log  # the stderr tail
    assert "sig=" not in log and "sig=" not in str(failure.value)
