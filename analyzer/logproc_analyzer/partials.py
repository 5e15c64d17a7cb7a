"""Partials: the binary exchange format (version 3, msgpack) and the readable JSON form.

A Batch task writes its aggregate as a **binary partial**: a msgpack map whose small header (mapping,
window, inputs, counts by reason, latency histogram) is as in the JSON form, and whose large tables
are compact: client IPv4 addresses as 4-byte and IPv6 as 16-byte big-endian values in two byte strings
(addresses that are neither, e.g. scoped IPv6, as texts), counts as msgpack integer arrays in the same
order, per-minute status counts as two integer arrays, the (status, method, source) table with its
texts interned once, paths and user agents each once with their counts. A dimension past the exact
bound holds the DataSketches' own serialisations instead of its keys (``sketches.py``).

Reading is linear in the partial's size, and a merge reads one partial at a time into the running
result (``analyze.merge_partial_files``), so only the result and one partial are ever in memory.

The JSON form (``logproc-merge --dump``) holds the same content, sketches in base64; JSON partials of
versions 1 and 2 (before this format) and 3 are still read, so old partials stay usable.
"""

from __future__ import annotations

import base64
import socket
from collections import defaultdict
from collections.abc import Mapping
from dataclasses import asdict
from typing import Any

import msgspec
import orjson

from logproc_analyzer.aggregate import (
    CLIENT_TABLES,
    KEY_DIMENSIONS,
    MISSING,
    PARTIAL_FORMAT,
    PARTIAL_VERSION,
    READABLE_PARTIAL_VERSIONS,
    Aggregate,
    InvalidLine,
)
from logproc_analyzer.decoding import fold_missing
from logproc_analyzer.fields import FieldMapping, Window, parse_client_ip
from logproc_analyzer.packed_ips import PackedIpCounts, v6_text
from logproc_analyzer.sketch import LatencyHistogram
from logproc_analyzer.sketches import KeySketch

__all__ = [
    "BINARY_ENCODING",
    "aggregate_from_document",
    "decode_partial",
    "encode_partial",
    "is_binary_partial",
    "partial_document",
    "read_partial_bytes",
    "summary_view",
]

BINARY_ENCODING = "msgpack"
_ENCODER = msgspec.msgpack.Encoder()
_DECODER = msgspec.msgpack.Decoder()
_AF6 = socket.AF_INET6


# ------------------------------------------------------------------ shared header
def _header(aggregate: Aggregate) -> dict[str, Any]:
    return {
        "format": PARTIAL_FORMAT,
        "version": PARTIAL_VERSION,
        "mapping": asdict(aggregate.mapping),
        "field_mappings": aggregate.field_mappings,
        "window": None if aggregate.window is None else aggregate.window.to_dict(),
        "outside_window": {"earliest_ms": aggregate.outside_earliest_ms,
                           "latest_ms": aggregate.outside_latest_ms},
        "exact_keys": aggregate.exact_keys,
        "inputs": aggregate.inputs,
        "lines": aggregate.lines,
        "blank_lines": aggregate.blank_lines,
        "invalid_reasons": dict(sorted(aggregate.invalid_reasons.items())),
        "invalid_sample": [entry.to_dict() for entry in aggregate.invalid_sample],
        "field_errors": dict(sorted(aggregate.field_errors.items())),
        "bytes": {"total": aggregate.bytes_total, "records": aggregate.bytes_records},
        "latency_ms": aggregate.latency.to_dict(),
    }


def _kinds(aggregate: Aggregate) -> list[tuple[int, str, str, int]]:
    kinds: dict[tuple[int, str, str], int] = defaultdict(int)
    for (status, method, origin), n in aggregate.kinds.items():
        kinds[status, MISSING if method is None else method, MISSING if origin is None else origin] += n
    return [(status, method, origin, n) for (status, method, origin), n in sorted(kinds.items())]


