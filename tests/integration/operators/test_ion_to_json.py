"""IonToJsonOperator on files written by KafkaBatchConsumeOperator (real broker, file:// storage),
and both operators run through Airflow (dag.test) so templating and XCom are exercised."""

from __future__ import annotations

import base64
import datetime as dt
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest

from airflow_provider_logproc.consume.ion_json import CorruptIonError
from airflow_provider_logproc.operators.ion import IonToJsonOperator
from airflow_provider_logproc.operators.kafka import KafkaBatchConsumeOperator
from logproc_local import sample_logs

pytestmark = pytest.mark.integration

DAY = dt.date(2024, 5, 6)
SINCE = dt.datetime(2024, 5, 6, tzinfo=dt.UTC)
UNTIL = SINCE + dt.timedelta(days=1)


class RecordingTaskInstance:
    def __init__(self) -> None:
        self.xcom: dict[str, Any] = {}

    def xcom_push(self, key: str, value: Any) -> None:
        self.xcom[key] = value


def run(operator: Any, **context: Any) -> tuple[str, dict[str, Any]]:
    ti = RecordingTaskInstance()
    return operator.execute({"ti": ti, **context}), ti.xcom


@pytest.fixture(scope="module")
def consumed(kafka_broker, tmp_path_factory) -> dict[str, Any]:
    """One day of records (5 % bad) consumed to Ion, in both encodings."""
    from confluent_kafka.admin import AdminClient, NewTopic

    topic = f"ion-json-{dt.datetime.now().timestamp():.0f}"
    admin = AdminClient({"bootstrap.servers": kafka_broker.bootstrap_servers})
    for future in admin.create_topics([NewTopic(topic, 3, 1, config={"retention.ms": "-1"})]).values():
        future.result(timeout=15)
    records = list(sample_logs.generate(DAY, 2000, seed=11, bad_share=0.05))
    sample_logs.produce(records, topic, {"bootstrap.servers": kafka_broker.bootstrap_servers}, partitions=3)
    directory = tmp_path_factory.mktemp("consumed")
    files = {}
    for encoding in ("text", "binary"):
        target = directory / encoding / "raw.ion"
        run(KafkaBatchConsumeOperator(task_id="consume", topics=topic, output_uri=str(target), since=SINCE,
                                      until=UNTIL, max_bad_share=1.0, ion_encoding=encoding))
        files[encoding] = target
    return {"topic": topic, "records": records, "files": files}


def decoded_values(records: list[sample_logs.SampleRecord]) -> list[Any]:
    values = []
    for record in records:
        try:
            values.append(orjson.loads(record.value))
        except orjson.JSONDecodeError:
            continue
    return values


def by_content(values: list[Any]) -> list[bytes]:
    return sorted(orjson.dumps(value, option=orjson.OPT_SORT_KEYS) for value in values)


@pytest.mark.parametrize("encoding", ["text", "binary"])
def test_jsonl_is_the_original_log_records(consumed, tmp_path, encoding):
    target = tmp_path / "raw.jsonl"
    uri, xcom = run(IonToJsonOperator(task_id="to_json", source_uri=f"file://{consumed['files'][encoding]}",
                                      output_uri=f"file://{target}"))
    assert uri == f"file://{target}"
    lines = [orjson.loads(line) for line in target.read_bytes().splitlines()]
    want = decoded_values(consumed["records"])
    assert xcom["record_count"] == len(lines) == len(want)
    assert by_content(lines) == by_content(want)  # same records, numbers and strings unchanged
    assert xcom["invalid_count"] == 0 and "invalid_uri" not in xcom  # never a null XCom (Airflow 3.0 rejects it)


def test_validation_keeps_invalid_records_aside(consumed, tmp_path):
    target = tmp_path / "valid.jsonl"
    _, xcom = run(IonToJsonOperator(task_id="to_json", source_uri=str(consumed["files"]["text"]),
                                    output_uri=str(target), validate_records=True))
    partial = [r for r in consumed["records"] if r.is_bad and b'"partial record' in r.value]
    assert partial
    assert xcom["invalid_count"] == len(partial)
    invalid_path = tmp_path / "valid.invalid.jsonl"
    assert xcom["invalid_uri"] == f"file://{invalid_path}"
    invalid = [orjson.loads(line) for line in invalid_path.read_bytes().splitlines()]
    assert {line["reason"] for line in invalid} == {"missing client_ip, method, path, status"}
    assert all(line["record"]["value"]["source"] == "iot" for line in invalid)  # the whole envelope is kept
    assert all(isinstance(line["index"], int) for line in invalid)
    assert xcom["record_count"] + xcom["invalid_count"] == len(decoded_values(consumed["records"]))


