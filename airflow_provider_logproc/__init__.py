"""Apache Airflow provider: daily analyses of Kafka log streams on Azure."""

from __future__ import annotations

__version__ = "0.1.0"
