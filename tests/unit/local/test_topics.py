"""Where logproc-sample-logs produces: an explicit broker, else the kafka connection, else a clear error."""

from __future__ import annotations

import json

import pytest

from logproc_local.topics import SampleTopicError, bootstrap_servers


def test_an_explicit_broker_wins(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AIRFLOW_CONN_KAFKA_DEFAULT", json.dumps({"extra": {"bootstrap.servers": "conn:9092"}}))
    assert bootstrap_servers(explicit="cli:9093") == "cli:9093"


@pytest.mark.parametrize("value", [
    json.dumps({"conn_type": "kafka", "extra": {"bootstrap.servers": "broker-a:9092,broker-b:9092"}}),
    json.dumps({"conn_type": "kafka", "extra": json.dumps({"bootstrap.servers": "broker-a:9092,broker-b:9092"})}),
    "kafka://broker-a:9092?bootstrap.servers=broker-a%3A9092%2Cbroker-b%3A9092",
])
def test_the_kafka_connection_from_the_environment(monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    monkeypatch.setenv("AIRFLOW_CONN_LOGS_KAFKA", value)
    assert bootstrap_servers("logs_kafka") == "broker-a:9092,broker-b:9092"


def test_a_connection_without_servers_or_no_connection_says_what_to_do(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AIRFLOW_CONN_EMPTY_KAFKA", json.dumps({"conn_type": "kafka", "extra": {}}))
    with pytest.raises(SampleTopicError, match=r"AIRFLOW_CONN_EMPTY_KAFKA has no bootstrap\.servers"):
        bootstrap_servers("empty_kafka")
    monkeypatch.delenv("AIRFLOW_CONN_NOWHERE", raising=False)
    with pytest.raises(SampleTopicError, match="pass --bootstrap-servers, or define the kafka connection 'nowhere'"):
        bootstrap_servers("nowhere")
