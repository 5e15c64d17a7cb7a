"""Ion values as JSON (consume/ion_values.py); the conversions themselves are tested in test_ion_json.py."""

from __future__ import annotations

import datetime as dt

import pytest

from airflow_provider_logproc.consume.ion_values import resolve_timezone


def test_unknown_time_zone():
    with pytest.raises(ValueError, match="unknown time zone 'Mars/Base'"):
        resolve_timezone("Mars/Base")
    assert resolve_timezone("utc") is dt.UTC
