"""The three distributions built from this checkout hold what they should, and nothing else.

- ``airflow-provider-logproc``: the provider and its example DAGs, the consume C loop compiled in, no
  local stand-ins, no analyzer code (it depends on ``logproc-analyzer`` instead).
- ``logproc-analyzer``: installable on a Batch node without Airflow, its C loop compiled in.
- ``logproc-local``: development only, marked so that it cannot be uploaded to PyPI.

And from the sdists, with no working C compiler, the pure-Python loops install and give the same
results. Builds use pip's isolated build environments (setuptools from the package index), as a user's
``pip install`` from an sdist would.
"""

from __future__ import annotations

import email
import os
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parents[3]
DAG_FILES = ("logproc_daily.py", "logproc_on_new_logs.py", "logproc_report_consumer.py")


def pip(*args: str, cwd: Path = REPO_ROOT, env: dict[str, str] | None = None) -> None:
    result = subprocess.run([sys.executable, "-m", "pip", *args], cwd=cwd, env=env, capture_output=True, text=True,
                            timeout=600, check=False)
    assert result.returncode == 0, f"pip {' '.join(args)} failed:\n{result.stdout[-2000:]}\n{result.stderr[-3000:]}"


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """What ``make dist`` builds: per distribution an sdist, a manylinux wheel and a pure fallback."""
    from logproc_local.release import build_release

    out = tmp_path_factory.mktemp("dist")
    found: dict[str, Path] = {}
    for path in build_release(out):
        name = path.name.split("-")[0]
        if path.name.endswith(".tar.gz"):
            found[f"sdist:{name}"] = path
        elif "-py3-none-any" in path.name and name != "logproc_local":
            found[f"pure:{name}"] = path
        else:
            found[name] = path
    distributions = ("airflow_provider_logproc", "logproc_analyzer", "logproc_local")
    assert set(found) == {*distributions, *(f"sdist:{name}" for name in distributions),
                          "pure:airflow_provider_logproc", "pure:logproc_analyzer"}, sorted(found)
    return found


@pytest.fixture(scope="module")
def wheels(built: dict[str, Path]) -> dict[str, Path]:
    return {key: path for key, path in built.items() if ":" not in key}


def names(wheel: Path) -> list[str]:
    with zipfile.ZipFile(wheel) as archive:
        return archive.namelist()


def metadata(wheel: Path) -> email.message.Message:
    with zipfile.ZipFile(wheel) as archive:
        path = next(name for name in archive.namelist() if name.endswith(".dist-info/METADATA"))
        return email.message_from_bytes(archive.read(path))


def entry_points(wheel: Path) -> str:
    with zipfile.ZipFile(wheel) as archive:
        path = next(name for name in archive.namelist() if name.endswith(".dist-info/entry_points.txt"))
        return archive.read(path).decode()


def top_level_packages(wheel: Path) -> set[str]:
    return {name.split("/")[0] for name in names(wheel) if ".dist-info/" not in name}


def test_provider_wheel_holds_the_provider_and_its_example_dags_only(wheels: dict[str, Path]) -> None:
    wheel = wheels["airflow_provider_logproc"]
    files = names(wheel)
    assert top_level_packages(wheel) == {"airflow_provider_logproc"}
    assert not [name for name in files if "logproc_local" in name or "/local/" in name or "demo" in name]
    assert not [name for name in files if "tests/" in name or name.startswith("bench/")]
    with zipfile.ZipFile(wheel) as archive:
        for dag_file in DAG_FILES:
            shipped = archive.read(f"airflow_provider_logproc/example_dags/{dag_file}")
            assert shipped == (REPO_ROOT / "dags" / dag_file).read_bytes(), f"example_dags/{dag_file} differs"
    assert "apache_airflow_provider" in entry_points(wheel)
    assert any(name.startswith("airflow_provider_logproc/consume/_native_envelope.") and name.endswith(".so")
               for name in files), "the consume C loop is not compiled into the provider wheel"
    # A platform wheel a package index takes: auditwheel's manylinux tag, not linux_x86_64.
    assert wheel.name.endswith("-cp311-cp311-manylinux2014_x86_64.manylinux_2_17_x86_64.whl"), wheel.name
    assert {"airflow_provider_logproc/py.typed"} <= set(files)


def test_provider_requires_its_analyzer_and_any_supported_airflow(wheels: dict[str, Path]) -> None:
    requires = metadata(wheels["airflow_provider_logproc"]).get_all("Requires-Dist") or []
    assert "apache-airflow>=2.11.0" in requires
    assert "logproc-analyzer==0.1.0" in requires
    assert any(r.startswith("apache-airflow-providers-common-compat") for r in requires)
    assert not [r for r in requires if r.startswith(("noida", "logproc-local"))], requires


def test_analyzer_wheel_installs_without_airflow(wheels: dict[str, Path]) -> None:
    wheel = wheels["logproc_analyzer"]
    assert top_level_packages(wheel) == {"logproc_analyzer"}
    requires = metadata(wheel).get_all("Requires-Dist") or []
    requirement_names = sorted(r.split(">")[0].split("=")[0] for r in requires)
    assert requirement_names == ["datasketches", "msgspec", "numpy", "orjson"], requires
    scripts = entry_points(wheel)
    assert "logproc-analyze = logproc_analyzer.cli:analyze_main" in scripts
    assert "logproc-merge = logproc_analyzer.cli:merge_main" in scripts
    assert any(name.startswith("logproc_analyzer/_native_ingest.") and name.endswith(".so") for name in names(wheel))
    assert "-manylinux" in wheel.name, wheel.name


