"""The librdkafka config of a ``kafka`` connection: the one place the provider reads a connection.

Every client the provider makes (the consume task's consumer, its worker processes, the window
sensor's probe, the retention check) starts from :func:`connection_config` and then overrides only
the consumer settings its own use relies on.
"""

from __future__ import annotations

from typing import Any


def connection_config(kafka_config_id: str) -> dict[str, Any]:
    """Return the connection's librdkafka config exactly as the apache-kafka provider's hooks build it.

    ``KafkaBaseHook._build_config`` resolves the allow-listed dotted-path callbacks and adds the
    managed OAuth token callbacks (Google Managed Kafka, Amazon MSK IAM), so every client here
    connects like the official hooks do. It is private: the provider (apache-kafka 2.1.0) has no
    public method that returns the config — ``get_conn``/``get_consumer`` return a built client
    (``get_consumer`` also subscribes), and the config is needed as a dict to override consumer
    settings and to hand to worker processes. Calling it here, once, keeps the dependency on that
    private name in one line; ``tests/unit/kafka/test_config.py`` fails if it disappears.
    """
    # Imported here: modules that import this one are imported when a DAG file is parsed.
    from airflow.providers.apache.kafka.hooks.base import KafkaBaseHook

    return dict(KafkaBaseHook(kafka_config_id=kafka_config_id)._build_config())
