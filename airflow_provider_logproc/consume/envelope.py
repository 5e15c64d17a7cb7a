"""Kafka records as Amazon Ion envelopes ``{topic, partition, offset, timestamp, key, value, headers}``.

Two encoders write the same Ion data model:

* ``binary`` — Ion binary through amazon-ion's C extension (``simpleion.dumps`` of a chunk of
  envelopes as a stream). Each chunk starts with its own Ion version marker and symbol table;
  concatenated chunks form one valid Ion stream. Compact and the fastest to read back, but the
  C encoder holds the GIL and runs at ~55k envelopes/s with struct values, well below what the
  consumer delivers.
* ``text`` — Ion text written directly for the fixed envelope shape. Every JSON text orjson accepts
  is also Ion text with the same structure (objects → structs, arrays → lists, the same string
  escapes, surrogate pairs included), so a validated JSON value is embedded as it is and stays a
  struct/list/number/string in Ion — but for object keys reading ``$`` and digits, which amazon-ion
  would take for symbol IDs: those are written as quoted symbols (:func:`ion_field_names`). Many
  times faster to write than binary; JSON numbers with a fraction become Ion decimals and integers
  keep all their digits (exact), numbers with an exponent become Ion floats.

A value or key that cannot be deserialized raises :class:`UndecodableRecord` (the caller keeps
it aside in a dead-letter file).

The text envelope line, format version 1 (:data:`ENVELOPE_FORMAT_VERSION`)
--------------------------------------------------------------------------
This module is the one place the layout is written down; the consume step's encoders
(``encoders.py``, and the C batch loop ``_native_envelope.c``, which receives the head from
:func:`envelope_head` and writes the rest of the line as below) and the Ion→JSON step's shortcut
(``ion_json.py``) both import it. A file is::

    $ion_1_0                                             (ION_TEXT_VERSION_MARKER, first line)
    {topic:"logs",partition:0,offset:7,timestamp:2024-06-01T10:20:30.405Z,key:"web-1",value:{...},headers:[]}
    ...                                                  (one envelope a line, "\n" after each)

* fields in this order (:data:`ENVELOPE_FIELDS`), no spaces: ``topic`` (a JSON string: orjson's
  text), ``partition`` and ``offset`` (decimal integers), ``timestamp`` (Ion UTC timestamp with
  milliseconds, ``YYYY-MM-DDTHH:MM:SS.mmmZ``), ``key`` (``null``, a string, or a blob), ``value``
  (``null``, the record's JSON text as it is but for keys like ``"$1"``, written ``'$1'``, a string,
  or a blob), ``headers`` (``[]`` or a list of
  ``{key:"name",value:{{base64}}}``);
* the version: the layout carries no version field of its own (a field would change the bytes of
  every file, and the archived windows of earlier runs must keep reading). It is the Ion text
  version marker on the first line plus :data:`ENVELOPE_FORMAT_VERSION` here; a change to the
  layout bumps that number and must keep :data:`ENVELOPE_LINE_HEAD` from matching lines of the new
  layout unless the shortcut's argument below still holds for them;
* how the Ion→JSON shortcut recognises a line: :data:`ENVELOPE_LINE_HEAD` (printable-ASCII topic
  and key, a real calendar minute, checked by the caller) up to ``value:``, and
  :data:`ENVELOPE_EMPTY_HEADERS_TAIL` at the end. Only then, and only when the value's text is
  canonical JSON (``orjson.dumps(orjson.loads(text)) == text``), is the value copied without the
  Ion reader — which writes exactly those bytes for it. Anything else goes to the Ion reader, so a
  file that does not follow this layout still converts correctly, only slower: the contract is a
  speed contract, never a correctness one;
* binary Ion (``ion_encoding="binary"``) has the same fields; its files start with
  :data:`ION_BINARY_VERSION_MARKER`, which sends the whole file to the Ion reader.

``tests/unit/consume/test_envelope_golden.py`` holds a checked-in file of this layout, written by
the encoder and read back through the shortcut.

No Airflow import here: this module is plain work, testable alone.
"""

from __future__ import annotations

import base64
import datetime as dt
import re
from collections.abc import Callable
from typing import Any, Literal

import orjson

Deserializer = Literal["string", "json", "bytes"]
DESERIALIZERS: tuple[str, ...] = ("string", "json", "bytes")
IonEncoding = Literal["binary", "text"]
ION_ENCODINGS: tuple[str, ...] = ("binary", "text")