def _read_header(data: Mapping[str, Any], where: str) -> Aggregate:
    """Check the format and version and rebuild everything but the large tables."""
    if not isinstance(data, Mapping) or data.get("format") != PARTIAL_FORMAT:
        raise ValueError(f"{where}: not a {PARTIAL_FORMAT} document")
    if data.get("version") not in READABLE_PARTIAL_VERSIONS:
        raise ValueError(
            f"{where}: partial version {data.get('version')!r} is not supported "
            f"(this analyzer reads versions {', '.join(map(str, READABLE_PARTIAL_VERSIONS))})"
        )
    aggregate = Aggregate(FieldMapping(**data["mapping"]), Window.from_dict(data.get("window")))
    if "exact_keys" in data:
        aggregate.exact_keys = int(data["exact_keys"])
    aggregate.field_mappings = [dict(entry) for entry in data.get("field_mappings", [])]
    outside = data.get("outside_window") or {}
    for name in ("earliest_ms", "latest_ms"):
        value = outside.get(name)
        if value is not None and (not isinstance(value, int) or isinstance(value, bool)):
            raise ValueError(f"outside_window.{name} {value!r} is not an integer")
    aggregate.outside_earliest_ms = outside.get("earliest_ms")
    aggregate.outside_latest_ms = outside.get("latest_ms")
    aggregate.inputs = list(data["inputs"])
    aggregate.lines = int(data["lines"])
    aggregate.blank_lines = int(data["blank_lines"])
    aggregate.invalid_reasons.update(data["invalid_reasons"])
    aggregate.invalid_sample = [
        InvalidLine(e["source"], int(e["line"]), e["reason"], e["message"], e["text"])
        for e in data["invalid_sample"]
    ]
    aggregate.field_errors.update(data["field_errors"])
    aggregate.bytes_total = int(data["bytes"]["total"])
    aggregate.bytes_records = int(data["bytes"]["records"])
    aggregate.latency = LatencyHistogram.from_dict(data["latency_ms"])
    return aggregate


# ------------------------------------------------------------------ JSON form
def partial_document(aggregate: Aggregate) -> dict[str, Any]:
    """Return the partial's JSON form: readable, and read back by ``aggregate_from_document``."""
    view = summary_view(aggregate)
    minutes: dict[str, dict[str, int]] = {}
    for key, n in sorted(aggregate.minute_status.items()):
        minute, status = divmod(key, 1000)
        minutes.setdefault(str(minute), {})[str(status)] = n
    return {
        **view,
        "minutes": minutes,
        "kinds": [list(row) for row in view["kinds"]],
        "ips": _ip_dict(view["ips"]),
        "ip_client_errors": _ip_dict(view["ip_client_errors"]),
        "ip_server_errors": _ip_dict(view["ip_server_errors"]),
        "sketches": {name: {part: base64.b64encode(blob).decode("ascii")
                            for part, blob in sketch.to_bytes().items()}
                     for name, sketch in sorted(aggregate.sketches.items())},
    }


def summary_view(aggregate: Aggregate) -> dict[str, Any]:
    """Return what ``summarize`` reads of an aggregate (finished and bounded here): the partial's header, its
    kinds, its client tables as the aggregate holds them (packed ones stay packed: no copies), its paths and
    agents; not the minutes (``minute_status`` is read as it is) nor the sketches' serialised forms."""
    aggregate.finish()
    aggregate.bound_keys()
    return {
        **_header(aggregate),
        "kinds": _kinds(aggregate),
        "ips": aggregate.ips,
        "ip_client_errors": aggregate.ip_client_errors,
        "ip_server_errors": aggregate.ip_server_errors,
        "paths": fold_missing(aggregate.paths),
        "user_agents": fold_missing(aggregate.user_agents),
    }


def _ip_dict(table: Any) -> dict[str, int]:
    return table.to_dict() if isinstance(table, PackedIpCounts) else dict(table)


