"""Reading files: gzip, CLF auto-detection, byte-range splitting over workers, unusable inputs."""

from __future__ import annotations

import datetime as dt
import gzip
import os
import subprocess
import sys
from pathlib import Path

import pytest

from logproc_analyzer import InputError, analyze_lines, analyze_paths
from logproc_analyzer import analyze as analyze_module
from logproc_local import sample_logs

DAY = dt.date(2026, 11, 24)


def _json_lines(count: int, *, seed: int = 1, bad_share: float = 0.02) -> list[bytes]:
    return [r.value for r in sample_logs.generate(DAY, count, seed=seed, bad_share=bad_share)]


def _comparable(partial: dict) -> dict:
    """Without what names the input file."""
    sample = [{k: v for k, v in entry.items() if k != "source"} for entry in partial["invalid_sample"]]
    return {**{k: v for k, v in partial.items() if k != "inputs"}, "invalid_sample": sample}


def test_gzip_is_read_transparently_whatever_the_name(tmp_path: Path) -> None:
    lines = _json_lines(2000)
    plain = tmp_path / "day.jsonl"
    plain.write_bytes(b"\n".join(lines) + b"\n")
    packed = tmp_path / "day.jsonl.gz"
    packed.write_bytes(gzip.compress(plain.read_bytes()))
    misnamed = tmp_path / "day.log"  # gzip content without the suffix: detected by its magic bytes
    misnamed.write_bytes(packed.read_bytes())
    expected = _comparable(analyze_paths([plain], workers=1).to_partial())
    assert _comparable(analyze_paths([packed], workers=1).to_partial()) == expected
    assert _comparable(analyze_paths([misnamed], workers=1).to_partial()) == expected
    inputs = analyze_paths([packed], workers=1).inputs
    assert inputs == [{"name": str(packed), "compressed": True, "lines": 2000, "blank_lines": 0, "invalid": 40}]


