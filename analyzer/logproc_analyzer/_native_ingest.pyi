# Types of the C extension built from _native_ingest.c (see that file and Aggregate.ingest_lines).
from collections.abc import Callable
from typing import Any

class Counts:
    def __init__(self, *, text_limit: int = ..., packed_ips: bool = ...) -> None: ...
    def flush(self, aggregate: Any, /) -> None: ...
    def take_ips(self) -> tuple[bytes, bytes]: ...

def ingest(
    counts: Counts,
    aggregate: Any,
    lines: list[bytes] | bytes,
    start: int,
    end: int,
    first_line: int,
    keys: tuple[bytes, ...],
    decode: Callable[[bytes], Any],
    minute_of: Callable[[Any], int],
    slow: Callable[[int, bytes], Any],
    ms_threshold: int,
    /,
) -> tuple[int, int]: ...

def canonical_ip(text: str, /) -> bool: ...
def address_texts(addresses: bytes, size: int, /) -> list[str | None]: ...
