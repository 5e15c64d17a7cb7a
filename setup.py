"""The one thing pyproject.toml cannot say: the analyzer's optional C loop.

``optional=True``: where no C compiler is found the package still installs, and the analyzer runs
its Python loop (same results, slower). Everything else is configured in pyproject.toml.
"""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension(
            "airflow_provider_logproc.analysis._native_ingest",
            sources=["airflow_provider_logproc/analysis/_native_ingest.c"],
            optional=True,
        )
    ],
)
