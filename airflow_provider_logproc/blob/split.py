"""Streaming JSON-lines splitting: line-aligned blocks → parts → (optionally gzip) encoded bytes.

Nothing here holds a whole input in memory: sources are read in ``read_size`` chunks, each chunk is
cut at its last line end (the tail waits for the next chunk), and parts are assigned block by
block. The only thing that can grow is a single line longer than ``read_size`` — it must be kept
whole to stay on a line boundary.
"""

from __future__ import annotations

import hashlib
import io
import zlib
from collections.abc import Callable, Iterable, Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import IO, Any, Protocol

DEFAULT_READ_SIZE = 1024 * 1024
GZIP_LEVEL = 6
# zlib's gzip wrapper (wbits 16+15) writes mtime 0 and no file name: the same input always gives the
# same bytes, so reruns upload identical parts and skip_if_same can compare MD5s.
_GZIP_WBITS = 31

LineBlock = tuple[bytearray, int]
"""``(buffer, end)``: ``buffer[:end]`` holds whole lines, each ending with ``\\n``."""


class ReadableStream(Protocol):
    def read(self, size: int = ..., /) -> bytes: ...


@dataclass(frozen=True)
class Source:
    """One input: where it is (for messages and the manifest), its size if known, how to open it."""

    uri: str
    open: Callable[[], AbstractContextManager[IO[bytes]] | AbstractContextManager[Any]]
    size: int | None = None


def _read_into(stream: Any, target: memoryview) -> int:
    """Fill ``target`` from ``stream`` without an extra copy when the stream supports readinto."""
    readinto = getattr(stream, "readinto", None)
    if readinto is not None:
        try:
            return int(readinto(target) or 0)
        except io.UnsupportedOperation:
            pass
    data = stream.read(len(target))
    target[: len(data)] = data
    return len(data)


def iter_line_blocks(stream: Any, read_size: int = DEFAULT_READ_SIZE) -> Iterator[LineBlock]:
    """Yield line-aligned blocks of ``stream``; a last line without ``\\n`` gets one.

    Each yielded buffer is fresh and never written again, so consumers may keep memoryviews of it.
    """
    carry = b""
    while True:
        buffer = bytearray(len(carry) + read_size)
        buffer[: len(carry)] = carry
        count = _read_into(stream, memoryview(buffer)[len(carry) :])
        if count == 0:
            break
        filled = len(carry) + count
        # The carried tail has no line end (it was cut after the last one): search only new bytes.
        cut = buffer.rfind(b"\n", len(carry), filled)
        if cut < 0:
            carry = bytes(buffer[:filled])  # a line longer than read_size so far: keep it whole
            continue
        yield buffer, cut + 1
        carry = bytes(buffer[cut + 1 : filled])
    if carry:
        yield bytearray(carry + b"\n"), len(carry) + 1


def iter_raw_blocks(stream: Any, read_size: int = DEFAULT_READ_SIZE) -> Iterator[LineBlock]:
    """Yield ``stream``'s bytes unchanged in ``read_size`` blocks (any content, not cut at lines)."""
    while True:
        buffer = bytearray(read_size)
        count = _read_into(stream, memoryview(buffer))
        if count == 0:
            return
        yield buffer, count


def iter_source_blocks(sources: Iterable[Source], read_size: int = DEFAULT_READ_SIZE, *,
                       whole_lines: bool = True) -> Iterator[LineBlock]:
    """All sources' blocks, one source after another.

    ``whole_lines=True``: line-aligned blocks, each source ending on a line end (for splitting JSON
    lines into parts). ``False``: the bytes exactly as they are (one blob of any content).
    """
    for source in sources:
        with source.open() as stream:
            yield from (iter_line_blocks if whole_lines else iter_raw_blocks)(stream, read_size)


Piece = tuple[int, memoryview, int]
"""``(part index, bytes, number of lines in them)``; pieces of one part are contiguous."""


