"""The version matrix: the built wheels installed into each supported Airflow, and the daily DAG run there.

``make matrix`` (or ``python -m logproc_local.version_matrix``), from a checkout. For each Airflow
version it builds (or reuses) a venv from ``requirements/constraints-<version>.txt``, installs the three
wheels built from this checkout, and checks what a user would see:

- **install**: ``pip install`` of the wheels under that version's constraints;
- **providers**: ``airflow providers list`` shows ``airflow-provider-logproc``;
- **import**: every module of the provider and the analyzer imports, and the C loops are compiled in;
- **parse**: the example DAGs shipped in the wheel parse without import errors (on Airflow 2 the
  event-driven DAG is skipped, by design);
- **unit**: the unit tests (which include the DAG-parse tests), against the installed wheels;
- **dags test**: ``python -m logproc_local.demo`` for one day, i.e. ``airflow dags test logproc_daily``
  with every operator against the broker, Azurite and the local Batch service;
- **mapped**: the same day with the consume mapped over 3 partition groups (dynamic task mapping)
  gives the single task's counts;
- **backfill** (Airflow 2): ``airflow dags backfill`` of the same day gives the same summary.json;
- **summary**: that day's summary.json equals the first version's.

Venvs are kept under ``.local/matrix`` and rebuilt only when their constraints or the distributions'
metadata change; the wheels are reinstalled on every run. Prints a table and writes it as Markdown.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[2]
VERSIONS = ("2.11.2", "3.0.6", "3.1.8", "3.3.2")
# The version the full suite runs on (the project's own .venv); the matrix skips its unit tests.
MAIN_VERSION = "3.3.2"
DEMO_DAY = "2026-11-20"
PIP_VERSION = "pip==26.3"
# What the unit tests need besides the wheels (pinned by each version's constraints file).
TEST_TOOLS = ("pytest", "pytest-timeout", "hypothesis", "jsonschema", "pyyaml")
# Files whose change means a venv's dependencies may have changed.
DEPENDENCY_INPUTS = ("pyproject.toml", "analyzer/pyproject.toml", "local/pyproject.toml")

_IMPORT_CHECK = """
import importlib, pkgutil, sys
import airflow_provider_logproc, logproc_analyzer
names = []
for package in (airflow_provider_logproc, logproc_analyzer):
    for module in pkgutil.walk_packages(package.__path__, package.__name__ + "."):
        if ".example_dags." in module.name:
            continue  # DAG files: parsed below, by a DagBag
        importlib.import_module(module.name)
        names.append(module.name)
import airflow_provider_logproc.consume.encoders as consume_loop
from logproc_analyzer import aggregate
assert consume_loop.native_envelope is not None, "the consume C loop is not compiled into the wheel"
assert aggregate.native_ingest is not None, "the analyzer C loop is not compiled into the wheel"
assert "site-packages" in airflow_provider_logproc.__file__, airflow_provider_logproc.__file__
print(len(names), "modules")
"""

_PARSE_CHECK = """
import json, sys
from pathlib import Path
import airflow_provider_logproc
try:
    from airflow.dag_processing.dagbag import DagBag
except ImportError:  # Airflow < 3.2
    from airflow.models.dagbag import DagBag
folder = Path(airflow_provider_logproc.__file__).parent / "example_dags"
bag = DagBag(dag_folder=str(folder))  # AIRFLOW__CORE__LOAD_EXAMPLES=False
errors = {str(path): str(error) for path, error in bag.import_errors.items()}
print(json.dumps({"dag_ids": sorted(bag.dag_ids), "import_errors": errors}))
"""


class StepFailed(Exception):
    def __init__(self, step: str, detail: str) -> None:
        super().__init__(f"{step}: {detail}")
        self.step = step


@dataclass
class VersionResult:
    version: str
    seconds: dict[str, float] = field(default_factory=dict)
    notes: dict[str, str] = field(default_factory=dict)
    failed: str | None = None
    failed_steps: list[str] = field(default_factory=list)
    summary: dict[str, Any] | None = None


def run(command: list[str], *, cwd: Path, env: dict[str, str] | None = None, log: Path, timeout: float = 1800
        ) -> str:
    """Run ``command``; its output goes to ``log``; a non-zero exit raises with the output's tail."""
    result = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    with log.open("a") as out:
        out.write(f"$ {' '.join(command)}\n{result.stdout}\n{result.stderr}\n")
    if result.returncode != 0:
        tail = "\n".join((result.stdout + result.stderr).strip().splitlines()[-25:])
        raise subprocess.CalledProcessError(result.returncode, command, output=tail)
    return result.stdout


