"""``logproc-local-stack``: run the local stand-ins in the foreground and print their connections."""

from __future__ import annotations

import argparse
import signal
import sys
import tempfile
from pathlib import Path

from logproc_local.stack import LocalStack


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="logproc-local-stack",
        description="Start the local Kafka-protocol broker, Azurite and the local Batch service; print "
        "the AIRFLOW_CONN_* exports; stop them all on Ctrl-C.",
    )
    parser.add_argument("--dir", type=Path, default=None, help="data directory (default: a temp dir)")
    parser.add_argument("--no-batch", action="store_true", help="do not start the local Batch service")
    args = parser.parse_args(argv)
    base = args.dir or Path(tempfile.mkdtemp(prefix="logproc-stack-"))
    stack = LocalStack(base)
    try:
        stack.start(batch=not args.no_batch)
        for name, value in stack.airflow_connections().items():
            print(f"export {name}='{value}'")
        print(f"# local stack running (data in {base}); Ctrl-C stops it", file=sys.stderr)
        sys.stdout.flush()
        signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
        signal.pause()
    except KeyboardInterrupt:
        pass
    finally:
        stack.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