def test_envelopes_json_array_with_timezone(consumed, tmp_path):
    target = tmp_path / "envelopes.json"
    _, xcom = run(IonToJsonOperator(task_id="to_json", source_uri=str(consumed["files"]["binary"]),
                                    output_uri=str(target), output_format="json_array", unwrap_value=False,
                                    timezone="Europe/Berlin"))
    envelopes = orjson.loads(target.read_bytes())
    assert len(envelopes) == xcom["record_count"]
    first = envelopes[0]
    assert set(first) == {"topic", "partition", "offset", "timestamp", "key", "value", "headers"}
    assert first["timestamp"].endswith("+02:00")  # CEST in May
    moment = dt.datetime.fromisoformat(first["timestamp"])
    assert SINCE <= moment < UNTIL
    assert first["topic"] == consumed["topic"]


def test_bytes_values_become_base64(kafka_topic, kafka_broker, tmp_path):
    topic = kafka_topic(partitions=1)
    records = list(sample_logs.generate(DAY, 10, seed=12, bad_share=0.3))
    sample_logs.produce(records, topic, {"bootstrap.servers": kafka_broker.bootstrap_servers}, partitions=1)
    ion_file = tmp_path / "raw.ion"
    run(KafkaBatchConsumeOperator(task_id="c", topics=topic, output_uri=str(ion_file), since=SINCE, until=UNTIL,
                                  value_deserializer="bytes"))
    target = tmp_path / "raw.jsonl"
    run(IonToJsonOperator(task_id="j", source_uri=str(ion_file), output_uri=str(target)))
    lines = [orjson.loads(line) for line in target.read_bytes().splitlines()]
    assert [base64.b64decode(line) for line in lines] == [r.value for r in records]


@pytest.mark.parametrize("encoding", ["text", "binary"])
def test_corrupt_ion_fails_clearly_and_leaves_no_output(consumed, tmp_path, encoding):
    data = bytearray(consumed["files"][encoding].read_bytes())
    middle = len(data) // 2
    data[middle:middle + 40] = b"\xee" * 40
    corrupt = tmp_path / "corrupt.ion"
    corrupt.write_bytes(bytes(data))
    target = tmp_path / "out" / "raw.jsonl"
    with pytest.raises(CorruptIonError) as failure:
        run(IonToJsonOperator(task_id="j", source_uri=str(corrupt), output_uri=str(target)))
    message = str(failure.value)
    assert "corrupt.ion" in message and "record index" in message and "bytes" in message
    assert not target.exists()
    assert list(target.parent.iterdir()) == []  # no temporary or invalid-records file either


def test_a_rerun_after_corruption_keeps_the_previous_output(consumed, tmp_path):
    target = tmp_path / "raw.jsonl"
    run(IonToJsonOperator(task_id="j", source_uri=str(consumed["files"]["text"]), output_uri=str(target)))
    good = target.read_bytes()
    truncated = tmp_path / "truncated.ion"
    truncated.write_bytes(consumed["files"]["binary"].read_bytes()[:-25])
    with pytest.raises(CorruptIonError, match="record index"):
        run(IonToJsonOperator(task_id="j", source_uri=str(truncated), output_uri=str(target)))
    assert target.read_bytes() == good


def test_missing_source_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        run(IonToJsonOperator(task_id="j", source_uri=str(tmp_path / "nope.ion"), output_uri=str(tmp_path / "o")))
    with pytest.raises(ValueError, match="upstream"):
        run(IonToJsonOperator(task_id="j", source_uri="None", output_uri=str(tmp_path / "o")))


