"""The one thing pyproject.toml cannot say: two optional C loops, the analyzer's per line and the
Kafka window read's per record.

``optional=True``: where no C compiler is found the package still installs, and each runs its
Python loop (same results, slower). Everything else is configured in pyproject.toml.
"""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension(
            "airflow_provider_logproc.analysis._native_ingest",
            sources=["airflow_provider_logproc/analysis/_native_ingest.c"],
            optional=True,
        ),
        Extension(
            "airflow_provider_logproc.consume._native_envelope",
            sources=["airflow_provider_logproc/consume/_native_envelope.c"],
            optional=True,
        ),
    ],
)
