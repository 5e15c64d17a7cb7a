"""The one thing pyproject.toml cannot say: the analyzer's per-line loop as an optional C extension.

``optional=True``: where no C compiler is found the package still installs and runs the same loop in
Python (same results, about 3x slower).
"""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension(
            "logproc_analyzer._native_ingest",
            sources=["logproc_analyzer/_native_ingest.c"],
            optional=True,
        ),
    ],
)
