"""Streaming an Ion file to JSON lines or one JSON array, in constant memory.

Reads with amazon-ion's C extension and the bare value model (plain dicts, lists, strings and
numbers wherever the Ion type allows it), which loads several times faster than the default
IonPy model; writes with orjson (Ion types JSON lacks are mapped by :mod:`.ion_values`; records
are checked by :mod:`.record_validation`). Text Ion in the consume step's own one-envelope-a-line
layout takes a shortcut that writes the same bytes (see "the consume step's text envelopes" below).

No Airflow import here.
"""

from __future__ import annotations

import datetime as dt
import functools
import io
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import IO, TYPE_CHECKING, Any, Literal

import orjson

from airflow_provider_logproc.consume.envelope import (
    ENVELOPE_EMPTY_HEADERS_TAIL,
    ENVELOPE_LINE_HEAD,
    ION_BINARY_VERSION_MARKER,
    ION_TEXT_VERSION_MARKER,
)
from airflow_provider_logproc.consume.ion_values import dumps_json, make_json_default, resolve_timezone
from airflow_provider_logproc.consume.record_validation import ValidationSpec, make_validator
from airflow_provider_logproc.garbage_collection import cyclic_gc_paused

# amazon.ion is imported by the functions that read Ion, not here: IonToJsonOperator imports this
# module to validate its arguments when a DAG file is parsed, and parsing must stay cheap.
if TYPE_CHECKING:
    from amazon.ion.simpleion import IonPyValueModel

    BARE_VALUE_MODEL: IonPyValueModel


def bare_value_model() -> IonPyValueModel:
    """Return the reader's bare value model: plain Python values, symbols as text, structs as dicts."""
    from amazon.ion.simpleion import IonPyValueModel

    return IonPyValueModel.MAY_BE_BARE | IonPyValueModel.SYMBOL_AS_TEXT | IonPyValueModel.STRUCT_AS_STD_DICT


def __getattr__(name: str) -> Any:
    # ``BARE_VALUE_MODEL`` stays importable from here without importing amazon.ion with the module.
    if name == "BARE_VALUE_MODEL":
        return bare_value_model()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

OutputFormat = Literal["jsonl", "json_array"]
OUTPUT_FORMATS: tuple[str, ...] = ("jsonl", "json_array")
CHUNK_RECORDS = 4096  # records between checks of the output buffer


class CorruptIonError(ValueError):
    """The Ion input cannot be read past some point; the message names the record and byte position."""


class CountingReader(io.RawIOBase):
    """Counts the bytes the Ion reader has taken (it reads ahead in 8 KiB blocks).

    ``head``: bytes already taken from ``source`` that the reader gets first; ``start``: the position
    in the whole input where ``head`` begins.
    """

    def __init__(self, source: IO[bytes] | io.RawIOBase, head: bytes = b"", start: int = 0):
        super().__init__()
        self._source = source
        self._head = head
        self.bytes_read = start

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        if self._head:
            if size is None or size < 0:
                chunk, self._head = self._head + self._source.read(), b""
            else:
                chunk, self._head = self._head[:size], self._head[size:]
        else:
            chunk = self._source.read(size) or b""
        self.bytes_read += len(chunk)
        return chunk

    def readinto(self, buffer: Any) -> int:
        chunk = self.read(len(buffer))
        buffer[: len(chunk)] = chunk
        return len(chunk)


# --- the conversion ------------------------------------------------------------------------------


@dataclass(slots=True)
class ConversionResult:
    record_count: int = 0
    invalid_count: int = 0