def aggregate_from_document(data: Mapping[str, Any], *, where: str = "partial") -> Aggregate:
    """Rebuild an aggregate from a JSON partial (versions 1-3); ValueError naming ``where`` if it is not one."""
    try:
        aggregate = _read_header(data, where)
        for minute, statuses in data["minutes"].items():
            for status, n in statuses.items():
                aggregate.minute_status[int(minute) * 1000 + int(status)] = int(n)
        for status, method, origin, n in data["kinds"]:
            aggregate.kinds[int(status), method, origin] = int(n)
        ips, client_errors, server_errors = aggregate.client_dicts()
        for ip, n in data["ips"].items():
            if parse_client_ip(ip) != ip:
                raise ValueError(f"client IP {ip!r} is not in canonical form")
            ips[ip] = int(n)
        client_errors.update(data["ip_client_errors"])
        server_errors.update(data["ip_server_errors"])
        aggregate.paths.update(data["paths"])
        aggregate.user_agents.update(data["user_agents"])
        for name, parts in (data.get("sketches") or {}).items():
            if name not in KEY_DIMENSIONS:
                raise ValueError(f"sketch of unknown dimension {name!r}")
            aggregate.sketches[name] = KeySketch.from_bytes(
                {part: base64.b64decode(text) for part, text in parts.items()})
    except ValueError as exc:
        if str(exc).startswith(f"{where}: "):
            raise
        raise ValueError(f"{where}: malformed partial (ValueError: {exc})") from None
    except (KeyError, TypeError, AttributeError) as exc:
        raise ValueError(f"{where}: malformed partial ({type(exc).__name__}: {exc})") from None
    return aggregate


# ------------------------------------------------------------------ binary form
def _pack_ips(counts: Mapping[str, int] | PackedIpCounts) -> dict[str, Any]:
    """Pack client IPs: IPv4 as 4 bytes, IPv6 as 16 (network order), anything else as text; counts alike."""
    if isinstance(counts, PackedIpCounts):
        return counts.to_document()
    v4: list[str] = []
    v6: list[str] = []
    other: list[str] = []
    for ip in counts:
        if ":" not in ip:
            v4.append(ip)
        elif "%" in ip:
            other.append(ip)  # a scoped IPv6 address: the zone is text
        else:
            v6.append(ip)
    get = counts.__getitem__
    return {
        "v4": b"".join(map(socket.inet_aton, v4)), "v4_counts": list(map(get, v4)),
        "v6": b"".join(socket.inet_pton(_AF6, ip) for ip in v6), "v6_counts": list(map(get, v6)),
        "text": other, "text_counts": list(map(get, other)),
    }


def _unpack_ips(packed: Mapping[str, Any], where: str) -> dict[str, int]:
    v4, v6 = packed["v4"], packed["v6"]
    if len(v4) != 4 * len(packed["v4_counts"]) or len(v6) != 16 * len(packed["v6_counts"]) or len(
            packed["text"]) != len(packed["text_counts"]):
        raise ValueError("client IP table and its counts differ in length")
    ntoa = socket.inet_ntoa
    table = dict(zip([ntoa(v4[i:i + 4]) for i in range(0, len(v4), 4)], packed["v4_counts"], strict=True))
    table.update(zip([v6_text(v6[i:i + 16]) for i in range(0, len(v6), 16)], packed["v6_counts"], strict=True))
    for ip, n in zip(packed["text"], packed["text_counts"], strict=True):
        if parse_client_ip(ip) != ip:
            raise ValueError(f"client IP {ip!r} is not in canonical form")
        table[ip] = n
    return table


def _texts(counts: Mapping[Any, int]) -> dict[str, list[Any]]:
    folded = fold_missing(counts)
    return {"keys": list(folded), "counts": list(folded.values())}


