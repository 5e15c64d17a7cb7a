"""What pyproject.toml cannot say: the Kafka window read's per-record loop as an optional C extension,
and the example DAGs, kept in ``dags/`` and shipped as ``airflow_provider_logproc.example_dags``.

``optional=True``: where no C compiler is found the package still installs and runs the Python loop
(same results, slower). Everything else is configured in pyproject.toml.
"""

import os

from setuptools import Extension, find_packages, setup

setup(
    packages=[*find_packages(include=["airflow_provider_logproc", "airflow_provider_logproc.*"]),
              "airflow_provider_logproc.example_dags"],
    # Users get the DAG files from the wheel (README: "Install into your Airflow").
    package_dir={"airflow_provider_logproc.example_dags": "dags"},
    # LOGPROC_BUILD_PURE=1 builds the py3-none-any fallback wheel: no extension, installs anywhere.
    ext_modules=[] if os.environ.get("LOGPROC_BUILD_PURE") else [
        Extension(
            "airflow_provider_logproc.consume._native_envelope",
            sources=["airflow_provider_logproc/consume/_native_envelope.c"],
            optional=True,
        ),
    ],
)