class JsonSink:
    """Writes JSON lines or one JSON array, collecting records in a memory buffer between writes.

    Records go into a BytesIO one at a time and out to ``write`` about every megabyte: measurably
    faster than joining a list of records, and few calls reach a (possibly remote) output file.
    """

    FLUSH_BYTES = 1 << 20

    def __init__(self, write: Callable[[bytes], Any], output_format: str):
        if output_format not in OUTPUT_FORMATS:
            raise ValueError(f"output_format must be one of {', '.join(OUTPUT_FORMATS)}, not {output_format!r}")
        self._write = write
        self._array = output_format == "json_array"
        self._buffer = io.BytesIO()
        self._first = True
        # add(record): the conversion loop's per-record call; a C method for JSON lines.
        self.add: Callable[[bytes], Any] = self._add_to_array if self._array else self._buffer.write
        if self._array:
            self._buffer.write(b"[")

    def _add_to_array(self, encoded: bytes) -> None:
        self._buffer.write(b"\n" if self._first else b",\n")
        self._buffer.write(encoded)
        self._first = False

    def flush_if_full(self) -> None:
        if self._buffer.tell() >= self.FLUSH_BYTES:
            self.flush()

    def flush(self) -> None:
        if self._buffer.tell():
            self._write(self._buffer.getvalue())
            self._buffer.seek(0)
            self._buffer.truncate()

    def close(self) -> None:
        if self._array:
            self._buffer.write(b"]\n" if self._first else b"\n]\n")
        self.flush()


@functools.cache
def _c_reader() -> Any:
    """amazon-ion's C extension, called directly (simpleion.load wraps every value in a Python
    generator step); None for wheels without the extension."""
    try:
        import amazon._ioncmodule as ionc
    except ImportError:  # pragma: no cover - wheels without the extension
        return None
    return ionc


# The C reader refuses Ion *text* values longer than its buffer limit (default: tens of kB) with
# IERR_BUFFER_TOO_SMALL; log records can be megabytes. The limit is a ceiling, not an allocation.
TEXT_VALUE_LIMIT_BYTES = 256 * 1024 * 1024


def iter_ion(source: IO[bytes] | io.RawIOBase) -> Iterator[Any]:
    """Top-level values of an Ion stream, read lazily in 8 KiB blocks with the bare value model."""
    ionc = _c_reader()
    if ionc is not None:
        return iter(ionc.ionc_read(source, value_model=bare_value_model().value,
                                   text_buffer_size_limit=TEXT_VALUE_LIMIT_BYTES))
    from amazon.ion import simpleion

    return simpleion.load(source, single_value=False, parse_eagerly=False, value_model=bare_value_model(),
                          text_buffer_size_limit=TEXT_VALUE_LIMIT_BYTES)


class _RecordWriter:
    """What happens to each top-level value read: unwrapped, validated, written or set aside."""

    __slots__ = ("default", "dumps_option", "index", "invalid_count", "option", "sink", "unwrap_value",
                 "valid", "validator", "write_invalid")

    def __init__(self, sink: JsonSink, write_invalid: Callable[[bytes], Any], *, output_format: str,
                 unwrap_value: bool, timezone: str | dt.tzinfo, keep_annotations: bool,
                 validate_records: ValidationSpec | None) -> None:
        self.sink = sink
        self.write_invalid = write_invalid
        self.unwrap_value = unwrap_value
        self.validator = make_validator(validate_records)
        self.default = make_json_default(resolve_timezone(timezone), keep_annotations)
        self.option = orjson.OPT_PASSTHROUGH_SUBCLASS | orjson.OPT_PASSTHROUGH_DATETIME
        self.dumps_option = self.option | orjson.OPT_APPEND_NEWLINE if output_format == "jsonl" else self.option
        self.index = 0
        self.valid = 0
        self.invalid_count = 0

    def set_aside(self, reason: str, record: Any) -> None:
        _invalid(self.write_invalid, self.index, reason, record, self.default, self.option)
        self.invalid_count += 1
        self.index += 1

    def read_stream(self, records: Iterator[Any]) -> None:
        """Run the per-record loop of the conversion; the Ion reader raises from the ``for`` line only."""
        add = self.sink.add
        dumps = orjson.dumps
        default, option = self.default, self.dumps_option
        validator = self.validator
        unwrap_value = self.unwrap_value
        flush_every = CHUNK_RECORDS - 1  # a power of two minus one: cheap to test
        for record in records:
            if unwrap_value:
                if type(record) is dict and "value" in record:
                    value = record["value"]
                else:
                    self.set_aside("not an envelope: no 'value' field", record)
                    continue
            else:
                value = record
            if validator is not None:
                reason = validator.problems(value)
                if reason is not None:
                    self.set_aside(reason, record)
                    continue
            try:
                add(dumps(value, default=default, option=option))
            except orjson.JSONEncodeError:
                add(dumps_json(value, default, option))  # an integer beyond 64 bits, or a real error
            self.valid += 1
            self.index += 1
            if not self.index & flush_every:
                self.sink.flush_if_full()