@pytest.mark.parametrize("name", ["airflow_provider_logproc", "logproc_analyzer"])
def test_the_pure_fallback_wheels_install_anywhere_and_hold_the_same_python(built: dict[str, Path],
                                                                            name: str) -> None:
    pure, platform = built[f"pure:{name}"], built[name]
    assert pure.name.endswith("-py3-none-any.whl"), pure.name
    assert not [file for file in names(pure) if file.endswith(".so")]
    python_files = sorted(file for file in names(platform) if file.endswith((".py", ".pyi", ".c", ".html", ".json")))
    assert sorted(file for file in names(pure) if file.endswith((".py", ".pyi", ".c", ".html", ".json"))) \
        == python_files
    assert metadata(pure).get_all("Requires-Dist") == metadata(platform).get_all("Requires-Dist")


def test_local_stand_ins_are_a_separate_development_only_wheel(wheels: dict[str, Path]) -> None:
    wheel = wheels["logproc_local"]
    assert top_level_packages(wheel) == {"logproc_local"}
    assert "Private :: Do Not Upload" in (metadata(wheel).get_all("Classifier") or [])


@pytest.mark.parametrize("wheel_key", ["airflow_provider_logproc", "logproc_analyzer", "logproc_local"])
def test_every_wheel_carries_the_license_and_notice(wheels: dict[str, Path], wheel_key: str) -> None:
    files = names(wheels[wheel_key])
    for name in ("LICENSE", "NOTICE"):
        assert any(path.endswith(f".dist-info/licenses/{name}") for path in files), f"{name} missing: {files[-8:]}"
    assert metadata(wheels[wheel_key])["License-Expression"] == "Apache-2.0"


def test_license_and_notice_are_the_same_in_every_distribution() -> None:
    for name in ("LICENSE", "NOTICE"):
        root = (REPO_ROOT / name).read_bytes()
        for folder in ("analyzer", "local"):
            assert (REPO_ROOT / folder / name).read_bytes() == root, f"{folder}/{name} differs from ./{name}"


@pytest.fixture(scope="module")
def pure_python_builds(built: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Wheels built from the sdists where the C compiler fails (CC=false): what ``pip install`` of the
    sdist gives on a machine without a compiler."""
    out = tmp_path_factory.mktemp("pure-wheels")
    for key in ("sdist:airflow_provider_logproc", "sdist:logproc_analyzer"):
        pip("wheel", "--quiet", "--no-deps", "-w", str(out), str(built[key]),
            env={**os.environ, "CC": "false", "LDSHARED": "false"})
    return {**built, **{path.name.split("-")[0]: path for path in out.glob("*.whl")}}


def test_sdists_carry_the_sources_the_wheels_are_built_from(pure_python_builds: dict[str, Path]) -> None:
    with tarfile.open(pure_python_builds["sdist:airflow_provider_logproc"]) as sdist:
        files = {name.split("/", 1)[1] for name in sdist.getnames() if "/" in name}
    assert {"dags/logproc_daily.py", "dags/logproc_on_new_logs.py", "setup.py", "LICENSE", "NOTICE",
            "airflow_provider_logproc/consume/_native_envelope.c"} <= files
    with tarfile.open(pure_python_builds["sdist:logproc_analyzer"]) as sdist:
        files = {name.split("/", 1)[1] for name in sdist.getnames() if "/" in name}
    assert {"setup.py", "LICENSE", "NOTICE", "logproc_analyzer/_native_ingest.c"} <= files


def test_without_a_compiler_the_sdists_install_the_pure_python_loops(pure_python_builds: dict[str, Path],
                                                                      tmp_path: Path) -> None:
    for key in ("airflow_provider_logproc", "logproc_analyzer"):
        assert not [name for name in names(pure_python_builds[key]) if name.endswith(".so")], key
        assert "airflow_provider_logproc/example_dags/logproc_daily.py" in names(pure_python_builds[key]) \
            or key == "logproc_analyzer"
    # The analyzer from the pure-Python wheel runs, on its own, and finds no C loop.
    target = tmp_path / "site"
    pip("install", "--quiet", "--no-deps", "--target", str(target), str(pure_python_builds["logproc_analyzer"]))
    check = ("import logproc_analyzer, logproc_analyzer.aggregate as a; "
             "assert logproc_analyzer.__file__.startswith(sys.argv[1]), logproc_analyzer.__file__; "
             "assert a.native_ingest is None; print('pure')")
    # -S: no site, so the checkout's editable installs (.pth import hooks) cannot supply the C loop; the
    # venv's site-packages comes after the target only for orjson and msgspec.
    import sysconfig

    path = f"{target}{os.pathsep}{sysconfig.get_paths()['purelib']}"
    result = subprocess.run([sys.executable, "-S", "-c", f"import sys; {check}", str(target)], capture_output=True,
                            text=True, env={"PYTHONPATH": path, "PATH": "/usr/bin:/bin"}, check=False)
    assert result.returncode == 0 and result.stdout.strip() == "pure", result.stderr[-2000:]
