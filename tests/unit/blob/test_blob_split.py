"""Streaming JSON-lines splitting: parts always end on line ends and add up to the input."""

from __future__ import annotations

import gzip
import hashlib
import io
import itertools
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from typing import IO

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from airflow_provider_logproc.blob.split import (
    PartEncoder,
    PartSplitter,
    Source,
    digest_parts,
    iter_line_blocks,
    iter_source_blocks,
)


def lines_data(count: int, width: int = 20) -> bytes:
    return b"".join(b'{"n":%d,"pad":"%s"}\n' % (i, b"x" * (i % width)) for i in range(count))


def split_to_parts(data: bytes, read_size: int = 64, **kwargs) -> tuple[list[bytes], list[int], PartSplitter]:
    splitter = PartSplitter(total_bytes=len(data), **kwargs)
    parts: dict[int, bytearray] = {}
    lines: dict[int, int] = {}
    for index, piece, count in splitter.split(iter_line_blocks(io.BytesIO(data), read_size)):
        parts.setdefault(index, bytearray()).extend(piece)
        lines[index] = lines.get(index, 0) + count
    assert sorted(parts) == list(range(len(parts))), "part numbers are contiguous from 0"
    return [bytes(parts[i]) for i in sorted(parts)], [lines[i] for i in sorted(parts)], splitter


def test_line_blocks_end_on_line_ends_and_keep_long_lines_whole():
    data = b"short\n" + b"L" * 500 + b"\nnext\nno-newline-at-end"
    blocks = list(iter_line_blocks(io.BytesIO(data), read_size=64))
    for buffer, end in blocks:
        assert buffer[end - 1 : end] == b"\n"
    joined = b"".join(bytes(buffer[:end]) for buffer, end in blocks)
    assert joined == data + b"\n", "a missing final newline is added, nothing else changes"
    assert any(b"L" * 500 + b"\n" in bytes(buffer[:end]) for buffer, end in blocks), "long line kept whole"


def test_single_blob_passes_any_bytes_through_and_counts_a_last_unterminated_line():
    data = bytes(range(256)) * 50 + b"no newline at the end"  # binary, e.g. Ion
    sources = [Source(uri="mem://bin", open=lambda: nullcontext(io.BytesIO(data)), size=len(data))]
    pieces = list(PartSplitter().split(iter_source_blocks(sources, read_size=100, whole_lines=False)))
    assert b"".join(bytes(piece) for _, piece, _ in pieces) == data, "nothing added, nothing cut"
    assert all(len(buffer) <= 100 for _, buffer, _ in pieces), "no carry: memory does not grow without newlines"
    assert sum(lines for _, _, lines in pieces) == data.count(b"\n") + 1
    assert {index for index, _, _ in pieces} == {0}


def test_line_blocks_of_empty_input():
    assert list(iter_line_blocks(io.BytesIO(b""), 16)) == []


def in_memory(data: bytes) -> Callable[[], AbstractContextManager[IO[bytes]]]:
    """Opens ``data`` afresh each time (mypy cannot infer a lambda with a default argument)."""
    return lambda: nullcontext(io.BytesIO(data))


def test_sources_are_concatenated_each_ending_on_a_line_end():
    sources = [Source(uri=f"mem://{i}", open=in_memory(d), size=len(d))
               for i, d in enumerate([b"a\nb", b"", b"c\n"])]
    joined = b"".join(bytes(buffer[:end]) for buffer, end in iter_source_blocks(sources, read_size=2))
    assert joined == b"a\nb\nc\n"


def test_n_parts_balanced_and_on_line_ends():
    data = lines_data(10_000)
    parts, lines, _ = split_to_parts(data, read_size=4096, parts=8)
    assert len(parts) == 8
    assert b"".join(parts) == data
    assert all(part.endswith(b"\n") for part in parts)
    assert sum(lines) == 10_000 and lines == [part.count(b"\n") for part in parts]
    sizes = [len(part) for part in parts]
    assert max(sizes) - min(sizes) < 100, sizes  # within about one line of equal


