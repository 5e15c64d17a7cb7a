"""logproc-analyze and logproc-merge, in process and as a process with Airflow made unimportable."""

from __future__ import annotations

import datetime as dt
import gzip
import subprocess
import sys
import textwrap
from pathlib import Path

import orjson
import pytest

from logproc_analyzer import analyze_paths, summarize
from logproc_analyzer.analyze import read_partial_file
from logproc_analyzer.cli import analyze_main, merge_main
from logproc_local import sample_logs

DAY = dt.date(2026, 11, 24)
REPO_ROOT = Path(__file__).resolve().parents[3]


@pytest.fixture
def day_parts(tmp_path: Path) -> list[Path]:
    """A generated day cut into three part files, the way the Batch fan-out receives it."""
    lines = [r.value for r in sample_logs.generate(DAY, 6000, seed=5, bad_share=0.01)]
    parts = []
    for index in range(3):
        part = tmp_path / f"part-{index:04d}.jsonl"
        part.write_bytes(b"\n".join(lines[index * 2000:(index + 1) * 2000]) + b"\n")
        parts.append(part)
    parts[2] = parts[2].rename(parts[2].with_suffix(".jsonl.gz"))
    parts[2].write_bytes(gzip.compress(parts[2].read_bytes()))
    return parts


def test_analyze_each_part_then_merge_equals_analysing_the_day(tmp_path: Path, day_parts: list[Path],
                                                               capsys: pytest.CaptureFixture[str]) -> None:
    partials = []
    for part in day_parts:
        partial = tmp_path / "partials" / f"{part.name}.partial.json"
        assert analyze_main([str(part), "--output", str(partial), "--workers", "1"]) == 0
        partials.append(partial)
    out = tmp_path / "out"
    assert merge_main([*map(str, partials), "--output-dir", str(out), "--title", "Day <1>"]) == 0
    summary = orjson.loads((out / "summary.json").read_bytes())
    whole = orjson.loads(orjson.dumps(summarize(analyze_paths(day_parts, workers=1))))
    # The CLI detected the sample logs' own names in each part; the library call was given them.
    mappings = summary.pop("field_mappings")
    assert [entry["mapping"] for entry in mappings] == [entry["mapping"] for entry in whole.pop("field_mappings")]
    assert mappings[0]["partials"] == 3
    assert {name: info["how"] for name, info in mappings[0]["detection"]["fields"].items()} == {
        name: "detected" for name in mappings[0]["mapping"] if name != "latency_unit"}
    assert summary == whole
    assert summary["totals"] == {"lines": 6000, "blank_lines": 0, "valid": 5940, "invalid": 60,
                                 "invalid_rate": 0.01}
    report = (out / "report.html").read_text()
    assert "Day &lt;1&gt;" in report
    assert oct((out / "report.html").stat().st_mode & 0o777) == "0o644"
    assert "5940 valid" in capsys.readouterr().err


