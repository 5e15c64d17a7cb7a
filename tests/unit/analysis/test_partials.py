"""The binary partial (version 3): same content as the JSON form, compact, read back exactly."""

from __future__ import annotations

import ipaddress
import json
import random
from pathlib import Path

import orjson
import pytest

from logproc_analyzer import analyze_lines, summarize
from logproc_analyzer.analyze import merge_aggregates
from logproc_analyzer.cli import analyze_main, merge_main
from logproc_analyzer.fields import parse_client_ip
from logproc_analyzer.partials import (
    _pack_ips,
    _unpack_ips,
    decode_partial,
    encode_partial,
    is_binary_partial,
    read_partial_bytes,
)


def _lines(n: int, seed: int = 1) -> list[bytes]:
    rng = random.Random(seed)
    ips = ["10.0.0.1", "192.0.2.77", "2001:db8::1", "::ffff:198.51.100.4", "fe80::1%eth0", "::1", "::102:304",
           "2001:db8:0:1:0:0:0:1"]
    out = []
    for i in range(n):
        out.append(orjson.dumps({
            "timestamp": f"2026-11-24T{i % 24:02d}:{i % 60:02d}:00Z", "client_ip": rng.choice(ips),
            "status": rng.choice([200, 200, 304, 404, 500]), "method": rng.choice(["GET", "POST", None]),
            "path": rng.choice(["/", "/a", None, "/é"]), "user_agent": rng.choice(["ua", None]),
            "bytes": rng.choice([10, None]), "latency_ms": rng.choice([1.5, 20, None]),
        }))
    return [*out, b"not json", b""]


def test_binary_partial_reads_back_to_the_same_summary_as_the_json_form() -> None:
    aggregate = analyze_lines(_lines(3000))
    expected = summarize(aggregate)
    binary = encode_partial(aggregate)
    as_json = orjson.dumps(aggregate.to_partial())
    assert is_binary_partial(binary) and not is_binary_partial(as_json)
    assert len(binary) < len(as_json)
    assert summarize(decode_partial(binary)) == expected
    assert summarize(read_partial_bytes(as_json)) == expected


def test_a_version_2_json_partial_is_still_read() -> None:
    aggregate = analyze_lines(_lines(500))
    document = aggregate.to_partial()
    document["version"] = 2
    del document["sketches"], document["exact_keys"]
    assert summarize(read_partial_bytes(orjson.dumps(document))) == summarize(aggregate)


@pytest.mark.parametrize("seed", range(3))
def test_ip_packing_keeps_the_canonical_text_of_every_address(seed: int) -> None:
    rng = random.Random(seed)
    texts = set()
    for _ in range(3000):
        groups = [rng.choice([0, 0, 1, 0xFFFF, rng.randrange(65536)]) for _ in range(8)]
        texts.add(parse_client_ip(str(ipaddress.IPv6Address(b"".join(g.to_bytes(2, "big") for g in groups)))))
        texts.add(str(ipaddress.IPv4Address(rng.getrandbits(32))))
    texts |= {"::ffff:1.2.3.4", "::1.2.3.4", "::", "::1", "fe80::1%eth0", "64:ff9b::c000:221"}
    texts = {parse_client_ip(text) for text in texts}
    counts = {text: i + 1 for i, text in enumerate(sorted(texts))}
    assert _unpack_ips(_pack_ips(counts), "test") == counts


def test_a_merge_of_binary_partials_equals_the_analysis_of_the_whole() -> None:
    lines = _lines(4000, seed=7)
    parts = [analyze_lines(lines[i::4], source="in") for i in range(4)]
    merged = merge_aggregates(decode_partial(encode_partial(part)) for part in parts)
    whole = summarize(analyze_lines(lines, source="in"))
    got = summarize(merged)
    for key in ("totals", "status", "per_hour", "unique_ips", "top", "latency_ms", "bytes", "methods", "anomalies"):
        assert got[key] == whole[key], key


def test_corrupt_binary_partials_are_refused_naming_the_partial() -> None:
    binary = encode_partial(analyze_lines(_lines(100)))
    with pytest.raises(ValueError, match=r"^p1: "):
        read_partial_bytes(binary[: len(binary) // 2], where="p1")
    with pytest.raises(ValueError, match=r"^p2: neither a binary partial nor JSON"):
        read_partial_bytes(b"hello", where="p2")


def test_cli_writes_binary_and_dumps_json(tmp_path: Path, capsysbinary: pytest.CaptureFixture[bytes]) -> None:
    log = tmp_path / "day.jsonl"
    log.write_bytes(b"\n".join(_lines(200)) + b"\n")
    partial = tmp_path / "partial.msgpack"
    assert analyze_main([str(log), "-o", str(partial), "--workers", "1"]) == 0
    assert is_binary_partial(partial.read_bytes())
    capsysbinary.readouterr()
    assert merge_main([str(partial), "--dump"]) == 0
    dumped = json.loads(capsysbinary.readouterr().out)
    assert dumped["version"] == 3 and dumped["lines"] + dumped["blank_lines"] == 202
    assert dumped["ips"]["::ffff:198.51.100.4"] > 0


def test_the_fast_ipv6_check_agrees_with_ipaddress() -> None:
    rng = random.Random(5)
    for _ in range(20_000):
        groups = [rng.choice([0, 0, 1, 0xFFFF, rng.randrange(65536)]) for _ in range(8)]
        address = ipaddress.IPv6Address(b"".join(g.to_bytes(2, "big") for g in groups))
        expected = f"::ffff:{address.ipv4_mapped}" if address.ipv4_mapped else str(address)
        for text in (str(address), address.exploded, address.exploded.upper(), str(address).upper()):
            assert parse_client_ip(text) == expected, text
