"""Dead letters: records that cannot be deserialized, kept aside as JSON lines until the run publishes them."""

from __future__ import annotations

import base64
import datetime as dt
import shutil
import tempfile
from typing import IO

import orjson


class DeadLetters:
    """Records kept aside, as JSON lines, in a local spool until the run publishes them."""

    def __init__(self, path: str | None = None) -> None:
        self.count = 0
        self.examples: list[str] = []
        self._spool: IO[bytes] = (
            open(path, "w+b") if path else tempfile.SpooledTemporaryFile(max_size=8 << 20))  # noqa: SIM115

    def absorb(self, path: str, count: int, examples: list[str]) -> None:
        """Append another spool's dead letters (a partition read in a worker process)."""
        with open(path, "rb") as other:
            shutil.copyfileobj(other, self._spool, 1 << 20)
        self.count += count
        self.examples.extend(examples[: max(0, 5 - len(self.examples))])

    def flush(self) -> None:
        self._spool.flush()

    def add(self, topic: str, partition: int, offset: int, timestamp_ms: int, reason: str,
            key: bytes | None, value: bytes | None) -> None:
        self.count += 1
        if len(self.examples) < 5:
            self.examples.append(f"{topic}[{partition}]@{offset}: {reason}")
        line = {
            "topic": topic,
            "partition": partition,
            "offset": offset,
            "timestamp": _iso_ms(timestamp_ms),
            "timestamp_ms": timestamp_ms,
            "reason": reason,
            "key_base64": None if key is None else base64.b64encode(key).decode(),
            "value_base64": None if value is None else base64.b64encode(value).decode(),
        }
        self._spool.write(orjson.dumps(line, option=orjson.OPT_APPEND_NEWLINE))

    def copy_to(self, target: IO[bytes]) -> None:
        self._spool.seek(0)
        shutil.copyfileobj(self._spool, target, 1 << 20)

    def close(self) -> None:
        self._spool.close()


def _iso_ms(timestamp_ms: int) -> str | None:
    if timestamp_ms < 0:
        return None
    return dt.datetime.fromtimestamp(timestamp_ms / 1000, dt.UTC).isoformat(timespec="milliseconds")