def encode_partial(aggregate: Aggregate) -> bytes:
    """Return the binary partial of a (finished) aggregate."""
    aggregate.finish()
    aggregate.bound_keys()
    texts: dict[str, int] = {}  # method and source texts of the kinds table, interned once
    kinds = [(status, texts.setdefault(method, len(texts)), texts.setdefault(origin, len(texts)), n)
             for status, method, origin, n in _kinds(aggregate)]
    minute_keys = sorted(aggregate.minute_status)
    document = {
        **_header(aggregate),
        "encoding": BINARY_ENCODING,
        "texts": list(texts),
        "minutes": {"keys": minute_keys, "counts": list(map(aggregate.minute_status.__getitem__, minute_keys))},
        "kinds": kinds,
        "ips": _pack_ips(aggregate.ips),
        "ip_client_errors": _pack_ips(aggregate.ip_client_errors),
        "ip_server_errors": _pack_ips(aggregate.ip_server_errors),
        "paths": _texts(aggregate.paths),
        "user_agents": _texts(aggregate.user_agents),
        "sketches": {name: sketch.to_bytes() for name, sketch in sorted(aggregate.sketches.items())},
    }
    return _ENCODER.encode(document)


def decode_partial(data: bytes, *, where: str = "partial", packed_ips: bool = False) -> Aggregate:
    """Rebuild an aggregate from a binary partial; ValueError naming ``where`` if it is not one.

    ``packed_ips``: read the client tables into ``PackedIpCounts`` (no text per client), for an exact
    merge past a million clients."""
    try:
        document = _DECODER.decode(data)
    except msgspec.DecodeError as exc:
        raise ValueError(f"{where}: not a binary partial ({exc})") from None
    try:
        aggregate = _read_header(document, where)
        if document.get("encoding") != BINARY_ENCODING:
            raise ValueError(f"encoding {document.get('encoding')!r} is not {BINARY_ENCODING!r}")
        minutes = document["minutes"]
        aggregate.minute_status.update(zip(minutes["keys"], minutes["counts"], strict=True))
        texts = document["texts"]
        for status, method, origin, n in document["kinds"]:
            aggregate.kinds[int(status), texts[method], texts[origin]] += int(n)
        if packed_ips:
            aggregate.ips = PackedIpCounts.from_document(document["ips"])
            aggregate.ip_client_errors = PackedIpCounts.from_document(document["ip_client_errors"])
            aggregate.ip_server_errors = PackedIpCounts.from_document(document["ip_server_errors"])
        else:
            for table, name in zip(aggregate.client_dicts(), CLIENT_TABLES, strict=True):
                table.update(_unpack_ips(document[name], where))
        for name in ("paths", "user_agents"):
            table = document[name]
            getattr(aggregate, name).update(zip(table["keys"], table["counts"], strict=True))
        for name, parts in document["sketches"].items():
            if name not in KEY_DIMENSIONS:
                raise ValueError(f"sketch of unknown dimension {name!r}")
            aggregate.sketches[name] = KeySketch.from_bytes(parts)
    except ValueError as exc:
        if str(exc).startswith(f"{where}: "):
            raise
        raise ValueError(f"{where}: malformed partial (ValueError: {exc})") from None
    except (KeyError, TypeError, AttributeError, IndexError, OSError) as exc:
        raise ValueError(f"{where}: malformed partial ({type(exc).__name__}: {exc})") from None
    return aggregate


def is_binary_partial(data: bytes) -> bool:
    """Tell a binary partial (a msgpack map) from a JSON one (an object, perhaps after whitespace)."""
    return bool(data) and (0x80 <= data[0] <= 0x8F or data[0] in (0xDE, 0xDF))


def read_partial_bytes(data: bytes, *, where: str = "partial", packed_ips: bool = False) -> Aggregate:
    """Read a partial of either form; ValueError naming ``where`` if it is neither. ``packed_ips``: see
    ``decode_partial`` (a JSON partial is read into dicts)."""
    if is_binary_partial(data):
        return decode_partial(data, where=where, packed_ips=packed_ips)
    try:
        document = orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        raise ValueError(f"{where}: neither a binary partial nor JSON ({exc})") from None
    return aggregate_from_document(document, where=where)