# --- the text envelope line (see the module docstring) ---------------------------------------------

ENVELOPE_FORMAT_VERSION = 1
ENVELOPE_FIELDS: tuple[str, ...] = ("topic", "partition", "offset", "timestamp", "key", "value", "headers")
ION_TEXT_VERSION_MARKER = b"$ion_1_0\n"
ION_BINARY_VERSION_MARKER = b"\xe0\x01\x00\xea"
# After envelope_head(): offset, timestamp, key, value and headers texts.
ENVELOPE_LINE_REST = b"%b%d,timestamp:%b,key:%b,value:%b,headers:%b}\n"
ENVELOPE_EMPTY_HEADERS_TAIL = b",headers:[]}"
_PRINTABLE_ASCII_STRING = rb'"[\x20\x21\x23-\x5b\x5d-\x7e]*"'  # no quote, backslash or control
# Group 1: the timestamp's minute, for the caller to check that it is a real calendar minute.
ENVELOPE_LINE_HEAD = re.compile(
    rb"\{topic:" + _PRINTABLE_ASCII_STRING + rb",partition:(?:0|[1-9][0-9]*),offset:(?:0|[1-9][0-9]*),"
    rb"timestamp:([0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}):[0-5][0-9]\.[0-9]{3}Z,"
    rb"key:(?:null|" + _PRINTABLE_ASCII_STRING + rb"),value:"
)


def envelope_head(topic_text: bytes, partition: int) -> bytes:
    """Return an envelope line's constant start, up to its offset: ``{topic:"...",partition:N,offset:``."""
    return b"{topic:%b,partition:%d,offset:" % (topic_text, partition)



class UndecodableRecord(ValueError):
    """A key or value that its deserializer rejects; ``field`` is ``"key"`` or ``"value"``."""

    def __init__(self, field: str, reason: str):
        super().__init__(f"{field}: {reason}")
        self.field = field
        self.reason = reason


def check_deserializer(name: str, role: str) -> None:
    if name not in DESERIALIZERS:
        raise ValueError(f"{role}_deserializer must be one of {', '.join(DESERIALIZERS)}, not {name!r}")


def check_encoding(name: str) -> None:
    if name not in ION_ENCODINGS:
        raise ValueError(f"ion_encoding must be one of {', '.join(ION_ENCODINGS)}, not {name!r}")


# --- Python objects, for the binary encoder -------------------------------------------------------


def _string_object(raw: bytes, field: str) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as error:
        raise UndecodableRecord(field, f"not UTF-8 ({error.reason} at byte {error.start})") from None


def _json_object(raw: bytes, field: str) -> Any:
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError as error:
        raise UndecodableRecord(field, f"not JSON ({error})") from None


def object_deserializer(name: str, field: str) -> Callable[[bytes | None], Any]:
    """raw bytes (or None) → a Python object that simpleion writes as the Ion value."""
    check_deserializer(name, field)
    if name == "bytes":
        return lambda raw: raw
    convert = _string_object if name == "string" else _json_object

    def deserialize(raw: bytes | None) -> Any:
        return None if raw is None else convert(raw, field)

    return deserialize


# --- Ion text fragments, for the text encoder -----------------------------------------------------


def _string_text(raw: bytes, field: str) -> bytes:
    # A JSON string literal is an Ion string literal (same escapes; orjson never emits surrogates).
    return orjson.dumps(_string_object(raw, field))


def _json_text(raw: bytes, field: str) -> bytes:
    # orjson validates (UTF-8, syntax, surrogates); JSON it accepts is also valid Ion text with the
    # same meaning, so the raw bytes go in as they are: no re-serialization, exact number digits.
    try:
        orjson.loads(raw)
    except orjson.JSONDecodeError as error:
        raise UndecodableRecord(field, f"not JSON ({error})") from None
    return ion_field_names(raw)


# A JSON string and, when it is an object key, the colon after it. Outside strings valid JSON has
# no quote, so scanning from the start meets every string at its opening quote.
_JSON_STRING_AND_COLON = re.compile(rb'"(?:[^"\\]|\\.)*"(\s*:)?')
_SYMBOL_ID_TEXT = re.compile(r"\$[0-9]+")