class PartSplitter:
    """Assign line-aligned blocks to parts 0, 1, 2, ... without ever cutting a line.

    - ``parts=N``: N parts of about equal bytes. Part k ends at the first line end at or after byte
      ``total_bytes * (k + 1) / N`` of the whole input; every part holds at least one line, so fewer
      than N parts come out when the input has fewer lines (never an empty part).
    - ``max_part_bytes=M``: parts of at most M bytes (before gzip), cut at the last line end that
      fits. A single line longer than M goes alone into a part of its own (listed in
      ``oversize_parts``): cutting it would break the record.
    - neither: everything is part 0, blocks passed through as they are (any content).
    """

    def __init__(self, *, parts: int | None = None, max_part_bytes: int | None = None,
                 total_bytes: int | None = None):
        if parts is not None and max_part_bytes is not None:
            raise ValueError("give either parts or max_part_bytes, not both")
        if parts is not None:
            if parts < 1:
                raise ValueError(f"parts must be at least 1, got {parts}")
            if total_bytes is None and parts > 1:
                raise ValueError("parts=N needs the total input size (a source's size is unknown)")
        if max_part_bytes is not None and max_part_bytes < 1:
            raise ValueError(f"max_part_bytes must be at least 1, got {max_part_bytes}")
        self.parts = parts
        self.max_part_bytes = max_part_bytes
        self.total_bytes = total_bytes or 0
        self.oversize_parts: list[int] = []

    def split(self, blocks: Iterable[LineBlock]) -> Iterator[Piece]:
        if self.max_part_bytes is not None:
            return self._split_by_size(blocks, self.max_part_bytes)
        if self.parts is not None and self.parts > 1:
            return self._split_in_n(blocks, self.parts)
        return self._single(blocks)

    @staticmethod
    def _single(blocks: Iterable[LineBlock]) -> Iterator[Piece]:
        last_byte = b"\n"
        for buffer, end in blocks:
            if end:
                yield 0, memoryview(buffer)[:end], buffer.count(b"\n", 0, end)
                last_byte = bytes(buffer[end - 1 : end])
        if last_byte != b"\n":  # a last line without a line end is a record too
            yield 0, memoryview(b""), 1

    def _target(self, index: int, parts: int) -> int:
        return -(-self.total_bytes * (index + 1) // parts)  # ceil without floats

    def _split_in_n(self, blocks: Iterable[LineBlock], parts: int) -> Iterator[Piece]:
        offset = 0  # bytes of input assigned so far
        part = 0  # index of the part being written (names are contiguous: part-00000, part-00001, ...)
        target_index = 0  # which of the N equal-size boundaries the current part ends at
        for buffer, end in blocks:
            start = 0
            while start < end:
                last = target_index >= parts - 1
                boundary = self._target(target_index, parts)
                if last or offset + (end - start) < boundary:
                    yield part, memoryview(buffer)[start:end], buffer.count(b"\n", start, end)
                    offset += end - start
                    break
                # The boundary falls inside this block: close the part at the first line end at or
                # after it (the block ends with a line end, so there is one).
                cut = buffer.find(b"\n", start + max(0, boundary - 1 - offset), end)
                yield part, memoryview(buffer)[start : cut + 1], buffer.count(b"\n", start, cut + 1)
                offset += cut + 1 - start
                start = cut + 1
                part += 1
                target_index += 1
                # A long line may carry us past later boundaries too: skip them, no empty parts.
                while target_index < parts - 1 and self._target(target_index, parts) <= offset:
                    target_index += 1

    def _split_by_size(self, blocks: Iterable[LineBlock], limit: int) -> Iterator[Piece]:
        part = 0
        part_bytes = 0
        for buffer, end in blocks:
            start = 0
            while start < end:
                room = limit - part_bytes
                if end - start <= room:
                    yield part, memoryview(buffer)[start:end], buffer.count(b"\n", start, end)
                    part_bytes += end - start
                    break
                cut = buffer.rfind(b"\n", start, start + room) if room > 0 else -1
                if cut < 0 and part_bytes == 0:
                    # One line longer than the limit: alone in its own part, never cut.
                    cut = buffer.find(b"\n", start, end)
                    self.oversize_parts.append(part)
                if cut >= 0:
                    yield part, memoryview(buffer)[start : cut + 1], buffer.count(b"\n", start, cut + 1)
                    start = cut + 1
                part += 1
                part_bytes = 0


@dataclass(frozen=True)
class PartDigest:
    """What a part is once encoded: what is stored (size, MD5) and what it holds (lines, raw bytes)."""

    size: int
    md5: bytes
    raw_size: int
    records: int


class PartEncoder:
    """Optional gzip, then MD5 and size of the stored bytes, while passing them on to ``sink``."""

    def __init__(self, sink: Callable[[bytes | memoryview], None], *, gzip: bool = False,
                 gzip_level: int = GZIP_LEVEL):
        self._sink = sink
        self._md5 = hashlib.md5(usedforsecurity=False)
        self._compressor = zlib.compressobj(gzip_level, zlib.DEFLATED, _GZIP_WBITS) if gzip else None
        self.size = 0
        self.raw_size = 0
        self.records = 0

    def write(self, data: memoryview | bytes, lines: int) -> None:
        self.raw_size += len(data)
        self.records += lines
        self._emit(self._compressor.compress(data) if self._compressor is not None else data)

    def _emit(self, data: bytes | memoryview) -> None:
        if len(data):
            self._md5.update(data)
            self.size += len(data)
            self._sink(data)

    def finish(self) -> PartDigest:
        if self._compressor is not None:
            self._emit(self._compressor.flush())
            self._compressor = None
        return PartDigest(size=self.size, md5=self._md5.digest(), raw_size=self.raw_size, records=self.records)


def digest_parts(pieces: Iterable[Piece], *, gzip: bool) -> list[PartDigest]:
    """Size, MD5 and record count of every part, sending nothing (the skip_if_same pre-pass)."""
    digests: list[PartDigest] = []
    encoder: PartEncoder | None = None
    current = -1
    for part, data, lines in pieces:
        if part != current:
            if encoder is not None:
                digests.append(encoder.finish())
            encoder = PartEncoder(lambda _data: None, gzip=gzip)
            current = part
        assert encoder is not None
        encoder.write(data, lines)
    if encoder is not None:
        digests.append(encoder.finish())
    if not digests:  # empty input: still one (empty) part, so downstream fan-out has something to read
        digests.append(PartEncoder(lambda _data: None, gzip=gzip).finish())
    return digests
