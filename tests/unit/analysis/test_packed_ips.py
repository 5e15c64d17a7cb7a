"""Packed client tables (``packed_ips.py``) against the dicts they replace in an exact merge: the same summary."""

from __future__ import annotations

import ipaddress
import random
import socket
import statistics
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from logproc_analyzer import aggregate as aggregate_module
from logproc_analyzer import analyze_lines, summarize
from logproc_analyzer.aggregate import Aggregate
from logproc_analyzer.analyze import merge_aggregates, merge_partial_files
from logproc_analyzer.fields import parse_client_ip
from logproc_analyzer.packed_ips import PackedIpCounts, median_and_mad
from logproc_analyzer.partials import decode_partial, encode_partial
from logproc_analyzer.summary import top


def _line(ip: str, status: int, minute: int) -> str:
    return f'{{"timestamp":"2026-11-24T{minute // 60:02d}:{minute % 60:02d}:00Z","client_ip":"{ip}","status":{status}}}'


def _client(rng: random.Random, part: int) -> str:
    n = rng.randrange(3000)
    shape = n % 6
    if shape == 0:
        return f"2001:db8::{n:x}"
    if shape == 1:
        return f"::ffff:10.0.{n % 256}.{part}"  # an IPv4-mapped address: its own canonical text
    if shape == 2 and n % 5 == 0:
        return f"fe80::{n % 7:x}%eth{part}"  # scoped: kept as text
    return f"10.{part}.{n >> 8 & 255}.{n & 255}"


def _parts(count: int = 4, lines_per_part: int = 4000) -> list[bytes]:
    rng = random.Random(41)
    blobs = []
    for part in range(count):
        lines = [_line(_client(rng, part), rng.choice([200, 200, 200, 404, 503]), rng.randrange(1440))
                 for _ in range(lines_per_part)]
        lines += [_line("10.9.9.9", 200, i % 1440) for i in range(400 + part)]  # a heavy client
        lines += [_line("2001:db8::bad", 500, i) for i in range(30)]  # a failing client
        aggregate = analyze_lines(lines, source=f"part-{part}")
        aggregate.exact_keys = 10**9
        blobs.append(encode_partial(aggregate))
    return blobs


def _merged(blobs: list[bytes], *, packed: bool) -> Aggregate:
    return merge_aggregates((decode_partial(blob, packed_ips=packed) for blob in blobs), exact_keys=10**9)


def test_a_packed_exact_merge_summarises_as_the_dict_merge(monkeypatch: pytest.MonkeyPatch) -> None:
    blobs = _parts()
    as_dicts = _merged(blobs, packed=False)
    expected, expected_ips = summarize(as_dicts), as_dicts.to_partial()["ips"]
    assert expected["anomalies"]["ips"], "the corpus should have client anomalies to compare"
    monkeypatch.setattr(aggregate_module, "PACKED_CLIENTS_FROM", 10)
    for packed in (False, True):  # packed by the merge once past the size, or read packed from the start
        merged = _merged(blobs, packed=packed)
        assert isinstance(merged.ips, PackedIpCounts)
        assert summarize(merged) == expected
        assert merged.to_partial()["ips"] == expected_ips
        # and its binary partial reads back to the same figures
        assert summarize(decode_partial(encode_partial(merged))) == expected


@pytest.mark.parametrize("bound", [None, 10**9])
def test_merge_partial_files_reads_the_client_tables_packed(tmp_path: Path, bound: int | None) -> None:
    # What the report step and logproc-merge read: the same summary as the partials read into dicts.
    blobs = _parts(3, 2000)
    paths = []
    for index, blob in enumerate(blobs):
        path = tmp_path / f"part-{index}.msgpack"
        path.write_bytes(blob)
        paths.append(path)
    expected = summarize(merge_aggregates((decode_partial(blob) for blob in blobs), exact_keys=bound))
    merged = merge_partial_files(paths, exact_keys=bound)
    assert isinstance(merged.ips, PackedIpCounts)
    assert summarize(merged) == expected


def test_a_packed_merge_past_the_bound_still_sketches(monkeypatch: pytest.MonkeyPatch) -> None:
    blobs = _parts(3, 2000)
    monkeypatch.setattr(aggregate_module, "PACKED_CLIENTS_FROM", 10)
    merged = merge_aggregates((decode_partial(blob, packed_ips=True) for blob in blobs), exact_keys=500)
    assert "ips" in merged.sketches and not merged.ips
    estimate = summarize(merged)["accuracy"]["estimates"]["distinct_ips"]
    monkeypatch.undo()
    distinct = len(_merged(blobs, packed=False).ips)
    assert estimate["lower_bound"] <= distinct <= estimate["upper_bound"]


@settings(max_examples=200, deadline=None)
@given(st.lists(st.integers(0, 2**32 - 1), min_size=1, max_size=60))
def test_median_and_mad_equal_the_statistics_module(counts: list[int]) -> None:
    median = statistics.median(counts)
    mad = statistics.median(abs(c - median) for c in counts)
    got = median_and_mad(np.asarray(counts, dtype=np.uint32))
    assert got == (median, mad)
    assert [type(value) for value in got] == [type(median), type(mad)]


def test_top_breaks_ties_by_text_as_the_dict_top_does() -> None:
    counts = {f"10.0.{i % 3}.{i}": 1 + i % 4 for i in range(200)} | {"2001:db8::1": 4, "::1": 4}
    packed = PackedIpCounts.from_counts(counts)
    for n in (1, 5, 10, 300):
        assert top(packed, n) == top(counts, n)