def convert_ion_to_json(
    source: IO[bytes],
    write: Callable[[bytes], Any],
    write_invalid: Callable[[bytes], Any],
    *,
    output_format: str = "jsonl",
    unwrap_value: bool = True,
    timezone: str | dt.tzinfo = "UTC",
    keep_annotations: bool = False,
    validate_records: ValidationSpec | None = False,
    source_name: str = "input",
    envelope_lines: bool = True,
) -> ConversionResult:
    """Stream every top-level Ion value of ``source`` to ``write`` as JSON.

    With ``unwrap_value`` each value must be an envelope and its ``value`` is written. Records that
    fail validation (or are not envelopes) go to ``write_invalid`` as JSON lines
    ``{"index", "reason", "record"}``. Corrupt Ion raises :class:`CorruptIonError`.
    ``envelope_lines=False`` reads every value with the Ion reader (the shortcut for the consume
    step's text envelopes gives the same output; tests compare the two).
    """
    from amazon.ion.exceptions import IonException

    sink = JsonSink(write, output_format)
    writer = _RecordWriter(sink, write_invalid, output_format=output_format, unwrap_value=unwrap_value,
                           timezone=timezone, keep_annotations=keep_annotations,
                           validate_records=validate_records)
    reader: CountingReader | None = None
    try:
        with cyclic_gc_paused():  # a dictionary or list per Ion container, none in a cycle
            if unwrap_value and envelope_lines:
                reader = convert_envelope_lines(source, writer, output_format)  # None: nothing left to read
            else:
                reader = CountingReader(source)
            if reader is not None:
                writer.read_stream(iter_ion(reader))
    except (IonException, RecursionError) as error:
        index = writer.index
        read = f"records 0..{index - 1} were read" if index else "no record was read"
        consumed = reader.bytes_read if reader is not None else 0
        raise CorruptIonError(
            f"{source_name}: corrupt Ion at record index {index} ({read}; the reader had consumed "
            f"{consumed} bytes): {error or type(error).__name__}"
        ) from error
    sink.close()
    return ConversionResult(record_count=writer.valid, invalid_count=writer.invalid_count)


# --- the consume step's text envelopes ----------------------------------------------------------
# The text encoder writes one envelope a line in the layout envelope.py defines (format version 1),
# with each value's JSON text embedded as it is. When a value's text is already what orjson writes
# for it (canonical: ``orjson.dumps(orjson.loads(text)) == text``), the Ion reader + orjson would
# write exactly that text: JSON strings, objects, arrays, true/false/null read as the same Python values; a number with
# an exponent reads as the same double; a number without one reads as a Decimal written with its
# own digits; orjson never writes integers beyond 64 bits. So such a line is copied without the Ion
# reader, at about a quarter of its cost. A line of that shape whose value is not canonical is read
# by the Ion reader alone; any other line (a symbol table, another layout, a value over several
# lines) hands the rest of the input to the streaming reader, which is then the judge of it.
# tests/unit/consume/test_ion_json_envelope_lines.py compares both routes.