def test_byte_range_split_over_workers_equals_one_process(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    lines = _json_lines(3000, bad_share=0.0)
    lines[2500:2505] = [b"{bad"] * 5
    path = tmp_path / "day.jsonl"
    path.write_bytes(b"\n".join(lines))  # no final newline: the last line still counts
    one = analyze_paths([path], workers=1)
    monkeypatch.setattr(analyze_module, "SPLIT_MIN_BYTES", 1)
    monkeypatch.setattr(analyze_module, "CHUNK_BYTES", 4096)  # many blocks per range, lines cut across blocks
    tasks = analyze_module._plan([str(path)], 3)
    assert len(tasks) == 3
    assert tasks[0].start == 0 and tasks[-1].end == path.stat().st_size
    content = path.read_bytes()
    assert all(content[task.start - 1:task.start] == b"\n" for task in tasks[1:])
    split = analyze_paths([path], workers=3)
    assert split.to_partial() == one.to_partial()
    # Invalid-line numbers refer to the whole file, not to a worker's range.
    assert [e.line for e in split.invalid_sample] == [e.line for e in one.invalid_sample]
    assert [e.line for e in split.invalid_sample if e.text == "{bad"] == [2501, 2502, 2503, 2504, 2505]


def test_clf_files_and_crlf_and_blank_lines(tmp_path: Path) -> None:
    records = list(sample_logs.generate(DAY, 500, seed=2, bad_share=0.02))
    clf = [sample_logs.to_combined_log_line(r.fields, r.timestamp_ms).encode() if r.fields else r.value
           for r in records]
    path = tmp_path / "access.log"
    path.write_bytes(b"\r\n".join(clf) + b"\r\n\r\n")
    aggregate = analyze_paths([path], workers=1)
    assert aggregate.lines == 500
    assert aggregate.blank_lines == 1
    assert aggregate.valid == 490
    assert aggregate.invalid == 10
    good = [r.fields for r in records if r.fields]
    assert sum(aggregate.ips.values()) == len(good)
    assert aggregate.bytes_total == sum(fields["bytes"] for fields in good)


def test_mixed_inputs_keep_their_own_line_numbers(tmp_path: Path) -> None:
    first = tmp_path / "a.jsonl"
    second = tmp_path / "b.jsonl"
    first.write_bytes(b'{"bad"\n')
    second.write_bytes(b'{"timestamp": 0, "client_ip": "192.0.2.1", "status": 200}\n{"bad"\n')
    aggregate = analyze_paths([first, second], workers=2)
    assert [(e.source, e.line) for e in aggregate.invalid_sample] == [(str(first), 1), (str(second), 2)]
    assert [i["name"] for i in aggregate.inputs] == [str(first), str(second)]


def test_unusable_inputs_raise_input_error_naming_the_input(tmp_path: Path) -> None:
    with pytest.raises(InputError, match=r"missing\.jsonl: no such file"):
        analyze_paths([tmp_path / "missing.jsonl"])
    with pytest.raises(InputError, match="is a directory"):
        analyze_paths([tmp_path])
    corrupt = tmp_path / "corrupt.jsonl.gz"
    corrupt.write_bytes(gzip.compress(b'{"a": 1}\n' * 1000)[:-30])  # truncated stream
    with pytest.raises(InputError, match=r"corrupt\.jsonl\.gz: cannot be read"):
        analyze_paths([corrupt], workers=1)
    unreadable = tmp_path / "secret.jsonl"
    unreadable.write_bytes(b"{}\n")
    unreadable.chmod(0)
    try:
        open(unreadable, "rb").close()
    except PermissionError:
        with pytest.raises(InputError, match=r"secret\.jsonl: cannot be read"):
            analyze_paths([unreadable], workers=1)


def test_empty_file_is_a_usable_input(tmp_path: Path) -> None:
    empty = tmp_path / "empty.jsonl"
    empty.write_bytes(b"")
    aggregate = analyze_paths([empty])
    assert aggregate.lines == 0
    assert aggregate.inputs[0]["lines"] == 0


def test_analyze_lines_accepts_text() -> None:
    assert analyze_lines(['{"timestamp": 0, "client_ip": "192.0.2.1", "status": 200}']).valid == 1


def test_the_same_file_twice_counts_twice_with_its_own_line_numbers(tmp_path: Path) -> None:
    path = tmp_path / "a.jsonl"
    path.write_bytes(b'{"timestamp": 0, "client_ip": "192.0.2.1", "status": 200}\n{"bad"\n')
    aggregate = analyze_paths([path, path], workers=2)
    assert aggregate.valid == 2
    assert [(e.source, e.line) for e in aggregate.invalid_sample] == [(str(path), 2), (str(path), 2)]
    assert len(aggregate.inputs) == 2


def test_input_errors_survive_the_trip_from_a_worker_process() -> None:
    import pickle

    error = pickle.loads(pickle.dumps(InputError("x.gz", "cannot be read: truncated")))
    assert (error.path, error.problem, str(error)) == ("x.gz", "cannot be read: truncated",
                                                      "x.gz: cannot be read: truncated")


def test_a_byte_order_mark_is_ignored() -> None:
    line = b'\xef\xbb\xbf{"timestamp": 0, "client_ip": "192.0.2.1", "status": 200}'
    assert analyze_lines([line]).valid == 1


def test_every_invalid_line_is_kept_aside_with_whole_file_line_numbers(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import base64

    import orjson

    lines = _json_lines(3000, bad_share=0.0)
    bad_positions = [10, 1700, 2999]
    for position in bad_positions:
        lines[position] = b"\xff\xfe broken " + str(position).encode()
    path = tmp_path / "day.jsonl"
    path.write_bytes(b"\n".join(lines) + b"\n")
    monkeypatch.setattr(analyze_module, "SPLIT_MIN_BYTES", 1)
    quarantine = tmp_path / "invalid.jsonl"
    aggregate = analyze_paths([path, path], workers=3, invalid_output=quarantine)
    entries = [orjson.loads(line) for line in quarantine.read_bytes().splitlines()]
    assert [e["line"] for e in entries] == [p + 1 for p in bad_positions] * 2
    assert aggregate.invalid == len(entries) == 6
    assert all(e["reason"] == "not_utf8" and e["source"] == str(path) for e in entries)
    assert base64.b64decode(entries[1]["raw_base64"]) == b"\xff\xfe broken 1700"
    assert sorted(tmp_path.iterdir()) == sorted([path, quarantine])  # no task parts left behind


def test_a_line_too_long_is_counted_and_skipped_without_holding_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(analyze_module, "CHUNK_BYTES", 1000)
    monkeypatch.setattr(analyze_module, "MAX_LINE_BYTES", 2500)
    good = b'{"timestamp": 0, "client_ip": "192.0.2.1", "status": 200}'
    path = tmp_path / "x.log"
    path.write_bytes(b"\n".join([good, b"x" * 10_000, good, b"y" * 2400, b"z" * 5000]))  # no final newline
    aggregate = analyze_paths([path], workers=1)
    assert aggregate.lines == 5
    assert aggregate.valid == 2
    assert dict(aggregate.invalid_reasons) == {"line_too_long": 2, "unrecognised_line": 1}
    assert [(e.line, e.reason) for e in aggregate.invalid_sample] == [
        (2, "line_too_long"), (4, "unrecognised_line"), (5, "line_too_long")]
    monkeypatch.setattr(analyze_module, "SPLIT_MIN_BYTES", 1)  # cut points fall inside the long lines
    split = analyze_paths([path], workers=3)
    assert split.to_partial() == aggregate.to_partial()


@pytest.mark.skipif(not os.path.isdir("/proc/self/task"), reason="counts threads through /proc")
def test_importing_the_analyzer_starts_no_openblas_threads() -> None:
    # numpy's OpenBLAS would start a spinning thread per core; the package asks for one before numpy loads.
    script = ("import os, logproc_analyzer, numpy; "
              "print(len(os.listdir('/proc/self/task')), os.environ['OPENBLAS_NUM_THREADS'])")
    env = {key: value for key, value in os.environ.items() if key != "OPENBLAS_NUM_THREADS"}
    found = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, check=True)
    assert found.stdout.split() == ["1", "1"]
