"""The version shim: which Airflow is running, and XComs every supported version accepts."""

from __future__ import annotations

from typing import Any

from airflow import __version__ as airflow_version
from packaging.version import Version

from airflow_provider_logproc.version_compat import (
    AIRFLOW_V_3_0_PLUS,
    AIRFLOW_V_3_1_PLUS,
    get_base_airflow_version_tuple,
    push_xcoms,
)


class RecordingTaskInstance:
    def __init__(self) -> None:
        self.pushed: dict[str, Any] = {}

    def xcom_push(self, key: str, value: Any) -> None:
        self.pushed[key] = value


def test_flags_follow_the_installed_airflow() -> None:
    version = Version(airflow_version)
    assert get_base_airflow_version_tuple() == (version.major, version.minor, version.micro)
    assert (version.major >= 3) == AIRFLOW_V_3_0_PLUS
    assert (version.release[:2] >= (3, 1)) == AIRFLOW_V_3_1_PLUS


def test_push_xcoms_leaves_out_none_which_airflow_3_0_rejects() -> None:
    ti = RecordingTaskInstance()
    push_xcoms(ti, record_count=0, dead_letter_uri=None, partition_offsets=[], fingerprint="ab")
    # Falsy values are values: only None (pulled as None anyway) is left out.
    assert ti.pushed == {"record_count": 0, "partition_offsets": [], "fingerprint": "ab"}
