"""Ion → JSON in slices: the cuts, and the same bytes as one pass whatever the cuts hit."""

from __future__ import annotations

import datetime as dt
import itertools
from pathlib import Path
from typing import Any

import pytest
from amazon.ion import simpleion

from airflow_provider_logproc.consume.encoders import make_encoder
from airflow_provider_logproc.consume.envelope import ION_BINARY_VERSION_MARKER
from airflow_provider_logproc.consume.ion_json import CorruptIonError, convert_ion_to_json
from airflow_provider_logproc.consume.ion_split import convert_ion_file_to_json, plan_slices

DAY_MS = int(dt.datetime(2026, 4, 2, tzinfo=dt.UTC).timestamp() * 1000)


def write_envelopes(path: Path, encoding: str, count: int, chunk: int = 50, bad_every: int = 0) -> Path:
    """``count`` envelopes as the consume step writes them (binary: a version marker every ``chunk``)."""
    encoder = make_encoder(encoding, "string", "json")
    with path.open("wb") as out:
        out.write(encoder.preamble())
        for i in range(count):
            status = b'"bad"' if bad_every and i % bad_every == 0 else b"200"
            value = b'{"status": %s, "path": "/p/%d", "latency": 1.50, "client_ip": "10.0.0.%d"}' % (
                status, i, i % 256)
            encoder.add("logs", i % 3, i, DAY_MS + i, b"k%d" % i, value, None)
            if i % chunk == chunk - 1:
                out.write(encoder.drain())
        out.write(encoder.drain())
    return path


def one_pass(path: Path, **options: Any) -> tuple[bytes, bytes, Any]:
    out, invalid = bytearray(), bytearray()
    with path.open("rb") as handle:
        result = convert_ion_to_json(handle, out.extend, invalid.extend, **options)
    return bytes(out), bytes(invalid), result


def in_slices(path: Path, workers: int = 3, **options: Any) -> tuple[bytes, bytes, Any]:
    out, invalid = bytearray(), bytearray()
    result = convert_ion_file_to_json(str(path), out.extend, invalid.extend, workers=workers,
                                      min_slice_bytes=1, **options)
    return bytes(out), bytes(invalid), result


@pytest.mark.parametrize("encoding", ["text", "binary"])
def test_cuts_fall_on_record_starts(tmp_path, encoding):
    path = write_envelopes(tmp_path / "raw.ion", encoding, 600)
    slices = plan_slices(path, 3, min_slice_bytes=1)
    assert len(slices) == 3
    assert slices[0][0] == 0 and slices[-1][1] == path.stat().st_size
    assert all(a[1] == b[0] for a, b in itertools.pairwise(slices))
    data = path.read_bytes()
    for start, _end in slices[1:]:
        if encoding == "binary":
            assert data[start:start + 4] == ION_BINARY_VERSION_MARKER
        else:
            assert data[start - 2:start + 1] == b"}\n{"


def test_small_files_and_files_with_local_symbol_tables_are_not_cut(tmp_path):
    path = write_envelopes(tmp_path / "raw.ion", "text", 600)
    assert plan_slices(path, 2) == [(0, path.stat().st_size)]  # below the default slice size
    assert plan_slices(path, 1, min_slice_bytes=1) == [(0, path.stat().st_size)]
    with_table = tmp_path / "symbols.ion"
    with_table.write_bytes(b'$ion_symbol_table::{symbols:["x"]}\n' + b"{a:$10}\n{b:1}\n" * 100)
    assert plan_slices(with_table, 4, min_slice_bytes=1) == [(0, with_table.stat().st_size)]


@pytest.mark.parametrize("encoding", ["text", "binary"])
@pytest.mark.parametrize("options", [{}, {"unwrap_value": False}, {"validate_records": {"status": "integer"}}])
def test_slices_give_the_one_pass_bytes(tmp_path, encoding, options):
    path = write_envelopes(tmp_path / "raw.ion", encoding, 900, bad_every=7)
    expected = one_pass(path, **options)
    got = in_slices(path, **options)
    assert got[0] == expected[0]
    assert got[1] == expected[1]  # invalid records, with their indexes in the whole file
    assert got[2] == expected[2]
    if "validate_records" in options:
        assert got[2].invalid_count == 129 and got[1].count(b'{"index":896,') == 1


def test_a_cut_inside_a_multi_line_value_falls_back_to_one_pass(tmp_path, caplog):
    # "}\n{" inside an s-expression: the slice before the cut ends in an open one and fails to read.
    path = tmp_path / "sexps.ion"
    path.write_bytes(b"$ion_1_0\n" + b"({a:1}\n{b:2}\n{c:3})\n" * 200)
    assert len(plan_slices(path, 3, min_slice_bytes=1)) == 3
    assert in_slices(path, unwrap_value=False) == one_pass(path, unwrap_value=False)
    assert "converting it in one pass" in caplog.text


def test_a_version_marker_inside_a_binary_value_falls_back_to_one_pass(tmp_path, caplog):
    marker_in_blob = ION_BINARY_VERSION_MARKER * 40
    path = tmp_path / "blobs.ion"
    path.write_bytes(simpleion.dumps([{"blob": marker_in_blob, "n": i} for i in range(300)],
                                     sequence_as_stream=True))
    assert len(plan_slices(path, 3, min_slice_bytes=1)) == 3
    assert in_slices(path, unwrap_value=False) == one_pass(path, unwrap_value=False)
    assert "converting it in one pass" in caplog.text


def test_corrupt_ion_raises_the_one_pass_error(tmp_path):
    path = write_envelopes(tmp_path / "raw.ion", "text", 600)
    data = bytearray(path.read_bytes())
    data[len(data) * 2 // 3] = ord("\x01")
    path.write_bytes(bytes(data))
    with pytest.raises(CorruptIonError) as one:
        one_pass(path)
    with pytest.raises(CorruptIonError) as sliced:
        in_slices(path)
    assert str(sliced.value).replace(str(path), "input") == str(one.value)
