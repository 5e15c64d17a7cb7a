"""optional_extension: the built module, or None (not built, or LOGPROC_PURE_PYTHON set)."""

from __future__ import annotations

import pytest

from logproc_analyzer.native import optional_extension


def test_a_module_that_is_not_there_is_none() -> None:
    assert optional_extension("airflow_provider_logproc.no_such_extension") is None


def test_pure_python_switches_extensions_off(monkeypatch: pytest.MonkeyPatch) -> None:
    assert optional_extension("json") is not None
    monkeypatch.setenv("LOGPROC_PURE_PYTHON", "1")
    assert optional_extension("json") is None
