"""Ion → JSON on every core: a local Ion file cut into slices at top-level values, one process each.

amazon-ion's C reader is the cost of the conversion (about 10 µs a record for text Ion, 6 µs for
binary, against well under 1 µs for orjson; the consume step's own text envelopes skip it at about
2.6 µs a record, see ion_json), and it holds the GIL, so one process uses one core.
A local file can be cut into byte ranges that are each a valid Ion stream of whole top-level
values, converted side by side, and the outputs appended in order: the same bytes as one pass.

Where to cut, without parsing up to the cut:

* binary Ion — at an Ion version marker (``E0 01 00 EA``): it resets the symbol table, so the
  stream after it reads alone. The consume step's binary encoder starts every chunk with one.
* text Ion — between a line ending in ``}`` and one starting with ``{``: the consume step's text
  encoder writes one envelope per line. Files with a local symbol table are not cut (a value
  after the cut could use symbols the slice never declared).

A candidate cut is only a guess (the marker's bytes can occur inside a binary value, a line can
continue a multi-line struct). Every slice must read to its end as whole values: a cut inside a
value leaves the slice before it truncated, which the reader reports. If any slice fails, the
conversion is redone in one pass, which also gives a genuinely corrupt file its exact error.

No Airflow import here: the worker processes start fast.
"""

from __future__ import annotations

import io
import itertools
import json
import logging
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from typing import IO, Any

from airflow_provider_logproc.consume.envelope import ION_BINARY_VERSION_MARKER
from airflow_provider_logproc.consume.ion_json import ConversionResult, convert_ion_to_json
from logproc_analyzer.worker_processes import WorkerWithoutReport, read_report, start_worker, usable_cpus

log = logging.getLogger(__name__)

WORKER_MODULE = "airflow_provider_logproc.consume.ion_split"  # this module, run by its workers

TEXT_CUT = b"}\n{"  # the cut goes after the newline
LOCAL_SYMBOL_TABLE = b"$ion_symbol_table"
# Below this a worker's start (~0.2 s) is not paid back.
MIN_SLICE_BYTES = 16 * 1024 * 1024
INDEX_PREFIX = b'{"index":'


