"""The one thing pyproject.toml cannot say: the analyzer's per-line loop as an optional C extension.

``optional=True``: where no C compiler is found the package still installs and runs the same loop in
Python (same results, about 3x slower).
"""

import os

from setuptools import Extension, setup

setup(
    # LOGPROC_BUILD_PURE=1 builds the py3-none-any fallback wheel: no extension, installs anywhere.
    ext_modules=[] if os.environ.get("LOGPROC_BUILD_PURE") else [
        Extension(
            "logproc_analyzer._native_ingest",
            sources=["logproc_analyzer/_native_ingest.c"],
            optional=True,
        ),
    ],
)
