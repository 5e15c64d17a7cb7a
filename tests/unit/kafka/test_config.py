"""The one reader of a ``kafka`` connection (airflow_provider_logproc.kafka.config)."""

from __future__ import annotations

import json

import pytest
from airflow.providers.apache.kafka.hooks.base import KafkaBaseHook

from airflow_provider_logproc.kafka.config import connection_config


def test_the_private_config_builder_it_relies_on_still_exists():
    # connection_config calls KafkaBaseHook._build_config (no public equivalent in apache-kafka 2.1.0):
    # a provider upgrade that renames it must fail here, not in a DAG run.
    assert callable(getattr(KafkaBaseHook, "_build_config", None))


def test_reads_the_connection_extra_as_librdkafka_config(monkeypatch):
    extra = {"bootstrap.servers": "broker:9092", "security.protocol": "PLAINTEXT", "group.id": "g"}
    monkeypatch.setenv("AIRFLOW_CONN_KAFKA_CONFIG_TEST", json.dumps({"conn_type": "kafka", "extra": extra}))
    config = connection_config("kafka_config_test")
    assert config == extra
    config["group.id"] = "changed"  # callers override settings on their own copy
    assert connection_config("kafka_config_test")["group.id"] == "g"


def test_a_connection_without_bootstrap_servers_is_refused(monkeypatch):
    monkeypatch.setenv("AIRFLOW_CONN_KAFKA_CONFIG_EMPTY", json.dumps({"conn_type": "kafka", "extra": {"a": 1}}))
    with pytest.raises(ValueError, match=r"bootstrap\.servers"):
        connection_config("kafka_config_empty")
