"""``python -m logproc_analyzer analyze|merge ...``: the console scripts without PATH."""

from __future__ import annotations

import sys

from logproc_analyzer.cli import analyze_main, merge_main

COMMANDS = {"analyze": analyze_main, "merge": merge_main}


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if not args or args[0] not in COMMANDS:
        print("usage: python -m logproc_analyzer {analyze,merge} ...", file=sys.stderr)
        return 2
    return COMMANDS[args[0]](args[1:])


if __name__ == "__main__":
    raise SystemExit(main())
