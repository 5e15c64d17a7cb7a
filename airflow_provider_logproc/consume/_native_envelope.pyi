# Types of the C extension built from _native_envelope.c (see that file and loop._read_partition).
from collections.abc import Callable
from typing import Any

def surely_json(data: bytes, /) -> bool: ...
def encode_window_batch(
    messages: list[Any],
    head: bytes,
    stop_offset: int,
    since_ms: int,
    until_ms: int,
    stop_ms: int,
    key_cache: dict[bytes, bytes],
    key_text: Callable[[bytes], bytes],
    value_text: Callable[[bytes], bytes],
    minute_prefix: Callable[[int], bytes],
    headers_text: Callable[[Any], bytes],
    undecodable: type[BaseException],
    /,
) -> tuple[bytes, bool, int, int, int, int, int, list[Any], list[tuple[Any, Any]], int]: ...
