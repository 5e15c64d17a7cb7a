"""Every record of the window accounted for: read, kept aside at consume or conversion, analysed.

The consume step keeps undecodable records aside (dead letters), the conversion step records that fail
validation; both write JSON lines with a ``reason``. The report step counts them by reason, puts the
files beside the results (a reader of the report cannot reach a worker's staging), and checks that the
totals add up. It also compares the window with the previous one when that summary exists.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable, Mapping
from typing import Any

import orjson

TOP_REASONS = 10
# "value: not UTF-8 (invalid start byte at byte 3)" and "... at byte 7" are one reason.
_DETAIL = re.compile(r"\s*\(.*\)\s*$|\s+at (byte|offset|line|column) \d+.*$")


def reason_kind(reason: str) -> str:
    """Strip a reason of its per-record detail (positions, quoted values in parentheses)."""
    return _DETAIL.sub("", str(reason)).strip() or "unknown"


def count_reasons(lines: Iterable[bytes], *, top: int = TOP_REASONS) -> dict[str, Any]:
    """``{"count", "by_reason"}`` of a kept-aside JSON-lines file; past ``top`` reasons, "other reasons"."""
    reasons: Counter[str] = Counter()
    for line in lines:
        if not line.strip():
            continue
        try:
            reasons[reason_kind(orjson.loads(line).get("reason", "unknown"))] += 1
        except (orjson.JSONDecodeError, AttributeError):
            reasons["unreadable kept-aside line"] += 1
    by_reason = dict(reasons.most_common(top))
    rest = sum(reasons.values()) - sum(by_reason.values())
    if rest:
        by_reason["other reasons"] = rest
    return {"count": sum(reasons.values()), "by_reason": by_reason}


def _int(value: Any) -> int:
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.isdigit():
        return int(value)
    return 0


def accounting(pipeline: Mapping[str, Any], analysed_lines: int, dead_letters: Mapping[str, Any],
               invalid: Mapping[str, Any]) -> dict[str, Any]:
    """Account for the window's records from read to analysed, and tell whether the counts agree.

    window = read (consume) + dead-lettered; read = handed to the analysis + invalid at conversion;
    and what the analysis counted as lines is what it was handed.
    """
    read = _int(pipeline.get("consumed_records"))
    dead_count = _int(pipeline.get("undecodable_records"))
    invalid_count = _int(pipeline.get("invalid_records"))
    handed = _int(pipeline.get("records_analysed"))
    # What the kept-aside files hold must be what the steps said they kept aside.
    files_agree = all(part.get("count", expected) == expected
                      for part, expected in ((dead_letters, dead_count), (invalid, invalid_count)))
    return {
        "window_records": read + dead_count,
        "read": read,
        "dead_lettered": {**dead_letters, "count": dead_count},
        "invalid_at_conversion": {**invalid, "count": invalid_count},
        "handed_to_analysis": handed,
        "analysed_lines": analysed_lines,
        "adds_up": read == handed + invalid_count and handed == analysed_lines and files_agree,
    }


def compare_with_previous(summary: Mapping[str, Any], previous: Mapping[str, Any] | None) -> dict[str, Any] | None:
    """Compare requests, 5xx rate and distinct IPs of this window with the previous window's."""
    if previous is None:
        return None

    def figures(of: Mapping[str, Any]) -> dict[str, Any]:
        return {"requests": of["totals"]["valid"], "server_error_rate": of["errors"]["server_error_rate"],
                "unique_ips": of["unique_ips"]}

    now, before = figures(summary), figures(previous)
    return {"period": (previous.get("period") or {}).get("first_minute"), "previous": before, "current": now,
            "change": {name: (now[name] - before[name]) for name in now}}
