"""Per-client counters held in sorted numpy arrays: the exact merge of many partials past a million clients.

An exact merge keeps every distinct client IP with its requests, 4xx and 5xx counts. In Python dictionaries
that costs ~150 bytes a client (a str, a dict entry, its share of the index): 16 partials of a million
clients each took 2.5 GB. Here a table holds IPv4 addresses as sorted ``uint32`` and IPv6 addresses as
sorted 16-byte values (network order), each with a count array (``uint32``, widened to ``uint64`` only
if a count would not fit), and the rare other texts (scoped IPv6) in a small dict: 8 bytes an IPv4 client.
Adding a partial's table is a ``searchsorted`` and an ``insert``, linear in both sizes.

The figures read from it are those of the dict it replaces, exactly: ``len`` (distinct clients), the
top-N by count with ties by text, the median/MAD baseline and the clients above a threshold for the
anomalies, and its items as ``(canonical text, count)`` for partials and sketches (in address order,
not first-seen order; every reader sorts or sketches). Texts are made only for the keys asked for.
"""

from __future__ import annotations

import heapq
import ipaddress
import socket
from collections.abc import Iterator, Mapping
from typing import Any

import numpy as np

from logproc_analyzer.fields import parse_client_ip
from logproc_analyzer.native import optional_extension

__all__ = ["PackedIpCounts", "exact_median", "median_and_mad", "v6_text"]

_AF6 = socket.AF_INET6
_NARROW = np.dtype(np.uint32)
_WIDE = np.dtype(np.uint64)
_NARROW_MAX = int(np.iinfo(np.uint32).max)
_WIDE_MAX = int(np.iinfo(np.uint64).max)
_CHUNK = 1 << 16  # keys turned into texts at a time
# _add_sorted: below 1/8 of the table's size, binary searches beat merging the two runs (measured crossover:
# 1/4-1/8 for IPv6 keys, 1/8-1/16 for IPv4; at 1/1 the run merge takes a third to a half of the time)
_FEW_INTO_MANY = 8
# address_texts (C): the texts of a chunk of addresses in one call; _v4_text and v6_text are its Python twins.
_native = optional_extension("logproc_analyzer._native_ingest")


def v6_text(packed: bytes) -> str:
    """Return the canonical text of 16 address bytes, as ``fields.parse_client_ip`` writes it."""
    text = socket.inet_ntop(_AF6, packed)
    if "." in text:  # inet_ntop writes some embedded-IPv4 forms that Python's canonical text does not
        return parse_client_ip(str(ipaddress.IPv6Address(packed)))
    return text


def _v4_text(key: int) -> str:
    return f"{key >> 24}.{key >> 16 & 255}.{key >> 8 & 255}.{key & 255}"


def _v4_texts(keys: np.ndarray) -> list[str]:
    """Return the texts of ``uint32`` IPv4 keys."""
    if _native is None:
        return list(map(_v4_text, keys.tolist()))
    return _native.address_texts(keys.astype(">u4").tobytes(), 4)  # type: ignore[no-any-return]


def _v6_texts(keys: np.ndarray) -> list[str]:
    """Return the canonical texts of ``S16`` IPv6 keys."""
    if _native is None:
        return [v6_text(key.ljust(16, b"\0")) for key in keys.tolist()]
    raw = keys.tobytes()  # 16 bytes a key, its trailing zeros included
    texts: list[Any] = _native.address_texts(raw, 16)
    if None in texts:  # embedded IPv4 forms: Python's canonical text decides
        texts = [v6_text(raw[16 * i:16 * i + 16]) if text is None else text for i, text in enumerate(texts)]
    return texts


def _counts_array(counts: Any) -> np.ndarray:
    """Return counts as ``uint32``, or ``uint64`` where one does not fit; ValueError for a negative or too large one."""
    if not len(counts):
        return np.zeros(0, _NARROW)
    try:
        wide = np.asarray(counts, dtype=_WIDE)
    except OverflowError:
        raise ValueError("a client count is negative or past 2**64") from None
    return wide.astype(_NARROW) if int(wide.max()) <= _NARROW_MAX else wide