def build_wheels(work: Path) -> list[Path]:
    """Build the wheels a release publishes (``logproc_local.release``): the provider's and the analyzer's
    manylinux wheels, built from their sdists, and the local stand-ins' wheel."""
    from logproc_local.release import build_release

    out = work / "dist"
    shutil.rmtree(out, ignore_errors=True)
    files = build_release(out, pure=False)
    return [path for path in files if path.suffix == ".whl"]


def dependency_fingerprint(version: str) -> str:
    digest = hashlib.sha256(f"{sys.version_info[:2]} {TEST_TOOLS}".encode())
    for name in (f"requirements/constraints-{version}.txt", *DEPENDENCY_INPUTS):
        digest.update((REPO_ROOT / name).read_bytes())
    return digest.hexdigest()


@contextlib.contextmanager
def step(result: VersionResult, name: str) -> Iterator[None]:
    started = time.monotonic()
    try:
        yield
    except subprocess.CalledProcessError as error:
        result.failed_steps.append(name)
        raise StepFailed(name, f"exit {error.returncode}\n{error.output}") from error
    except (AssertionError, OSError, ValueError, subprocess.TimeoutExpired) as error:
        result.failed_steps.append(name)
        raise StepFailed(name, str(error)) from error
    finally:
        result.seconds[name] = time.monotonic() - started


def install(version: str, venv: Path, wheels: list[Path], scratch: Path, env: dict[str, str], log: Path,
            result: VersionResult) -> None:
    python = venv / "bin" / "python"
    stamp, fingerprint = venv / ".matrix-stamp", dependency_fingerprint(version)
    constraints = REPO_ROOT / "requirements" / f"constraints-{version}.txt"
    if not stamp.is_file() or stamp.read_text() != fingerprint:
        shutil.rmtree(venv, ignore_errors=True)
        run([sys.executable, "-m", "venv", str(venv)], cwd=scratch, log=log)
        run([str(python), "-m", "pip", "install", "--quiet", PIP_VERSION], cwd=scratch, log=log)
        run([str(python), "-m", "pip", "install", "--quiet", "-c", str(constraints), *map(str, wheels),
             *TEST_TOOLS], cwd=scratch, log=log)
        stamp.write_text(fingerprint)
        result.notes["install"] = "fresh venv"
    else:
        result.notes["install"] = "cached venv"
    # Same version number as the cached install: force, without touching the dependencies.
    run([str(python), "-m", "pip", "install", "--quiet", "--no-deps", "--force-reinstall", *map(str, wheels)],
        cwd=scratch, log=log)
    installed = run([str(python), "-c", "import airflow; print(airflow.__version__)"], cwd=scratch, env=env,
                    log=log).strip().splitlines()[-1]
    assert installed == version, f"the venv has Airflow {installed}, not {version}"


def check_providers(version: str, bin_dir: Path, scratch: Path, env: dict[str, str], log: Path, records: int,
                    result: VersionResult) -> str:
    listing = run([str(bin_dir / "airflow"), "providers", "list"], cwd=scratch, env=env, log=log)
    assert "airflow-provider-logproc" in listing, "airflow providers list does not show airflow-provider-logproc"
    return "listed"


def check_imports(version: str, bin_dir: Path, scratch: Path, env: dict[str, str], log: Path, records: int,
                  result: VersionResult) -> str:
    return run([str(bin_dir / "python"), "-c", _IMPORT_CHECK], cwd=scratch, env=env, log=log).strip().splitlines()[-1]


def check_parse(version: str, bin_dir: Path, scratch: Path, env: dict[str, str], log: Path, records: int,
                result: VersionResult) -> str:
    output = run([str(bin_dir / "python"), "-c", _PARSE_CHECK], cwd=scratch, env=env, log=log)
    parsed = json.loads(output.strip().splitlines()[-1])
    expected = (["logproc_daily", "logproc_report_consumer"] if version.startswith("2.")
                else ["logproc_daily", "logproc_on_new_logs", "logproc_report_consumer"])
    assert not parsed["import_errors"], f"import errors: {parsed['import_errors']}"
    assert parsed["dag_ids"] == expected, f"DAGs {parsed['dag_ids']}, expected {expected}"
    return ", ".join(parsed["dag_ids"])


