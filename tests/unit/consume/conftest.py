"""Fixtures of the consume/ tests."""

from __future__ import annotations

from typing import Any

import pytest

from airflow_provider_logproc.consume import ion_json


@pytest.fixture
def ion_reader_calls(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """Record the source of every call of the Ion reader during a conversion (the shortcut makes none)."""
    calls: list[Any] = []
    reader = ion_json.iter_ion

    def counted_reader(source: Any) -> Any:
        calls.append(source)
        return reader(source)

    monkeypatch.setattr(ion_json, "iter_ion", counted_reader)
    return calls