def test_counts_widen_past_32_bits_and_lookups_agree() -> None:
    table = PackedIpCounts.from_counts({"10.0.0.1": 2**32 - 1, "2001:db8::1": 5})
    table.add({"10.0.0.1": 7, "10.0.0.2": 1, "fe80::1%eth0": 3})
    assert table.to_dict() == {"10.0.0.1": 2**32 + 6, "10.0.0.2": 1, "2001:db8::1": 5, "fe80::1%eth0": 3}
    assert table.get("10.0.0.1") == 2**32 + 6 and table.get("10.0.0.3", -1) == -1 and table.get("2001:db8::1") == 5
    assert table.total() == 2**32 + 15 and len(table) == 4
    with pytest.raises(ValueError, match="negative"):
        PackedIpCounts.from_document({"v4": b"\n\0\0\1", "v4_counts": [-1], "v6": b"", "v6_counts": [],
                                      "text": [], "text_counts": []})


def test_a_packed_table_reads_as_a_mapping() -> None:
    counts = {"10.0.0.1": 3, "2001:db8::1": 2, "fe80::1%eth0": 1}
    table = PackedIpCounts.from_counts(counts)
    assert dict(table) == counts and table == counts
    assert "10.0.0.1" in table and "10.0.0.9" not in table and "not an ip" not in table
    with pytest.raises(KeyError):
        table["10.0.0.9"]


def test_an_ipv6_key_ending_in_a_zero_byte_is_found() -> None:
    # An S16 array holds values without their trailing zero bytes; the lookup must compare alike.
    counts = {"2001:db8::7000": 4, "2001:db8::": 2, "::": 1, "2001:db8::70": 3}
    table = PackedIpCounts.from_counts(counts)
    assert {ip: table[ip] for ip in counts} == counts and dict(table) == counts


def test_from_addresses_adds_repeated_addresses_and_leaves_out_zero_counts() -> None:
    v4 = np.array([0x0A000002, 0x0A000001, 0x0A000002, 0x0A000003], np.uint32)
    v6 = np.array([socket.inet_pton(socket.AF_INET6, ip) for ip in ("2001:db8::100", "::", "2001:db8::100")], "S16")
    table = PackedIpCounts.from_addresses(v4, np.array([1, 2, 3, 0], np.uint32), v6, np.array([5, 1, 2], np.uint32))
    assert table.to_dict() == {"10.0.0.1": 2, "10.0.0.2": 4, "::": 1, "2001:db8::100": 7}
    assert list(table.v4) == sorted(table.v4) and len(table) == 4


_FEW_ADDRESSES = st.one_of(st.integers(0, 40).map(lambda n: f"10.0.0.{n}"),
                           st.integers(1, 40).map(lambda n: f"2001:db8::{n:x}00"))  # some IPv6 ending in zeros


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(_FEW_ADDRESSES, st.integers(1, 2**32 - 1), max_size=60),
       st.dictionaries(_FEW_ADDRESSES, st.integers(1, 2**32 - 1), max_size=60))
def test_adding_tables_of_any_sizes_equals_adding_the_dicts(mine: dict[str, int], theirs: dict[str, int]) -> None:
    # _add_sorted merges tables of like sizes as two sorted runs and adds a few keys into many by binary
    # searches: both must give the dict's sums (counts past 2**32 widened), keys in address order.
    table = PackedIpCounts.from_counts(mine)
    table.add(PackedIpCounts.from_counts(theirs))
    expected = {ip: mine.get(ip, 0) + theirs.get(ip, 0) for ip in mine.keys() | theirs.keys()}
    assert table.to_dict() == expected
    assert list(table.v4) == sorted(table.v4) and list(table.v6) == sorted(table.v6)


EMBEDDED_V4 = [bytes(16), bytes(15) + b"\1", bytes(10) + b"\xff\xff\1\2\3\4", bytes(12) + b"\1\2\3\4",
               bytes(8) + b"\xff\xff\0\0\11\11\11\11", b"\0\x64\xff\x9b" + bytes(8) + b"\1\2\3\4"]


@settings(max_examples=200, deadline=None)
@given(st.lists(st.integers(0, 2**32 - 1), max_size=50),
       st.lists(st.one_of(st.binary(min_size=16, max_size=16), st.sampled_from(EMBEDDED_V4),
                          st.lists(st.sampled_from([0, 0, 0, 1, 0xff]), min_size=16, max_size=16).map(bytes)),
                max_size=50))
def test_the_c_texts_of_addresses_equal_the_python_ones(v4: list[int], v6: list[bytes]) -> None:
    # The texts made to feed the sketches and to name the top clients: the C twin against the Python one.
    from logproc_analyzer import packed_ips

    v4_keys, v6_keys = np.array(v4, np.uint32), np.array(v6, "S16")
    expected = ([f"{n >> 24}.{n >> 16 & 255}.{n >> 8 & 255}.{n & 255}" for n in v4],
                [parse_client_ip(str(ipaddress.IPv6Address(raw))) for raw in v6])  # the canonical text
    assert (packed_ips._v4_texts(v4_keys), packed_ips._v6_texts(v6_keys)) == expected
    patch = pytest.MonkeyPatch()
    try:
        patch.setattr(packed_ips, "_native", None)
        assert (packed_ips._v4_texts(v4_keys), packed_ips._v6_texts(v6_keys)) == expected
    finally:
        patch.undo()