def plan_slices(path: str | os.PathLike[str], parts: int,
                min_slice_bytes: int | None = None) -> list[tuple[int, int]]:
    """Byte ranges ``[start, end)`` of ``path`` to convert side by side; one range when not worth cutting."""
    size = os.path.getsize(path)
    parts = min(parts, size // max(min_slice_bytes or MIN_SLICE_BYTES, 1))
    if parts < 2:
        return [(0, size)]
    with open(path, "rb") as handle:
        if handle.read(4) == ION_BINARY_VERSION_MARKER:
            marker, offset = ION_BINARY_VERSION_MARKER, 0
        else:
            if _find(handle, LOCAL_SYMBOL_TABLE, 0) != -1:
                return [(0, size)]
            marker, offset = TEXT_CUT, 2
        cuts = [0]
        for k in range(1, parts):
            found = _find(handle, marker, max(size * k // parts, cuts[-1] + 1))
            if found == -1:
                break
            if found + offset > cuts[-1]:
                cuts.append(found + offset)
    cuts.append(size)
    return [(start, end) for start, end in itertools.pairwise(cuts) if end > start]


def _find(handle: IO[bytes], needle: bytes, start: int, block: int = 1 << 20) -> int:
    """Find the first offset of ``needle`` at or after ``start``, or -1; reads in blocks, not the whole file."""
    handle.seek(start)
    carried = b""
    position = start  # the file offset of carried[0]
    while chunk := handle.read(block):
        data = carried + chunk
        found = data.find(needle)
        if found != -1:
            return position + found
        keep = len(needle) - 1
        carried = data[-keep:] if keep else b""
        position += len(data) - len(carried)
    return -1


class SliceReader(io.RawIOBase):
    """The bytes ``[start, end)`` of a file, as a stream of their own."""

    def __init__(self, path: str, start: int, end: int):
        super().__init__()
        self._file = open(path, "rb")  # noqa: SIM115 - closed in close()
        self._file.seek(start)
        self._left = end - start

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        want = min(len(buffer), self._left)
        if want <= 0:
            return 0
        got = self._file.readinto(memoryview(buffer)[:want])
        self._left -= got
        return got

    def read(self, size: int = -1) -> bytes:
        size = self._left if size is None or size < 0 else min(size, self._left)
        chunk = self._file.read(size)
        self._left -= len(chunk)
        return chunk

    def close(self) -> None:
        self._file.close()
        super().close()


@dataclass
class SliceJob:
    """One slice to convert, and where its JSON lines and invalid records go."""

    source: str
    start: int
    end: int
    output: str
    invalid: str
    options: dict[str, Any] = field(default_factory=dict)


def convert_slice(job: SliceJob) -> ConversionResult:
    with SliceReader(job.source, job.start, job.end) as reader, open(job.output, "wb") as out, \
            open(job.invalid, "wb") as invalid:
        return convert_ion_to_json(reader, out.write, invalid.write, output_format="jsonl",  # type: ignore[arg-type]
                                   source_name=f"{job.source} bytes {job.start}..{job.end}", **job.options)


def worker_main() -> int:
    """Run a worker process: a SliceJob as JSON on stdin, the ConversionResult (or the error) on stdout."""
    job = SliceJob(**json.loads(sys.stdin.buffer.read()))
    try:
        result = convert_slice(job)
    except Exception as error:  # the parent falls back to one pass, which raises it properly
        sys.stdout.write(json.dumps({"error": f"{type(error).__name__}: {error}"}))
        return 1
    sys.stdout.write(json.dumps({"result": asdict(result)}))
    return 0


class SliceFailed(Exception):
    """A slice did not read as whole values (a bad cut, or a corrupt file)."""


def convert_ion_file_to_json(
    source: str,
    write: Callable[[bytes], Any],
    write_invalid: Callable[[bytes], Any],
    *,
    workers: int | None = None,
    min_slice_bytes: int | None = None,
    source_name: str | None = None,
    logger: logging.Logger | Any = log,
    **options: Any,
) -> ConversionResult:
    """Convert a local Ion file to JSON lines like :func:`convert_ion_to_json`, on up to ``workers`` cores.

    ``options`` are convert_ion_to_json's (unwrap_value, timezone, keep_annotations,
    validate_records). The output is byte for byte the one-pass output, invalid records and their
    indexes included.
    """
    slices = plan_slices(source, workers or usable_cpus(), min_slice_bytes)
    if len(slices) > 1:
        try:
            return _convert_slices(source, slices, write, write_invalid, options, logger)
        except SliceFailed as failure:
            logger.warning("converting %s in %d slices failed (%s); converting it in one pass",
                           source, len(slices), failure)
    with open(source, "rb") as handle:
        return convert_ion_to_json(handle, write, write_invalid, output_format="jsonl",
                                   source_name=source_name or source, **options)


def _convert_slices(source: str, slices: Sequence[tuple[int, int]], write: Callable[[bytes], Any],
                    write_invalid: Callable[[bytes], Any], options: dict[str, Any],
                    logger: logging.Logger | Any) -> ConversionResult:
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="logproc-ion-slices-") as spool_dir:
        jobs = [SliceJob(source, start, end, os.path.join(spool_dir, f"{index}.jsonl"),
                         os.path.join(spool_dir, f"{index}.invalid"), options)
                for index, (start, end) in enumerate(slices)]
        processes = [_start_worker(job) for job in jobs[1:]]
        try:
            try:
                results = [convert_slice(jobs[0])]  # this process takes the first slice
            except Exception as error:
                raise SliceFailed(f"slice 0: {type(error).__name__}: {error}") from None
            for index, process in enumerate(processes, start=1):
                results.append(_collect(process, jobs[index], index))
        finally:
            for process in processes:
                if process.poll() is None:
                    process.kill()
                process.wait()
        logger.info("converted %d slices of %s in %d processes in %.1f s", len(jobs), source, len(jobs),
                    time.monotonic() - started)
        total = ConversionResult()
        for job, result in zip(jobs, results, strict=True):
            with open(job.output, "rb") as spool:
                _copy(spool, write)
            if result.invalid_count:
                _append_invalid(job.invalid, total.record_count + total.invalid_count, write_invalid)
            total.record_count += result.record_count
            total.invalid_count += result.invalid_count
        return total


def _start_worker(job: SliceJob) -> subprocess.Popen[bytes]:
    return start_worker(WORKER_MODULE, json.dumps(asdict(job)).encode(), job.output + ".stderr")


def _collect(process: subprocess.Popen[bytes], job: SliceJob, index: int) -> ConversionResult:
    try:
        report = read_report(process, job.output + ".stderr")
    except WorkerWithoutReport as error:
        raise SliceFailed(f"slice {index}: {error}") from None
    if "error" in report:
        raise SliceFailed(f"slice {index}: {report['error']}")
    return ConversionResult(**report["result"])


def _copy(spool: IO[bytes], write: Callable[[bytes], Any]) -> None:
    while chunk := spool.read(4 << 20):
        write(chunk)


def _append_invalid(path: str, first_index: int, write_invalid: Callable[[bytes], Any]) -> None:
    """Renumber a slice's invalid records with their indexes made global.

    Only the leading ``{"index":N,`` is rewritten (convert_ion_to_json writes it first): a parse
    and re-dump would change the record's numbers (an Ion decimal's digits, say).
    """
    with open(path, "rb") as lines:
        for line in lines:
            head, comma, rest = line.partition(b",")
            if not head.startswith(INDEX_PREFIX) or not comma:
                raise ValueError(f"unexpected invalid-record line in {path}: {line[:80]!r}")
            index = int(head[len(INDEX_PREFIX):]) + first_index
            write_invalid(b"%s%d,%s" % (INDEX_PREFIX, index, rest))


if __name__ == "__main__":
    raise SystemExit(worker_main())