def ion_field_names(json_text: bytes) -> bytes:
    """Return valid JSON ``json_text`` as Ion text whose field names read back as they were.

    amazon-ion's reader (ion-c) takes a field name whose text is ``$`` and digits for a symbol ID,
    even double-quoted or escaped: ``{"$0":1}`` reads as a field without a name, ``{"$10":1}`` fails
    the whole file (IERR_INVALID_SYMBOL). Such keys (positional parameters of SQL logs, say) are
    written as quoted symbols, ``{'$10':1}``, which it reads as the text ``$10``. Everything else
    stays byte for byte.
    """
    if b"$" not in json_text and b"\\u" not in json_text:  # no key can read "$<digits>": the common case
        return json_text

    def quoted(match: re.Match[bytes]) -> bytes:
        if match.group(1) is None:
            return match.group(0)
        name = orjson.loads(match.group(0)[: match.start(1) - match.start(0)])
        if not _SYMBOL_ID_TEXT.fullmatch(name):
            return match.group(0)
        return b"'" + name.encode() + b"'" + match.group(1)

    return _JSON_STRING_AND_COLON.sub(quoted, json_text)


def _blob_text(raw: bytes, field: str) -> bytes:
    return b"{{" + base64.b64encode(raw) + b"}}"


def text_deserializer(name: str, field: str) -> Callable[[bytes | None], bytes]:
    """raw bytes (or None) → the Ion text of the value."""
    check_deserializer(name, field)
    if name == "json" and field == "value":
        return _json_value_text  # the hot path: one call per record
    convert = {"string": _string_text, "json": _json_text, "bytes": _blob_text}[name]

    def deserialize(raw: bytes | None) -> bytes:
        return b"null" if raw is None else convert(raw, field)

    return deserialize


def _json_value_text(raw: bytes | None) -> bytes:
    if raw is None:
        return b"null"
    try:
        orjson.loads(raw)
    except orjson.JSONDecodeError as error:
        raise UndecodableRecord("value", f"not JSON ({error})") from None
    return ion_field_names(raw)


_SECOND_AND_MILLIS: list[bytes] = []


def _second_and_millis_table() -> list[bytes]:
    # "SS.mmmZ" for every millisecond of a minute (60,000 entries, ~3 MB, built once per process).
    if not _SECOND_AND_MILLIS:
        _SECOND_AND_MILLIS.extend(b"%02d.%03dZ" % divmod(millis, 1000) for millis in range(60_000))
    return _SECOND_AND_MILLIS


class IonTimestampText:
    """Epoch milliseconds → Ion timestamp text (UTC, millisecond precision).

    Formatting is the hottest step per record after JSON validation, so the minute's prefix is
    cached and the seconds and milliseconds come from a table.
    """

    __slots__ = ("_minute", "_prefix", "_suffixes")

    def __init__(self) -> None:
        self._minute = -1
        self._prefix = b""
        self._suffixes = _second_and_millis_table()

    def __call__(self, timestamp_ms: int) -> bytes:
        minute, millis = divmod(timestamp_ms, 60_000)
        if minute != self._minute:
            self._prefix = minute_prefix(minute)
            self._minute = minute
        return self._prefix + self._suffixes[millis]


def minute_prefix(minute: int) -> bytes:
    """'YYYY-MM-DDTHH:MM:' of a UTC epoch minute: an Ion timestamp up to its seconds."""
    return dt.datetime.fromtimestamp(minute * 60, dt.UTC).strftime("%Y-%m-%dT%H:%M:").encode()


def headers_text(headers: list[tuple[str, bytes | None]] | None) -> bytes:
    if not headers:
        return b"[]"
    items = [
        b"{key:%b,value:%b}" % (orjson.dumps(name), b"null" if value is None else _blob_text(value, "header"))
        for name, value in headers
    ]
    return b"[" + b",".join(items) + b"]"


def headers_object(headers: list[tuple[str, bytes | None]] | None) -> list[dict[str, Any]]:
    return [{"key": name, "value": value} for name, value in headers or ()]


def timestamp_object(timestamp_ms: int) -> dt.datetime:
    return dt.datetime.fromtimestamp(timestamp_ms / 1000, dt.UTC).replace(
        microsecond=(timestamp_ms % 1000) * 1000)


def encode_binary_chunk(envelopes: list[dict[str, Any]]) -> bytes:
    """One chunk of envelopes as an Ion binary stream (starting with the Ion version marker)."""
    if not envelopes:
        return b""
    # Imported here, not at module level: the Kafka operator imports this module to validate its
    # arguments when a DAG file is parsed.
    from amazon.ion import simpleion

    return simpleion.dumps(envelopes, binary=True, sequence_as_stream=True)
