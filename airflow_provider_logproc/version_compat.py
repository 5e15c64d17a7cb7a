"""The running Airflow's version, in one place (the official providers' ``version_compat`` pattern).

Everything version-specific that ``airflow.providers.common.compat`` does not already bridge is decided
from these flags, never from ``try: import ... except ImportError`` scattered through the modules.
"""

from __future__ import annotations

from typing import Any

from packaging.version import Version


def get_base_airflow_version_tuple() -> tuple[int, int, int]:
    from airflow import __version__

    version = Version(__version__)
    return version.major, version.minor, version.micro


AIRFLOW_V_3_0_PLUS = get_base_airflow_version_tuple() >= (3, 0, 0)
AIRFLOW_V_3_1_PLUS = get_base_airflow_version_tuple() >= (3, 1, 0)



def push_xcoms(ti: Any, **values: Any) -> None:
    """Push each of ``values`` as an XCom under its name, leaving out those that are None.

    Airflow 3.0's execution API rejects an XCom whose value is null (422 "Field required"), failing
    the task after its work is done. A key that was never pushed pulls as None all the same, on every
    version, so leaving it out changes nothing for the readers.
    """
    for key, value in values.items():
        if value is not None:
            ti.xcom_push(key=key, value=value)


__all__ = ["AIRFLOW_V_3_0_PLUS", "AIRFLOW_V_3_1_PLUS", "get_base_airflow_version_tuple", "push_xcoms"]
