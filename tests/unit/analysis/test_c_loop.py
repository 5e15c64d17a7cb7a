"""The analyzer's C loop (``_native_ingest.c``) against the Python loop it replaces.

Line by line, every route is compared in test_decode_paths.py. Here: that the loop is built at all,
that its own tables (texts, minutes, kinds, latencies) give the same aggregate once they grow past
their first size, that reading a buffer span by span equals reading the lines, and that its pending
counts are never lost (flushed before reading, pickling or merging).
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
import pickle
import random
import socket
import struct
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from logproc_analyzer import aggregate as aggregate_module
from logproc_analyzer import analyze as analyze_module
from logproc_analyzer import summarize
from logproc_analyzer.aggregate import Aggregate
from logproc_analyzer.packed_ips import PackedIpCounts
from logproc_local import sample_logs

DAY = dt.date(2026, 11, 24)
native = pytest.mark.skipif(aggregate_module.native_ingest is None, reason="the C loop is not built here")


def _python_partial(lines: list[bytes], monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    with monkeypatch.context() as patch:
        patch.setattr(aggregate_module, "native_ingest", None)
        aggregate = Aggregate()
        aggregate.ingest_lines(lines, source="in")
        return aggregate.to_partial()


def _c_partial(lines: list[bytes]) -> dict[str, Any]:
    aggregate = Aggregate()
    aggregate.ingest_lines(lines, source="in")
    return aggregate.to_partial()


def test_the_c_loop_is_built_in_the_development_install() -> None:
    # setup.py builds it optionally (a machine without a compiler still installs the package); here,
    # where `make setup` installed the project, a failed build must not pass unnoticed.
    if os.environ.get("LOGPROC_PURE_PYTHON"):
        pytest.skip("LOGPROC_PURE_PYTHON set: testing the Python loop alone")
    assert aggregate_module.native_ingest is not None, (
        "analyzer/logproc_analyzer/_native_ingest.c did not build: run `make setup` and read "
        "the compiler's message")


def _varied_lines(count: int, seed: int) -> list[bytes]:
    """Many distinct IPs, paths, methods, sources, minutes and latencies: every table grows."""
    rng = random.Random(seed)
    lines = []
    for i in range(count):
        minute = rng.randrange(3 * 1440)
        ts = f"2026-11-{22 + minute // 1440:02d}T{minute % 1440 // 60:02d}:{minute % 60:02d}:" \
             f"{rng.randrange(60):02d}.{rng.randrange(1000):03d}Z"
        ip = f"10.{rng.randrange(8)}.{rng.randrange(256)}.{rng.randrange(256)}"
        status = rng.choice([200, 201, 301, 400, 404, 499, 500, 503, 599])
        fields = [f'"timestamp":"{ts}"', f'"client_ip":"{ip}"', f'"status":{status}',
                  f'"method":"M{rng.randrange(40)}"', f'"source":"s{rng.randrange(30)}"',
                  f'"path":"/p/{rng.randrange(3000)}"', f'"user_agent":"agent {rng.randrange(700)}"',
                  f'"bytes":{rng.randrange(10**6)}', f'"latency_ms":{rng.randrange(10**6) / 1000}']
        rng.shuffle(fields)
        lines.append(("{" + ",".join(fields[: rng.randrange(6, 10)]) + "}").encode())
        if i % 97 == 0:
            lines.append(b'{"timestamp":"bad","client_ip":"' + ip.encode() + b'","status":200}')
    return lines


@native
def test_tables_that_grow_give_the_same_aggregate(monkeypatch: pytest.MonkeyPatch) -> None:
    lines = _varied_lines(12_000, seed=7)
    assert _c_partial(lines) == _python_partial(lines, monkeypatch)


@native
def test_pending_counts_are_flushed_before_pickling_and_reading(monkeypatch: pytest.MonkeyPatch) -> None:
    lines = _varied_lines(2_000, seed=3)
    aggregate = Aggregate()
    buffer = b"\n".join(lines) + b"\n"
    assert aggregate.ingest_buffer(buffer, 0, len(buffer), source="in", first_line=1) == len(lines)
    copy = pickle.loads(pickle.dumps(aggregate))  # flushes on the way out
    assert copy._native_counts is None
    assert copy.to_partial() == aggregate.to_partial() == _python_partial(lines, monkeypatch)


@native
def test_the_latency_limit_still_folds_pending_latencies(monkeypatch: pytest.MonkeyPatch) -> None:
    lines = _varied_lines(3_000, seed=5)
    expected = _python_partial(lines, monkeypatch)
    monkeypatch.setattr(aggregate_module, "_LATENCY_PENDING_LIMIT", 50)
    aggregate = Aggregate()
    for start in range(0, len(lines), 500):
        chunk = b"\n".join(lines[start:start + 500]) + b"\n"
        aggregate.ingest_buffer(chunk, 0, len(chunk), source="in", first_line=start + 1)
    aggregate.flush_pending()
    assert len(aggregate._latency_pending) <= 50
    assert aggregate.to_partial() == expected


_FRACTIONS = st.one_of(st.just(""), st.builds(lambda mark, digits, length: mark + (digits * 11)[:length],
                                               st.sampled_from([".", ","]), st.sampled_from(["1", "907", "0"]),
                                               st.sampled_from([0, 1, 3, 6, 9, 10, 11])))
_ZONES = st.sampled_from(["", "Z", "z", "+05:30", "-08:00", "+0530", "-03", "+14:00", "+24:00", "+5", "Q", "+05:3"])


@settings(max_examples=150, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["2026-11-24T10:07", "2026-11-24 23:59", "2026-02-30T10:00"]),
                          st.sampled_from([":00", ":07", ":59", ":60", ":6a", ".07"]), _FRACTIONS, _ZONES),
                min_size=1, max_size=40))
def test_timestamps_of_every_fraction_and_zone_read_as_the_python_loop_reads_them(
        pieces: list[tuple[str, str, str, str]]) -> None:
    # The C loop remembers a zone's offset by the zone alone, skips the fraction itself and checks the
    # seconds itself: every valid combination must land in the Python loop's minute, every invalid one be
    # refused alike (a fraction of 10 digits, second 60, an offset past 23:59).
    lines = [f'{{"timestamp":"{prefix}{seconds}{fraction}{zone}","client_ip":"192.0.2.1","status":200}}'.encode()
             for prefix, seconds, fraction, zone in pieces]
    patch = pytest.MonkeyPatch()
    try:
        assert _c_partial(lines) == _python_partial(lines, patch)
    finally:
        patch.undo()


ODD_LINES = [b"", b"  ", b"\r", b"{bad", b"[1]", b'{"timestamp":0,"client_ip":"192.0.2.9","status":200}\r',
             b'127.0.0.1 - - [24/Nov/2026:10:00:00 +0000] "GET / HTTP/1.1" 200 5', b"\xff\xfe"]


@settings(max_examples=60, deadline=None)
@given(st.lists(st.one_of(st.sampled_from(ODD_LINES), st.integers(0, 199)), min_size=0, max_size=120),
       st.integers(1, 600), st.booleans())
def test_blocks_cut_anywhere_read_like_the_lines(picks: list[Any], block_size: int, final_newline: bool) -> None:
    pool = _varied_lines(200, seed=11)
    lines = [pool[p] if isinstance(p, int) else p for p in picks]
    content = b"\n".join(lines) + (b"\n" if final_newline and lines else b"")
    blocks = [content[i:i + block_size] for i in range(0, len(content), block_size)]
    patch = pytest.MonkeyPatch()
    try:
        expected_lines = content.split(b"\n")
        if expected_lines[-1] == b"":
            expected_lines.pop()
        expected = _python_partial(expected_lines, patch)
        for route in ("c", "python"):
            if route == "python":
                patch.setattr(aggregate_module, "native_ingest", None)
            aggregate = Aggregate()
            assert analyze_module.ingest_blocks(aggregate, blocks, "in") == len(expected_lines)
            assert aggregate.to_partial() == expected, route
    finally:
        patch.undo()


def test_sample_logs_give_the_same_aggregate_on_both_loops(monkeypatch: pytest.MonkeyPatch) -> None:
    lines = [r.value for r in sample_logs.generate(DAY, 5000, seed=2, bad_share=0.05)]
    assert _c_partial(lines) == _python_partial(lines, monkeypatch)


@native
def test_merging_unflushed_aggregates_loses_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    lines = _varied_lines(1_000, seed=9)
    halves = []
    for part in (lines[:500], lines[500:]):
        aggregate = Aggregate()
        buffer = b"\n".join(part) + b"\n"
        aggregate.ingest_buffer(buffer, 0, len(buffer), source="in", first_line=1)
        halves.append(aggregate)
    merged = halves[0].merge(halves[1])
    whole = Aggregate()
    whole.ingest_lines(lines, source="in")
    assert merged.to_partial()["ips"] == whole.to_partial()["ips"]
    assert merged.valid == whole.valid


@native
def test_a_text_table_past_its_limit_starts_afresh_without_losing_counts(monkeypatch: pytest.MonkeyPatch) -> None:
    assert aggregate_module.native_ingest is not None
    lines = _varied_lines(6_000, seed=13)
    aggregate = Aggregate()
    aggregate._native_counts = aggregate_module.native_ingest.Counts(text_limit=64)  # thousands of texts
    buffer = b"\n".join(lines) + b"\n"
    aggregate.ingest_buffer(buffer, 0, len(buffer), source="in", first_line=1)
    assert aggregate.to_partial() == _python_partial(lines, monkeypatch)
    with pytest.raises(ValueError, match="text_limit"):
        aggregate_module.native_ingest.Counts(text_limit=0)


def test_an_iterable_of_lines_is_read_in_slices_like_a_list(monkeypatch: pytest.MonkeyPatch) -> None:
    lines = _varied_lines(700, seed=17)
    monkeypatch.setattr(aggregate_module, "_LINES_PER_CHUNK", 64)
    aggregate = Aggregate()
    aggregate.ingest_lines(iter(lines), source="in", first_line=10)
    as_list = Aggregate()
    as_list.ingest_lines(lines, source="in", first_line=10)
    assert aggregate.to_partial() == as_list.to_partial()
    assert [entry.line for entry in aggregate.invalid_sample] == [entry.line for entry in as_list.invalid_sample]


# Texts near the canonical forms: the C check must never accept one that parse_client_ip rewrites or refuses.
NEAR_IPS = ["1.2.3.4", "0.0.0.0", "255.255.255.255", "256.1.1.1", "01.2.3.4", "1.2.3.04", "1.2.3", "1.2.3.4.5",
            "1..3.4", "1.2.3.4 ", " 1.2.3.4", "\uff11.2.3.4", "::", "::1", "2001:db8::1", "2001:DB8::1", "2001:0db8::1",
            "2001:db8:0:0:0:0:0:1", "2001:db8::0:1", "::ffff:1.2.3.4", "::ffff:102:304", "fe80::1%eth0",
            "1:2:3:4:5:6:7:8", "1:2:3:4:5:6:7::", "1::2::3", ":::", "1:2:3:4:5:6:7:8:9", "::1\x00", "gggg::1"]


def _canonical_by_python(text: str) -> bool:
    from logproc_analyzer.fields import FieldError, parse_client_ip

    try:
        return parse_client_ip(text) == text
    except FieldError:
        return False


@native
@settings(max_examples=400, deadline=None)
@given(st.one_of(st.sampled_from(NEAR_IPS), st.ip_addresses().map(str),
                 st.ip_addresses(v=6).map(lambda a: a.exploded),
                 st.text(alphabet="0123456789abcdefABCDEF:.%", max_size=45)))
def test_the_c_ip_check_accepts_only_what_parse_client_ip_keeps(text: str) -> None:
    assert aggregate_module.native_ingest is not None
    if aggregate_module.native_ingest.canonical_ip(text):
        assert _canonical_by_python(text), text


def _packed_c_loop(lines: list[bytes]) -> tuple[Any, Aggregate]:
    """Run the C loop over ``lines`` with a Counts made for a part bound for the parent (packed_ips), flushed."""
    assert aggregate_module.native_ingest is not None
    counts = aggregate_module.native_ingest.Counts(packed_ips=True)
    aggregate = Aggregate()
    aggregate_module.native_ingest.ingest(
        counts, aggregate, lines, 0, 0, 1, aggregate_module.mapped_keys(aggregate.mapping),
        aggregate_module.record_decoder(aggregate.mapping).decode, aggregate._minute_of,  # type: ignore[union-attr]
        lambda lineno, line: aggregate._normalize_or_keep("in", lineno, line), aggregate_module.EPOCH_MS_THRESHOLD)
    counts.flush(aggregate)
    return counts, aggregate


# IPv6 addresses with runs of zero groups of every length and place (where the canonical text's '::' goes).
SPARSE_IPV6 = st.lists(st.sampled_from([0, 0, 0, 0, 1, 0x0a, 0xff]), min_size=16, max_size=16).map(bytes)


@native
@settings(max_examples=400, deadline=None)
@given(st.one_of(SPARSE_IPV6, st.binary(min_size=16, max_size=16)))
def test_the_c_ip_check_decides_every_canonical_ipv6_text_but_the_embedded_ipv4_forms(packed: bytes) -> None:
    # The C check formats the address itself (ipv6_text) and compares: it must say yes to Python's canonical
    # text of every address except those inet_ntop writes with a dotted quad (first 80 bits zero), and with
    # those it must leave the answer to Python.
    assert aggregate_module.native_ingest is not None
    text = str(ipaddress.IPv6Address(packed))
    decided = aggregate_module.native_ingest.canonical_ip(text)
    if any(packed[:10]):
        assert decided, text
    elif decided:
        assert _canonical_by_python(text), text


@native
@settings(max_examples=200, deadline=None)
@given(st.lists(st.one_of(SPARSE_IPV6, st.binary(min_size=16, max_size=16)), min_size=1, max_size=20))
def test_the_c_loop_counts_each_canonical_ipv6_text_under_its_address(addresses: list[bytes]) -> None:
    # The one-pass parser's bytes: each line's client must come back as the address its text names.
    lines = [f'{{"timestamp":"2026-11-24T10:00:00Z","client_ip":"{ipaddress.IPv6Address(raw)}","status":200}}'.encode()
             for raw in addresses]
    counts, aggregate = _packed_c_loop(lines)
    _v4, v6 = counts.take_ips()
    packed = {v6[i:i + 16]: struct.unpack("=I", v6[i + 16:i + 20])[0] for i in range(0, len(v6), 28)}
    in_python = {socket.inet_pton(socket.AF_INET6, ip): n for ip, n in aggregate.ips.items()}  # undecided forms
    assert {**packed, **in_python} == {raw: addresses.count(raw) for raw in addresses}
    assert not set(packed) & set(in_python)


@native
def test_the_c_ip_check_decides_the_common_addresses() -> None:
    assert aggregate_module.native_ingest is not None
    for text in ("192.0.2.1", "10.0.0.255", "2001:db8::1", "fe80::a:b:c:d", "::1"):
        assert aggregate_module.native_ingest.canonical_ip(text), text
    for text in NEAR_IPS:  # whatever it leaves undecided, Python decides: both answers agree where it decides
        if aggregate_module.native_ingest.canonical_ip(text):
            assert _canonical_by_python(text), text


@native
def test_many_ipv4_and_ipv6_clients_count_the_same_on_both_loops(monkeypatch: pytest.MonkeyPatch) -> None:
    rng = random.Random(23)
    lines = []
    for i in range(6_000):
        ip = rng.choice([f"10.{i % 7}.{i % 251}.{i % 253}", f"2001:db8::{i:x}", f"2001:DB8::{i:x}",
                         f"2001:db8:0:0:0:0:0:{i % 9}", f"::ffff:10.0.0.{i % 256}", f"010.0.0.{i % 9}",
                         "not-an-ip", f"fe80::{i % 5}%eth0"])
        lines.append(f'{{"timestamp":"2026-11-24T10:{i % 60:02d}:00Z","client_ip":"{ip}",'
                     f'"status":{rng.choice([200, 404, 503])}}}'.encode())
    assert _c_partial(lines) == _python_partial(lines, monkeypatch)


def _mixed_client_lines(count: int, seed: int) -> list[bytes]:
    """IPv4, IPv6 (some ending in a zero byte), texts the slow path rewrites or refuses, scoped IPv6; errors."""
    rng = random.Random(seed)
    lines = []
    for i in range(count):
        ip = rng.choice([f"10.{i % 7}.{i % 251}.{i % 253}", f"2001:db8::{i % 997:x}00", f"2001:DB8::{i % 50:x}",
                         f"2001:db8:0:0:0:0:0:{i % 9}", f"::ffff:10.0.0.{i % 256}", f"010.0.0.{i % 9}",
                         "not-an-ip", f"fe80::{i % 5}%eth0", "0.0.0.0", "255.255.255.255", "::"])
        lines.append(f'{{"timestamp":"2026-11-24T10:{i % 60:02d}:00Z","client_ip":"{ip}",'
                     f'"status":{rng.choice([200, 404, 499, 503])}}}'.encode())
    return lines


def _python_client_tables(lines: list[bytes], monkeypatch: pytest.MonkeyPatch) -> list[dict[str, int]]:
    with monkeypatch.context() as patch:
        patch.setattr(aggregate_module, "native_ingest", None)
        aggregate = Aggregate()
        aggregate.ingest_lines(lines, source="in")
        return [dict(aggregate.ips), dict(aggregate.ip_client_errors), dict(aggregate.ip_server_errors)]


@native
@pytest.mark.parametrize(("text_limit", "address_limit"), [(None, None), (7, None), (None, 3)])
def test_packed_clients_of_the_c_loop_equal_the_python_loops_dicts(monkeypatch: pytest.MonkeyPatch,
                                                                    text_limit: int | None,
                                                                    address_limit: int | None) -> None:
    # A part bound for the parent (packed_clients): the C loop counts canonical addresses by their bytes and
    # hands them over as packed records, the others (and the slow path's) go to the dicts; finish() adds both.
    # A small text table flushes many times; a small address table goes to the records many times, so an
    # address comes back in several records.
    assert aggregate_module.native_ingest is not None
    lines = _mixed_client_lines(5_000, seed=29)
    aggregate = Aggregate(packed_clients=True)
    if text_limit is not None or address_limit is not None:
        aggregate._native_counts = aggregate_module.native_ingest.Counts(
            text_limit=text_limit or 1 << 19, address_limit=address_limit or 1 << 20, packed_ips=True)
    for start in range(0, len(lines), 1_000):  # several buffers, one flush at the end (as ingest_blocks does)
        chunk = b"\n".join(lines[start:start + 1_000]) + b"\n"
        aggregate.ingest_buffer(chunk, 0, len(chunk), source="in", first_line=start + 1)
    aggregate.finish()
    tables = [aggregate.ips, aggregate.ip_client_errors, aggregate.ip_server_errors]
    assert all(isinstance(table, PackedIpCounts) for table in tables)
    assert [dict(table) for table in tables] == _python_client_tables(lines, monkeypatch)
    assert isinstance(aggregate.ips, PackedIpCounts)
    assert len(aggregate.ips.v4) and len(aggregate.ips.v6) and aggregate.ips.other  # every kind was there
    copy = pickle.loads(pickle.dumps(aggregate))  # as a worker returns it
    assert copy.to_partial() == aggregate.to_partial() == _python_partial(lines, monkeypatch)


@native
def test_packed_records_name_each_address_in_network_order() -> None:
    lines = [b'{"timestamp":"2026-11-24T10:00:00Z","client_ip":"192.0.2.10","status":404}',
             b'{"timestamp":"2026-11-24T10:00:00Z","client_ip":"192.0.2.10","status":200}',
             b'{"timestamp":"2026-11-24T10:00:00Z","client_ip":"2001:db8::100","status":503}']
    counts, aggregate = _packed_c_loop(lines)
    v4, v6 = counts.take_ips()
    assert v4 == bytes([192, 0, 2, 10]) + struct.pack("=3I", 2, 1, 0)
    assert v6 == socket.inet_pton(socket.AF_INET6, "2001:db8::100") + struct.pack("=3I", 1, 0, 1)
    assert dict(aggregate.ips) == {} and counts.take_ips() == (b"", b"")  # taken once
    assert aggregate.valid == 3


def test_the_workers_packed_parts_merge_to_the_single_process_summary(tmp_path: Path,
                                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    lines = _mixed_client_lines(20_000, seed=31)
    lines += [b'{"timestamp":"2026-11-24T11:00:00Z","client_ip":"2001:db8::100","status":503}'] * 400
    path = tmp_path / "day.jsonl"
    path.write_bytes(b"\n".join(lines) + b"\n")
    monkeypatch.setattr(analyze_module, "SPLIT_MIN_BYTES", 1)  # two parts, each packed in its worker
    parallel = analyze_module.analyze_paths([path], workers=2)
    assert isinstance(parallel.ips, PackedIpCounts)
    whole = analyze_module.analyze_lines(lines, source=str(path))
    ours, expected = summarize(parallel), summarize(whole)
    differing = {key for key in ours if ours[key] != expected.get(key)}
    assert differing <= {"field_mappings", "mapping", "detection"}, differing
    assert ours["anomalies"]["ips"] and ours["top"] == expected["top"]


def test_workers_sketch_ahead_when_their_parts_could_pass_the_bound(tmp_path: Path,
                                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    # Two parts of ~1 500 clients each, the bound 2 000: each worker sketches its clients ahead (more than
    # 2 000 / 2), the merged 3 000 pass the bound and the parent unites the two sketches (no key fed there).
    lines = [f'{{"timestamp":"2026-11-24T10:{i % 60:02d}:00Z","client_ip":"10.1.{i // 250}.{i % 250}",'
             f'"status":{404 if i % 7 == 0 else 200},"path":"/{i % 3}"}}'.encode() for i in range(3_000)]
    path = tmp_path / "day.jsonl"
    path.write_bytes(b"\n".join(lines) + b"\n")
    monkeypatch.setattr(analyze_module, "SPLIT_MIN_BYTES", 1)
    fed: list[int] = []
    original_input = analyze_module.Aggregate._sketch_input

    def counting_input(self: Aggregate, name: str) -> Any:
        found = original_input(self, name)
        fed.append(len(found[0]))
        return found

    monkeypatch.setattr(analyze_module.Aggregate, "_sketch_input", counting_input)
    parallel = analyze_module.analyze_paths([path], workers=2, exact_keys=2_000)
    assert "ips" in parallel.sketches
    assert fed == []  # in the parent: the workers (other processes) fed their own parts
    whole = summarize(analyze_module.analyze_paths([path], workers=1, exact_keys=2_000))
    ours = summarize(parallel)
    estimate = ours["accuracy"]["estimates"]["distinct_ips"]
    assert estimate["lower_bound"] <= 3_000 <= estimate["upper_bound"]
    assert ours["totals"] == whole["totals"] and ours["top"]["paths"] == whole["top"]["paths"]