def test_n_parts_with_fewer_lines_than_parts_gives_no_empty_part():
    data = b"one\ntwo\nthree\n"
    parts, lines, _ = split_to_parts(data, parts=10)
    assert parts == [b"one\n", b"two\n", b"three\n"]
    assert lines == [1, 1, 1]


def test_n_parts_a_huge_line_skips_boundaries_instead_of_making_empty_parts():
    data = b"a\n" + b"H" * 1000 + b"\n" + b"b\n" * 10
    parts, _, _ = split_to_parts(data, parts=4)
    assert b"".join(parts) == data
    assert all(parts) and all(part.endswith(b"\n") for part in parts)
    assert len(parts) <= 4


def test_max_part_bytes_parts_fit_and_end_on_line_ends():
    data = lines_data(5_000)
    parts, _, splitter = split_to_parts(data, read_size=1000, max_part_bytes=3000)
    assert b"".join(parts) == data
    assert all(len(part) <= 3000 and part.endswith(b"\n") for part in parts)
    assert splitter.oversize_parts == []
    # Greedy: a part only ends early when the next line would not fit.
    for part, following in itertools.pairwise(parts):
        next_line = following.split(b"\n", 1)[0] + b"\n"
        assert len(part) + len(next_line) > 3000


def test_max_part_bytes_a_longer_line_gets_a_part_of_its_own():
    data = b"a\n" + b"L" * 50 + b"\n" + b"b\n"
    parts, _, splitter = split_to_parts(data, read_size=8, max_part_bytes=10)
    assert parts == [b"a\n", b"L" * 50 + b"\n", b"b\n"]
    assert splitter.oversize_parts == [1]


def test_splitter_argument_errors():
    with pytest.raises(ValueError, match="not both"):
        PartSplitter(parts=2, max_part_bytes=10, total_bytes=5)
    with pytest.raises(ValueError, match="at least 1"):
        PartSplitter(parts=0, total_bytes=5)
    with pytest.raises(ValueError, match="total input size"):
        PartSplitter(parts=3, total_bytes=None)


@settings(max_examples=150, deadline=None)
@given(
    records=st.lists(st.binary(min_size=0, max_size=40).map(lambda b: b.replace(b"\n", b"")), max_size=60),
    read_size=st.integers(min_value=1, max_value=64),
    parts=st.integers(min_value=1, max_value=7),
    max_part_bytes=st.integers(min_value=1, max_value=120),
    by_size=st.booleans(),
)
def test_any_split_preserves_every_line(records, read_size, parts, max_part_bytes, by_size):
    data = b"".join(record + b"\n" for record in records)
    kwargs = {"max_part_bytes": max_part_bytes} if by_size else {"parts": parts}
    result, lines, splitter = split_to_parts(data, read_size=read_size, **kwargs)
    assert b"".join(result) == data
    assert all(part and part.endswith(b"\n") for part in result)
    assert sum(lines) == len(records)
    if by_size:
        oversize = set(splitter.oversize_parts)
        for index, part in enumerate(result):
            assert len(part) <= max_part_bytes or (index in oversize and part.count(b"\n") == 1)
    else:
        assert len(result) <= parts


def test_encoder_md5_size_records_and_deterministic_gzip():
    data = lines_data(2_000)
    outputs = []
    for _ in range(2):
        sink = bytearray()
        encoder = PartEncoder(sink.extend, gzip=True)
        for start in range(0, len(data), 777):
            chunk = data[start : start + 777]
            encoder.write(memoryview(chunk), chunk.count(b"\n"))
        digest = encoder.finish()
        assert digest.size == len(sink) and digest.md5 == hashlib.md5(sink).digest()
        assert digest.raw_size == len(data) and digest.records == 2_000
        assert gzip.decompress(bytes(sink)) == data
        outputs.append(bytes(sink))
    assert outputs[0] == outputs[1], "same input, same gzip bytes (no timestamp in the header)"


def test_digest_parts_of_empty_input_is_one_empty_part():
    (digest,) = digest_parts(iter([]), gzip=False)
    assert digest.size == 0 and digest.records == 0 and digest.md5 == hashlib.md5(b"").digest()
