"""Provider metadata read by Airflow's ProvidersManager (entry point ``apache_airflow_provider``).

``package-name`` must be present: without it every ``airflow`` command crashes.
"""

from __future__ import annotations

from typing import Any

from airflow_provider_logproc import __version__

PACKAGE_NAME = "airflow-provider-logproc"


def get_provider_info() -> dict[str, Any]:
    return {
        "package-name": PACKAGE_NAME,
        "name": "Log processing (Kafka → Ion → Azure Blob → Azure Batch)",
        "description": (
            "Operators, triggers and sensors that turn a Kafka log stream into daily analyses: exact "
            "time-window consumption to Amazon Ion, Ion to JSON lines, idempotent Azure Blob uploads, "
            "and Azure Batch fan-out jobs on an existing pool with O(1) deferrable polling."
        ),
        "versions": [__version__],
        "integrations": [
            {
                "integration-name": "Log processing",
                "external-doc-url": "https://pypi.org/project/airflow-provider-logproc/",
                "tags": ["software"],
            }
        ],
        "operators": [
            {
                "integration-name": "Log processing",
                "python-modules": [
                    "airflow_provider_logproc.operators.kafka",
                    "airflow_provider_logproc.operators.ion",
                    "airflow_provider_logproc.operators.blob",
                    "airflow_provider_logproc.operators.batch",
                    "airflow_provider_logproc.operators.report",
                ],
            }
        ],
        "sensors": [
            {
                "integration-name": "Log processing",
                "python-modules": [
                    "airflow_provider_logproc.sensors.kafka",
                    "airflow_provider_logproc.sensors.batch",
                ],
            }
        ],
        "hooks": [
            {
                "integration-name": "Log processing",
                "python-modules": ["airflow_provider_logproc.hooks.batch"],
            }
        ],
        "triggers": [
            {
                "integration-name": "Log processing",
                "python-modules": [
                    "airflow_provider_logproc.triggers.kafka",
                    "airflow_provider_logproc.triggers.batch",
                ],
            }
        ],
        "notifications": ["airflow_provider_logproc.notifications.file.LogprocFileNotifier"],
        "extra-links": [
            "airflow_provider_logproc.operators.batch.AzureBatchJobLink",
            "airflow_provider_logproc.operators.report.LogReportLink",
        ],
    }