def run_unit_tests(version: str, bin_dir: Path, scratch: Path, env: dict[str, str], log: Path, records: int,
                   result: VersionResult) -> str:
    # --import-mode=append: the checkout's tests, the installed wheels' code.
    output = run([str(bin_dir / "pytest"), "-q", "-p", "no:cacheprovider", "--import-mode=append", "tests/unit"],
                 cwd=REPO_ROOT, env={**env, "AIRFLOW_HOME": str(scratch / "unit-home")}, log=log)
    return output.strip().splitlines()[-1].strip("= ")


def comparable_summary(path: Path, scratch: Path) -> dict[str, Any]:
    """Read a summary.json without what differs by design between runs: this version's folder (in
    staging URIs) and the local Azurite's port (in blob URLs). Everything else must match."""
    text = re.sub(r"http://127\.0\.0\.1:\d+/", "<blob-endpoint>/", path.read_text())
    return json.loads(text.replace(str(scratch), "<work>"))


def run_dags_test(version: str, bin_dir: Path, scratch: Path, env: dict[str, str], log: Path, records: int,
                  result: VersionResult) -> str:
    output = run([str(bin_dir / "python"), "-m", "logproc_local.demo", "--days", "1", "--first-day", DEMO_DAY,
                  "--records", str(records), "--dir", str(scratch / "demo"), "--report-dir", str(scratch / "report")],
                 cwd=scratch, env=env, log=log)
    result.summary = comparable_summary(scratch / "report" / DEMO_DAY / "summary.json", scratch)
    return next((line.split(": ", 1)[1] for line in output.splitlines() if "pipeline ran in" in line), "")


def comparable_counts(summary: dict[str, Any]) -> dict[str, Any]:
    """Drop what describes the inputs one by one (a mapped run has a group's parts) and the kept-aside
    files' URIs (they name the mapped branch's folder): the counts are what must agree."""
    pipeline = {key: value for key, value in summary["pipeline"].items() if not key.endswith("_file")}
    return {**{key: value for key, value in summary.items() if key not in ("inputs", "field_mappings")},
            "pipeline": pipeline}


def run_mapped(version: str, bin_dir: Path, scratch: Path, env: dict[str, str], log: Path, records: int,
               result: VersionResult) -> str:
    """Run the same day with the consume mapped over 3 partition groups: the counts must be one task's."""
    run([str(bin_dir / "python"), "-m", "logproc_local.demo", "--days", "1", "--first-day", DEMO_DAY,
         "--records", str(records), "--consume-groups", "3", "--dir", str(scratch / "demo-mapped"),
         "--report-dir", str(scratch / "mapped-report")], cwd=scratch, env=env, log=log)
    summary = comparable_summary(scratch / "mapped-report" / DEMO_DAY / "summary.json", scratch)
    assert len(summary["inputs"]) == 3, f"expected the 3 groups' parts as inputs, got {summary['inputs']}"
    assert result.summary is not None, "needs the dags test step's summary"
    assert comparable_counts(summary) == comparable_counts(result.summary), \
        "the mapped consume's summary.json counts differ from the single task's"
    return "3 mapped consume tasks, same counts as one"


def run_backfill(version: str, bin_dir: Path, scratch: Path, env: dict[str, str], log: Path, records: int,
                 result: VersionResult) -> str:
    """Airflow 2's ``airflow dags backfill`` of the same day: the same summary as ``dags test`` gives."""
    run([str(bin_dir / "python"), "-m", "logproc_local.demo", "--backfill", "--days", "1", "--first-day", DEMO_DAY,
         "--records", str(records), "--dir", str(scratch / "demo"), "--report-dir", str(scratch / "backfill-report")],
        cwd=scratch, env=env, log=log)
    summary = comparable_summary(scratch / "backfill-report" / DEMO_DAY / "summary.json", scratch)
    assert summary == result.summary, "the backfilled day's summary.json differs from the `dags test` one"
    return "same summary.json as dags test"