def _sorted_last_wins(keys: np.ndarray, counts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Sort by key; of keys given twice keep the last count, as ``dict.update`` does."""
    order = np.argsort(keys, kind="stable")
    keys, counts = keys[order], counts[order]
    if len(keys) > 1:
        last = np.append(keys[1:] != keys[:-1], True)
        if not last.all():
            keys, counts = keys[last], counts[last]
    return keys, counts


def _sorted_summed(keys: np.ndarray, counts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Sort by key, add the counts of keys given twice and drop zero counts (as a dict of ``+=`` holds)."""
    nonzero = counts != 0
    keys, counts = keys[nonzero], counts[nonzero]
    order = np.argsort(keys)  # not stable: the counts of a key given twice are added, in any order
    keys, counts = keys[order], counts[order]
    if len(keys) > 1:
        first = np.flatnonzero(np.append(True, keys[1:] != keys[:-1]))
        if len(first) < len(keys):
            keys, counts = keys[first], np.add.reduceat(counts.astype(_WIDE), first)
    return keys, _counts_array(counts)


def _add_sorted(keys: np.ndarray, counts: np.ndarray, more_keys: np.ndarray, more_counts: np.ndarray
                ) -> tuple[np.ndarray, np.ndarray]:
    """Add one sorted unique table into another (both by key); returns the new arrays."""
    if not len(more_keys):
        return keys, counts
    if not len(keys):
        return more_keys.copy(), more_counts.copy()
    top = (int(counts.max()) if len(counts) else 0) + int(more_counts.max())
    if top > _WIDE_MAX:
        raise OverflowError("a client's count passes 2**64")
    if top > _NARROW_MAX or counts.dtype != more_counts.dtype:
        counts, more_counts = counts.astype(_WIDE, copy=False), more_counts.astype(_WIDE, copy=False)
    if len(more_keys) * _FEW_INTO_MANY < len(keys):  # a few keys into many: binary searches, one insert
        position = np.searchsorted(keys, more_keys)
        found = position < len(keys)
        found[found] = keys[position[found]] == more_keys[found]
        counts[position[found]] += more_counts[found]
        new = ~found
        if new.any():
            keys = np.insert(keys, position[new], more_keys[new])
            counts = np.insert(counts, position[new], more_counts[new])
        return keys, counts
    # Tables of like sizes: a stable sort of the two sorted runs is timsort's one linear merge of them (binary
    # searches for every key cost twice as much at 250 000 IPv6 keys a side, three times for IPv4). A key in
    # both tables comes out as two neighbours, this table's first: add the second into it and drop it.
    both = np.concatenate((keys, more_keys))
    order = np.argsort(both, kind="stable")
    keys, counts = both[order], np.concatenate((counts, more_counts))[order]
    twice = np.flatnonzero(keys[1:] == keys[:-1])
    if len(twice):
        counts[twice] += counts[twice + 1]
        keep = np.ones(len(keys), bool)
        keep[twice + 1] = False
        keys, counts = keys[keep], counts[keep]
    return keys, counts


def exact_median(values: np.ndarray, *, in_place: bool = False) -> int | float:
    """``statistics.median`` of the values, exactly as it answers for a list of ints: the middle int for an odd
    count, the mean of the two middle ones as a float for an even count. ``in_place`` reorders ``values``
    instead of copying them."""
    size = len(values)
    middle = size // 2
    if not in_place:
        values = values.copy()
    if size % 2:
        values.partition(middle)
        return int(values[middle])
    values.partition((middle - 1, middle))
    return (int(values[middle - 1]) + int(values[middle])) / 2


def median_and_mad(counts: np.ndarray) -> tuple[int | float, int | float]:
    """``median = statistics.median(counts)`` and ``statistics.median(abs(c - median) for c in counts)``, the
    same values and types, in integer arithmetic on ``counts`` (reordered and overwritten: pass a copy)."""
    median = exact_median(counts, in_place=True)
    whole = int(median)
    # With a half-integer median m = k + 0.5, |c - m| = e + 0.5 where e is c - k - 1 above k, else k - c:
    # the median of the |c - m| is the median of the e plus 0.5 (a shift keeps the order).
    half = median != whole
    above = counts > whole
    np.subtract(counts, counts.dtype.type(whole + half), out=counts, where=above)
    np.subtract(counts.dtype.type(whole), counts, out=counts, where=~above)
    del above
    mad = exact_median(counts, in_place=True)
    return median, (mad + 0.5 if half else mad)


def _exact_sum(values: np.ndarray) -> int:
    """Return the sum of unsigned counts as a Python int, without a copy of the array and without wrapping."""
    if values.dtype == _NARROW:  # fewer than 2**32 values of 32 bits: the 64-bit sum cannot wrap
        return int(values.sum(dtype=np.uint64))
    total = 0
    for start in range(0, len(values), _CHUNK):  # 64-bit values: their high and low halves apart
        chunk = values[start:start + _CHUNK]
        total += (int((chunk >> np.uint64(32)).sum()) << 32) + int((chunk & np.uint64(_NARROW_MAX)).sum())
    return total


class PackedIpCounts(Mapping[str, int]):
    """Counts by client IP in sorted arrays; reads like the ``dict[str, int]`` it replaces (see the module)."""

    __slots__ = ("other", "v4", "v4_counts", "v6", "v6_counts")

    def __init__(self) -> None:
        self.v4: np.ndarray = np.zeros(0, np.uint32)
        self.v4_counts: np.ndarray = np.zeros(0, _NARROW)
        self.v6: np.ndarray = np.zeros(0, "S16")
        self.v6_counts: np.ndarray = np.zeros(0, _NARROW)
        self.other: dict[str, int] = {}

    # ------------------------------------------------------------------ building
    @classmethod
    def from_document(cls, packed: Mapping[str, Any]) -> PackedIpCounts:
        """Read a binary partial's client table (``partials._pack_ips``'s form) without making a text per key.
        ValueError if its parts differ in length or a text is not a canonical address."""
        v4, v6 = packed["v4"], packed["v6"]
        if len(v4) != 4 * len(packed["v4_counts"]) or len(v6) != 16 * len(packed["v6_counts"]) or len(
                packed["text"]) != len(packed["text_counts"]):
            raise ValueError("client IP table and its counts differ in length")
        table = cls()
        table.v4, table.v4_counts = _sorted_last_wins(np.frombuffer(v4, ">u4").astype(np.uint32),
                                                      _counts_array(packed["v4_counts"]))
        table.v6, table.v6_counts = _sorted_last_wins(np.frombuffer(v6, "S16").copy(),
                                                      _counts_array(packed["v6_counts"]))
        for ip, n in zip(packed["text"], packed["text_counts"], strict=True):
            if parse_client_ip(ip) != ip:
                raise ValueError(f"client IP {ip!r} is not in canonical form")
            table.other[ip] = n
        return table

    @classmethod
    def from_addresses(cls, v4: np.ndarray, v4_counts: np.ndarray, v6: np.ndarray, v6_counts: np.ndarray
                       ) -> PackedIpCounts:
        """Build a table from unsorted address arrays (IPv4 as ``uint32``, IPv6 as ``S16``) and their counts;
        an address given more than once has its counts added, one counted zero times is left out."""
        table = cls()
        table.v4, table.v4_counts = _sorted_summed(v4.astype(np.uint32, copy=False), v4_counts)
        table.v6, table.v6_counts = _sorted_summed(v6.astype("S16", copy=False), v6_counts)
        return table

    @classmethod
    def from_counts(cls, counts: Mapping[str, int]) -> PackedIpCounts:
        """Pack a dict of canonical IP texts (an aggregate's table)."""
        v4: list[bytes] = []
        v4_counts: list[int] = []
        v6: list[bytes] = []
        v6_counts: list[int] = []
        table = cls()
        for ip, n in counts.items():
            if ":" not in ip:
                v4.append(socket.inet_aton(ip))
                v4_counts.append(n)
            elif "%" in ip:
                table.other[ip] = n
            else:
                v6.append(socket.inet_pton(_AF6, ip))
                v6_counts.append(n)
        table.v4, table.v4_counts = _sorted_last_wins(np.frombuffer(b"".join(v4), ">u4").astype(np.uint32),
                                                      _counts_array(v4_counts))
        table.v6, table.v6_counts = _sorted_last_wins(np.frombuffer(b"".join(v6), "S16").copy(),
                                                      _counts_array(v6_counts))
        return table

    def add(self, other: PackedIpCounts | Mapping[str, int]) -> None:
        """``self[key] += count`` for every key of ``other``."""
        if not isinstance(other, PackedIpCounts):
            other = PackedIpCounts.from_counts(other)
        self.v4, self.v4_counts = _add_sorted(self.v4, self.v4_counts, other.v4, other.v4_counts)
        self.v6, self.v6_counts = _add_sorted(self.v6, self.v6_counts, other.v6, other.v6_counts)
        for ip, n in other.other.items():
            self.other[ip] = self.other.get(ip, 0) + n

    def clear(self) -> None:
        self.__init__()  # type: ignore[misc]

    # ------------------------------------------------------------------ reading
    def __len__(self) -> int:
        return len(self.v4) + len(self.v6) + len(self.other)

    def __bool__(self) -> bool:
        return len(self) > 0

    def __getitem__(self, ip: str) -> int:
        found = self.get(ip, -1)
        if found < 0:
            raise KeyError(ip)
        return found

    def __iter__(self) -> Iterator[str]:
        return (ip for ip, _count in self.items())

    def items(self) -> Iterator[tuple[str, int]]:  # type: ignore[override]
        """(canonical text, count) of every client: IPv4 then IPv6 by address, then the other texts."""
        for texts, counts in self.text_chunks():
            yield from zip(texts, counts, strict=True)

    def text_chunks(self) -> Iterator[tuple[list[str], list[int]]]:
        """Yield the clients' canonical texts and counts, a chunk at a time, in the order of ``items``."""
        for start in range(0, len(self.v4), _CHUNK):
            yield _v4_texts(self.v4[start:start + _CHUNK]), self.v4_counts[start:start + _CHUNK].tolist()
        for start in range(0, len(self.v6), _CHUNK):
            yield _v6_texts(self.v6[start:start + _CHUNK]), self.v6_counts[start:start + _CHUNK].tolist()
        if self.other:
            yield list(self.other), list(self.other.values())

    def to_dict(self) -> dict[str, int]:
        return dict(self.items())

    def to_document(self) -> dict[str, Any]:
        """Return the binary partial's client table (``partials._pack_ips``'s form), from the arrays."""
        other = list(self.other)
        return {
            "v4": self.v4.astype(">u4").tobytes(), "v4_counts": self.v4_counts.tolist(),
            "v6": self.v6.tobytes(), "v6_counts": self.v6_counts.tolist(),
            "text": other, "text_counts": [self.other[ip] for ip in other],
        }

    def all_counts(self) -> np.ndarray:
        """Every client's count in one array (for the median and totals)."""
        parts = [self.v4_counts, self.v6_counts,
                 np.asarray(list(self.other.values()), dtype=_WIDE) if self.other else np.zeros(0, _NARROW)]
        dtype = _WIDE if any(part.dtype == _WIDE for part in parts) else _NARROW
        return np.concatenate([part.astype(dtype, copy=False) for part in parts])

    def total(self) -> int:
        return _exact_sum(self.v4_counts) + _exact_sum(self.v6_counts) + sum(self.other.values())

    def at_least(self, floor: float) -> Iterator[tuple[str, int]]:
        """(text, count) of the clients whose count is at least ``floor``."""
        # A chunk at a time: at a low floor (the top-N of a day where most clients tie) millions qualify.
        for start in range(0, len(self.v4), _CHUNK):
            counts = self.v4_counts[start:start + _CHUNK]
            chosen = counts >= floor
            yield from zip(_v4_texts(self.v4[start:start + _CHUNK][chosen]), counts[chosen].tolist(), strict=True)
        for start in range(0, len(self.v6), _CHUNK):
            counts = self.v6_counts[start:start + _CHUNK]
            chosen = counts >= floor
            yield from zip(_v6_texts(self.v6[start:start + _CHUNK][chosen]), counts[chosen].tolist(), strict=True)
        yield from ((ip, n) for ip, n in self.other.items() if n >= floor)

    def get(self, ip: str, default: int = 0) -> int:  # type: ignore[override]
        """Return the count of one client (by its canonical text), or ``default``."""
        if ip in self.other:
            return self.other[ip]
        key: Any
        try:
            if ":" not in ip:
                keys, counts, key = self.v4, self.v4_counts, np.uint32(int.from_bytes(socket.inet_aton(ip), "big"))
            else:
                # An S16 array holds its values without trailing zero bytes: the key is looked up alike.
                keys, counts, key = self.v6, self.v6_counts, np.bytes_(socket.inet_pton(_AF6, ip).rstrip(b"\0"))
        except (OSError, TypeError, ValueError):  # not an address: not a key
            return default
        position = int(np.searchsorted(keys, key))
        if position < len(keys) and keys[position] == key:
            return int(counts[position])
        return default

    def top(self, n: int) -> list[tuple[str, int]]:
        """Return the n largest counts, ties broken by text: ``summary.top``'s order. Only the keys whose count
        reaches the n-th largest become texts, a chunk at a time."""
        counts = self.all_counts()
        if not len(counts) or n <= 0:
            return []
        rank = len(counts) - min(n, len(counts))
        counts.partition(rank)
        threshold = int(counts[rank])
        del counts
        return heapq.nsmallest(n, self.at_least(threshold), key=lambda item: (-item[1], item[0]))