def test_merge_output_is_byte_identical_on_a_rerun(tmp_path: Path, day_parts: list[Path]) -> None:
    partial = tmp_path / "p.json"
    assert analyze_main([*map(str, day_parts), "-o", str(partial)]) == 0
    assert merge_main([str(partial), "-d", str(tmp_path / "a")]) == 0
    assert merge_main([str(partial), "-d", str(tmp_path / "b")]) == 0
    for name in ("summary.json", "report.html"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes()


def test_unusable_inputs_exit_non_zero_with_a_clear_message(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert analyze_main([str(tmp_path / "nope.jsonl"), "-o", str(tmp_path / "p.json")]) == 1
    assert "logproc-analyze: error: input " in capsys.readouterr().err
    assert not (tmp_path / "p.json").exists()

    not_json = tmp_path / "not-json.json"
    not_json.write_text("hello")
    assert merge_main([str(not_json), "-d", str(tmp_path / "out")]) == 1
    assert f"partial {not_json}: neither a binary partial nor JSON" in capsys.readouterr().err

    other = tmp_path / "other.json"
    other.write_text('{"format": "something-else"}')
    assert merge_main([str(other), "-d", str(tmp_path / "out")]) == 1
    assert "not a logproc-analysis-partial document" in capsys.readouterr().err
    assert merge_main([str(tmp_path / "missing.json"), "-d", str(tmp_path / "out")]) == 1
    assert "missing.json: cannot be read" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_malformed_lines_never_fail_the_cli(tmp_path: Path) -> None:
    junk = tmp_path / "junk.log"
    junk.write_bytes(b"\x00\xff\n{]\n\n" + bytes(range(11, 256)) + b"\n")
    assert analyze_main([str(junk), "-o", str(tmp_path / "p.json")]) == 0
    partial = read_partial_file(tmp_path / "p.json").to_partial()
    assert sum(partial["invalid_reasons"].values()) == 3


def test_field_mapping_on_the_command_line(tmp_path: Path) -> None:
    log = tmp_path / "other.jsonl"
    log.write_bytes(orjson.dumps({"ts": "2026-11-24T01:02:03Z", "ip": "192.0.2.1", "code": 404}) + b"\n")
    out = tmp_path / "p.json"
    assert analyze_main([str(log), "-o", str(out), "--field", "timestamp=ts", "--field", "client_ip=ip",
                         "--field", "status=code"]) == 0
    assert read_partial_file(out).to_partial()["ips"] == {"192.0.2.1": 1}
    with pytest.raises(SystemExit) as caught:
        analyze_main([str(log), "-o", str(out), "--field", "colour=red"])
    assert caught.value.code == 2


_BLOCK_AIRFLOW = textwrap.dedent("""
    import importlib.abc, sys

    class BlockAirflow(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if name == "airflow" or name.startswith("airflow."):
                raise ImportError(f"airflow is not installed on a Batch node (tried {name})")
            return None

    sys.meta_path.insert(0, BlockAirflow())
""")


def test_the_analyzer_needs_no_airflow(tmp_path: Path, day_parts: list[Path]) -> None:
    script = _BLOCK_AIRFLOW + textwrap.dedent(f"""
        import importlib, pkgutil
        import logproc_analyzer as analysis
        for module in pkgutil.walk_packages(analysis.__path__, analysis.__name__ + "."):
            importlib.import_module(module.name)
        try:
            import airflow
        except ImportError:
            pass
        else:
            raise SystemExit("the blocker did not block")
        from logproc_analyzer.cli import analyze_main, merge_main
        assert analyze_main([{str(day_parts[0])!r}, {str(day_parts[2])!r}, "-o", {str(tmp_path / 'p.json')!r}]) == 0
        assert merge_main([{str(tmp_path / 'p.json')!r}, "-d", {str(tmp_path / 'out')!r}]) == 0
        assert not any(name == "airflow" or name.startswith("airflow.") for name in sys.modules)
    """)
    done = subprocess.run([sys.executable, "-c", script], cwd=REPO_ROOT, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "out" / "report.html").exists()


def test_invalid_lines_can_be_written_aside(tmp_path: Path) -> None:
    log = tmp_path / "x.jsonl"
    log.write_bytes(b'{"timestamp": 0, "client_ip": "192.0.2.1", "status": 200}\nnonsense\n')
    quarantine = tmp_path / "invalid" / "x.invalid.jsonl"
    assert analyze_main([str(log), "-o", str(tmp_path / "p.json"), "--invalid-output", str(quarantine)]) == 0
    entries = [orjson.loads(line) for line in quarantine.read_bytes().splitlines()]
    assert entries == [{"source": str(log), "line": 2, "reason": "unrecognised_line",
                        "message": "neither a JSON object nor a Common/Combined Log Format line", "text": "nonsense"}]


def test_module_entry_point_dispatches(tmp_path: Path) -> None:
    log = tmp_path / "x.jsonl"
    log.write_bytes(b'{"timestamp": 0, "client_ip": "192.0.2.1", "status": 200}\n')
    done = subprocess.run([sys.executable, "-m", "logproc_analyzer", "analyze", str(log),
                           "-o", str(tmp_path / "p.json")], cwd=REPO_ROOT, capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 0, done.stderr
    usage = subprocess.run([sys.executable, "-m", "logproc_analyzer"], cwd=REPO_ROOT,
                           capture_output=True, text=True, timeout=60)
    assert usage.returncode == 2
    assert "analyze,merge" in usage.stderr


def test_an_unwritable_output_is_a_clear_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    log = tmp_path / "x.jsonl"
    log.write_bytes(b'{"timestamp": 0, "client_ip": "192.0.2.1", "status": 200}\n')
    blocker = tmp_path / "file"
    blocker.write_text("a file where a directory is expected")
    assert analyze_main([str(log), "-o", str(blocker / "p.json")]) == 1
    assert f"cannot write {blocker / 'p.json'}" in capsys.readouterr().err
    assert analyze_main([str(log), "-o", str(tmp_path / "p.json"), "--invalid-output", str(blocker / "i")]) == 1
    assert "cannot write" in capsys.readouterr().err
    assert analyze_main([str(log), "-o", str(tmp_path / "p.json")]) == 0
    assert merge_main([str(tmp_path / "p.json"), "-d", str(blocker / "out")]) == 1
    assert "cannot write to" in capsys.readouterr().err
