"""The package's optional C extensions (setup.py): loaded where they were built, else None.

Each has a Python twin that gives the same results (and that the tests compare it with); callers
use the extension when this returns it. ``LOGPROC_PURE_PYTHON=1`` makes it return None, to rule the
C code out when chasing a problem.
"""

from __future__ import annotations

import importlib
import os
import types


def optional_extension(name: str) -> types.ModuleType | None:
    """Load the extension module ``name``, or None where it was not built or LOGPROC_PURE_PYTHON is set."""
    if os.environ.get("LOGPROC_PURE_PYTHON"):
        return None
    try:
        return importlib.import_module(name)
    except ImportError:  # installed without a C compiler
        return None
