"""Fault injection and the request log of the local Batch service.

Both live in the server process; tests in another process reach them through the admin endpoints
(``/_local/faults``, ``/_local/requests``) or the proxies on ``LocalBatchService``.

A fault rule (JSON-shaped, so the admin endpoint takes the same dicts)::

    {"status": 503}              answer with this status and Batch's error body (429, 500, 503 ...)
    {"drop": true}               close the connection without an answer, before the operation runs
    {"drop": "after"}            run the operation, then close the connection (the answer is lost)
    {"latency": 0.5}             wait this many seconds first (then go on, or apply the next rule)
    "count": 3                   for the next 3 matching requests (default 1), or
    "share": 0.2                 for about 20% of matching requests (seeded: "seed": 7), until cleared
    "method": "GET", "path": "regex on the URL path", "operation": "Jobs_GetJobTaskCounts"
    "retry_after": 2             add a Retry-After header to a status answer
"""

from __future__ import annotations

import random
import re
import threading
import time
from collections import deque
from dataclasses import asdict, dataclass, field
from typing import Any

FAULT_ERROR_CODES = {
    429: ("TooManyRequests", "The request was throttled: too many requests (injected fault)."),
    500: ("InternalServerError", "The server encountered an internal error (injected fault)."),
    503: ("ServerBusy", "The server is currently unable to receive requests. Please retry (injected fault)."),
}


@dataclass
class FaultRule:
    status: int | None = None
    drop: bool | str = False
    latency: float = 0.0
    count: int | None = None
    share: float | None = None
    seed: int | None = None
    method: str | None = None
    path: str | None = None
    operation: str | None = None
    retry_after: float | None = None
    applied: int = 0
    _random: random.Random = field(default_factory=random.Random, repr=False)
    _path_re: re.Pattern[str] | None = field(default=None, repr=False)

    @classmethod
    def from_dict(cls, spec: dict[str, Any]) -> FaultRule:
        known = {"status", "drop", "latency", "count", "share", "seed", "method", "path", "operation", "retry_after"}
        unknown = set(spec) - known
        if unknown:
            raise ValueError(f"fault rule: unknown keys {sorted(unknown)} (known: {sorted(known)})")
        rule = cls(**{key: spec[key] for key in known if key in spec})
        if rule.status is None and not rule.drop and not rule.latency:
            raise ValueError("fault rule: give one of status, drop or latency")
        if rule.status is not None and not 400 <= int(rule.status) <= 599:
            raise ValueError(f"fault rule: status must be a 4xx or 5xx code, not {rule.status}")
        if rule.drop not in (False, True, "before", "after"):
            raise ValueError(f"fault rule: drop must be true, 'before' or 'after', not {rule.drop!r}")
        if rule.share is not None and not 0.0 <= float(rule.share) <= 1.0:
            raise ValueError(f"fault rule: share must be within [0, 1], not {rule.share}")
        if rule.count is None and rule.share is None:
            rule.count = 1
        if rule.count is not None and int(rule.count) < 0:
            raise ValueError(f"fault rule: count must be >= 0, not {rule.count}")
        rule._random = random.Random(rule.seed)
        rule._path_re = re.compile(rule.path) if rule.path else None
        return rule

    def to_dict(self) -> dict[str, Any]:
        return {key: value for key, value in asdict(self).items() if not key.startswith("_") and value is not None}

    def matches(self, method: str, path: str, operation: str) -> bool:
        if self.method and self.method.upper() != method.upper():
            return False
        if self.operation and self.operation != operation:
            return False
        return not (self._path_re and not self._path_re.search(path))

    def exhausted(self) -> bool:
        return self.count is not None and self.count <= 0

    def fire(self) -> bool:
        """Whether this matching request is hit (consumes one of ``count``)."""
        if self.exhausted():
            return False
        if self.share is not None and self._random.random() >= float(self.share):
            return False
        if self.count is not None:
            self.count -= 1
        self.applied += 1
        return True


@dataclass
class FaultDecision:
    latency: float = 0.0
    status: int | None = None
    retry_after: float | None = None
    drop_before: bool = False
    drop_after: bool = False

    def describe(self) -> str | None:
        parts = []
        if self.latency:
            parts.append(f"latency:{self.latency:g}s")
        if self.status:
            parts.append(f"status:{self.status}")
        if self.drop_before:
            parts.append("drop:before")
        if self.drop_after:
            parts.append("drop:after")
        return ",".join(parts) or None


class FaultInjector:
    """The active fault rules, applied in order to each Batch request."""

    def __init__(self) -> None:
        self._rules: list[FaultRule] = []
        self._lock = threading.Lock()

    def add(self, **spec: Any) -> dict[str, Any]:
        rule = FaultRule.from_dict(spec)
        with self._lock:
            self._rules.append(rule)
        return rule.to_dict()

    def clear(self) -> None:
        with self._lock:
            self._rules.clear()

    def rules(self) -> list[dict[str, Any]]:
        with self._lock:
            return [rule.to_dict() for rule in self._rules]

    def decide(self, method: str, path: str, operation: str) -> FaultDecision:
        decision = FaultDecision()
        with self._lock:
            for rule in self._rules:
                if not rule.matches(method, path, operation) or not rule.fire():
                    continue
                decision.latency += float(rule.latency or 0.0)
                if rule.status is not None:
                    decision.status = int(rule.status)
                    decision.retry_after = rule.retry_after
                    break
                if rule.drop:
                    decision.drop_after = rule.drop == "after"
                    decision.drop_before = not decision.drop_after
                    break
            self._rules = [rule for rule in self._rules if not rule.exhausted()]
        return decision


@dataclass
class RequestRecord:
    seq: int
    time: float
    method: str
    path: str
    query: dict[str, str]
    operation: str
    status: int | None
    duration_ms: float
    client_request_id: str | None
    fault: str | None


class RequestLog:
    """What the Batch endpoints were asked (never headers or bodies: they may carry secrets)."""

    def __init__(self, capacity: int = 100_000) -> None:
        self._records: deque[RequestRecord] = deque(maxlen=capacity)
        self._seq = 0
        self._lock = threading.Lock()

    def add(self, **fields: Any) -> None:
        with self._lock:
            self._seq += 1
            self._records.append(RequestRecord(seq=self._seq, time=time.time(), **fields))

    def entries(self, since: int = 0) -> list[dict[str, Any]]:
        with self._lock:
            return [asdict(record) for record in self._records if record.seq > since]

    def clear(self) -> None:
        with self._lock:
            self._records.clear()

    def last_seq(self) -> int:
        with self._lock:
            return self._seq