ENVELOPE_BLOCK_BYTES = 1 << 20
# A longer line goes to the streaming reader, with the rest of the input: the shortcut holds a line
# whole, and binary Ion or a one-line text file would otherwise be gathered into memory.
ENVELOPE_LINE_LIMIT_BYTES = 16 << 20


@functools.lru_cache(maxsize=4096)
def _is_calendar_minute(text: bytes) -> bool:
    """'YYYY-MM-DDTHH:MM' names a real minute (Ion refuses 2024-02-30 or 25:00)."""
    try:
        dt.datetime.strptime(text.decode("ascii"), "%Y-%m-%dT%H:%M")
    except ValueError:
        return False
    return True


def convert_envelope_lines(source: IO[bytes] | io.RawIOBase, writer: _RecordWriter,
                           output_format: str) -> CountingReader | None:
    """Convert the envelope lines at the start of ``source``; the rest of it (from the first line
    that is not one) as a reader for the Ion reader, or None when every line was converted."""
    from amazon.ion.exceptions import IonException

    loads, dumps = orjson.loads, orjson.dumps
    head_match = ENVELOPE_LINE_HEAD.match
    tail, tail_length = ENVELOPE_EMPTY_HEADERS_TAIL, len(ENVELOPE_EMPTY_HEADERS_TAIL)
    version_line = ION_TEXT_VERSION_MARKER.rstrip(b"\n")
    sink = writer.sink
    add = sink.add
    newline = b"\n" if output_format == "jsonl" else b""
    validator = writer.validator
    flush_every = CHUNK_RECORDS - 1
    position = 0  # of the current line in the whole input
    first_line = True
    block_bytes, line_limit = ENVELOPE_BLOCK_BYTES, ENVELOPE_LINE_LIMIT_BYTES
    block = source.read(block_bytes)
    if block.startswith(ION_BINARY_VERSION_MARKER):
        return CountingReader(source, head=block, start=0)
    pending = b""
    while True:
        at_end = not block
        lines = (pending + block).split(b"\n") if block else [pending]
        # after: the input's bytes that follow the last of ``lines`` in this round
        pending = b"" if at_end else lines.pop()
        after = b"" if at_end else b"\n" + pending
        if len(pending) > line_limit:
            lines.append(pending)  # handed over below, as a line the shortcut does not take
            pending = after = b""
        for number, line in enumerate(lines):
            if first_line:
                first_line = False
                if line == version_line:
                    position += len(line) + 1
                    continue
            if not line:
                position += 1
                continue
            match = head_match(line) if len(line) <= line_limit else None
            if match is not None and line.endswith(tail) and _is_calendar_minute(match[1]):
                text = line[match.end():-tail_length]
                try:
                    value = loads(text)
                except orjson.JSONDecodeError:
                    canonical = False
                else:
                    canonical = dumps(value) == text
                if canonical and (validator is None or validator.problems(value) is None):
                    add(text)
                    if newline:
                        add(newline)
                    writer.valid += 1
                    writer.index += 1
                    if not writer.index & flush_every:
                        sink.flush_if_full()
                    position += len(line) + 1
                    continue
                # The envelope's shape, but a value to read as Ion (or one to set aside with the
                # envelope the Ion reader makes of it): this line alone, if it reads alone.
                try:
                    records = list(iter_ion(io.BytesIO(line)))
                except (IonException, RecursionError):
                    pass
                else:
                    writer.read_stream(iter(records))
                    position += len(line) + 1
                    continue
            return CountingReader(source, head=b"\n".join(lines[number:]) + after, start=position)
        if at_end:
            return None
        block = source.read(block_bytes)


def _invalid(write_invalid: Callable[[bytes], Any], index: int, reason: str, record: Any,
             default: Callable[[Any], Any], option: int) -> None:
    line = {"index": index, "reason": reason, "record": record}
    write_invalid(dumps_json(line, default, option | orjson.OPT_APPEND_NEWLINE))