DAG_FILE = """
import datetime as dt

from airflow.sdk import DAG
from airflow.timetables.interval import CronDataIntervalTimetable

from airflow_provider_logproc.operators.ion import IonToJsonOperator
from airflow_provider_logproc.operators.kafka import KafkaBatchConsumeOperator

with DAG(
    {dag_id!r},
    schedule=CronDataIntervalTimetable("@daily", timezone="UTC"),
    start_date=dt.datetime(2024, 1, 1, tzinfo=dt.UTC),
    catchup=False,
    params={{"topic": {topic!r}}},
) as dag:
    consume = KafkaBatchConsumeOperator(task_id="consume", topics="{{{{ params.topic }}}}", max_bad_share=0.5)
    to_json = IonToJsonOperator(task_id="to_json", source_uri="{{{{ ti.xcom_pull(task_ids='consume') }}}}",
                                validate_records=["client_ip", "status"])
    consume >> to_json
"""


@pytest.fixture
def test_dag_bundle(tmp_path) -> Iterator[Path]:
    """A DAG bundle of its own: dag.test() serializes the DAG from a bundle's folder."""
    import json

    from airflow.configuration import conf

    folder = tmp_path / "dag-bundle"
    folder.mkdir()
    previous = conf.get("dag_processor", "dag_bundle_config_list")
    bundle = {
        "name": f"logproc-operator-tests-{tmp_path.name}",
        "classpath": "airflow.dag_processing.bundles.local.LocalDagBundle",
        "kwargs": {"path": str(folder), "refresh_interval": 0},
    }
    bundles = [*json.loads(previous), bundle]
    conf.set("dag_processor", "dag_bundle_config_list", json.dumps(bundles))
    try:
        yield folder
    finally:
        conf.set("dag_processor", "dag_bundle_config_list", previous)


def test_operators_in_a_dag_run(airflow_db, test_dag_bundle, kafka_topic, kafka_broker, session_dir):
    """consume → to_json through Airflow: default staging URIs, templated topic and source_uri, XCom."""
    import importlib.util

    from airflow.utils.state import DagRunState

    topic = kafka_topic(partitions=2)
    records = list(sample_logs.generate(DAY, 300, seed=13, bad_share=0.02))
    sample_logs.produce(records, topic, {"bootstrap.servers": kafka_broker.bootstrap_servers}, partitions=2)
    dag_id = f"test_consume_to_json_{topic.replace('-', '_')}"
    dag_file = test_dag_bundle / f"{dag_id}.py"
    dag_file.write_text(DAG_FILE.format(dag_id=dag_id, topic=topic))
    spec = importlib.util.spec_from_file_location(dag_id, dag_file)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)

    # dag.test(logical_date=D) runs the interval ending at D: [DAY, DAY+1).
    dag_run = module.dag.test(logical_date=UNTIL)

    assert dag_run.state == DagRunState.SUCCESS
    label = "20240506T000000Z--20240507T000000Z"
    staging = session_dir / "staging" / dag_id
    ion_file = staging / "consume" / label / "raw.ion"
    jsonl_file = staging / "to_json" / label / "raw.jsonl"
    assert ion_file.exists() and jsonl_file.exists()
    not_json = [r for r in records if r.is_bad and not _json_ok(r.value)]
    partial = [r for r in records if r.is_bad and _json_ok(r.value)]
    assert not_json and partial
    assert _xcom(dag_run, "consume", "return_value") == f"file://{ion_file}"
    assert _xcom(dag_run, "consume", "record_count") == len(records) - len(not_json)
    assert _xcom(dag_run, "consume", "dead_letter_count") == len(not_json)
    assert _xcom(dag_run, "to_json", "return_value") == f"file://{jsonl_file}"
    assert _xcom(dag_run, "to_json", "record_count") == len(records) - len(not_json) - len(partial)
    assert _xcom(dag_run, "to_json", "invalid_count") == len(partial)
    lines = jsonl_file.read_bytes().splitlines()
    assert len(lines) == len(records) - len(not_json) - len(partial)


def _json_ok(value: bytes) -> bool:
    try:
        orjson.loads(value)
    except orjson.JSONDecodeError:
        return False
    return True


def _xcom(dag_run: Any, task_id: str, key: str) -> Any:
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session

    with create_session() as session:
        row = session.query(XComModel).filter_by(dag_id=dag_run.dag_id, run_id=dag_run.run_id, task_id=task_id,
                                                 key=key).one()
        value = row.value
    if isinstance(value, str | bytes):
        try:
            return orjson.loads(value)
        except orjson.JSONDecodeError:
            return value
    return value