def check_version(version: str, wheels: list[Path], work: Path, *, unit_tests: bool, records: int) -> VersionResult:
    result = VersionResult(version)
    venv = work / f"venv-{version}"
    bin_dir = venv / "bin"
    scratch = work / version
    shutil.rmtree(scratch, ignore_errors=True)
    scratch.mkdir(parents=True)
    log = work / f"{version}.log"
    log.write_text("")
    # Run from a folder outside the source tree, so the installed wheels are what gets imported.
    env = {**os.environ, "AIRFLOW_HOME": str(scratch / "airflow-home"), "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
           "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{scratch / 'airflow.db'}",
           "LOGPROC_AZURITE_BLOB": os.environ.get("LOGPROC_AZURITE_BLOB")
           or str(REPO_ROOT / "tools" / "azurite" / "node_modules" / ".bin" / "azurite-blob"),
           "PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}"}
    env.pop("PYTHONPATH", None)
    try:
        with step(result, "install"):
            install(version, venv, wheels, scratch, env, log, result)
    except StepFailed as failure:
        result.failed = str(failure)
        return result
    # The checks below are independent: each runs, and the first failure is the one reported.
    checks = [("providers", check_providers), ("import", check_imports), ("parse", check_parse)]
    if unit_tests:
        checks.append(("unit", run_unit_tests))
    checks.append(("dags test", run_dags_test))
    checks.append(("mapped", run_mapped))
    if version.startswith("2."):
        checks.append(("backfill", run_backfill))
    for name, check in checks:
        try:
            with step(result, name):
                note = check(version, bin_dir, scratch, env, log, records, result)
                if note:
                    result.notes[name] = note
        except StepFailed as failure:
            result.failed = result.failed or str(failure)
            print(f"Airflow {version}: {failure}", flush=True)
    return result


def render_table(results: list[VersionResult], steps: list[str]) -> str:
    lines = ["| Airflow | " + " | ".join(steps) + " | result |", "|---" * (len(steps) + 2) + "|"]
    for result in results:
        cells = []
        for name in steps:
            if name in result.seconds:
                mark = " FAILED" if name in result.failed_steps else ""
                cells.append(f"{result.seconds[name]:.0f} s{mark}")
            else:
                cells.append("—")
        outcome = "FAILED: " + result.failed.split("\n", 1)[0][:80] if result.failed else "ok"
        lines.append(f"| {result.version} | " + " | ".join(cells) + f" | {outcome} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="logproc-version-matrix", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--versions", nargs="+", default=list(VERSIONS), choices=VERSIONS)
    parser.add_argument("--work", type=Path, default=REPO_ROOT / ".local" / "matrix")
    parser.add_argument("--records", type=int, default=5000, help="records of the demo day")
    parser.add_argument("--unit-on-main", action="store_true",
                        help=f"also run the unit tests on {MAIN_VERSION} (the full suite covers it otherwise)")
    args = parser.parse_args(argv)
    if not (REPO_ROOT / "requirements").is_dir():
        parser.error(f"run from a checkout: {REPO_ROOT / 'requirements'} does not exist")
    work = args.work.resolve()
    work.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    wheels = build_wheels(work)
    sizes = {wheel.name: wheel.stat().st_size for wheel in wheels}
    print(f"built {len(wheels)} wheels in {time.monotonic() - started:.0f} s: "
          + ", ".join(f"{name} ({size / 1024:.0f} KiB)" for name, size in sizes.items()), flush=True)

    results = []
    for version in args.versions:
        result = check_version(version, wheels, work, records=args.records,
                               unit_tests=args.unit_on_main or version != MAIN_VERSION)
        results.append(result)
        status = f"FAILED: {result.failed}" if result.failed else "ok"
        details = "; ".join(f"{name}: {note}" for name, note in result.notes.items())
        print(f"Airflow {version}: {status} ({details}; log: {work / (version + '.log')})", flush=True)

    summaries = [(r, r.summary) for r in results if r.summary is not None]
    reference_version, reference = (summaries[0][0].version, summaries[0][1]) if summaries else ("", {})
    for result, summary in summaries:
        if summary != reference:
            differing = sorted(k for k in summary.keys() | reference.keys() if summary.get(k) != reference.get(k))
            result.failed = result.failed or f"summary: differs from Airflow {reference_version}'s in {differing}"
            print(f"Airflow {result.version}: FAILED: {result.failed}", flush=True)

    steps = ["install", "providers", "import", "parse", "unit", "dags test", "mapped", "backfill"]
    table = render_table(results, steps)
    (work / "matrix.md").write_text(table + "\n")
    print(table)
    print(f"matrix took {time.monotonic() - started:.0f} s; table in {work / 'matrix.md'}")
    failed = [r.version for r in results if r.failed]
    if failed:
        print(f"FAILED on Airflow {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
