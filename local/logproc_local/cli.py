"""``logproc-local-stack``: run the local stand-ins in the foreground, their connections in an env file.

Fixed ports by default (Kafka 9092, Azurite's Blob service 10000, the local Batch service 8765), so
the connections stay valid across restarts; each can be changed. The connections (with Azurite's and
the Batch account's keys) go to a file only its owner can read, never to the terminal::

    logproc-local-stack --dir .local/stack &        # writes ./logproc-local.env
    set -a; . ./logproc-local.env; set +a           # AIRFLOW_CONN_KAFKA_DEFAULT, _WASB_DEFAULT, _AZURE_BATCH_DEFAULT
"""

from __future__ import annotations

import argparse
import os
import shlex
import signal
import sys
import tempfile
from pathlib import Path

from logproc_local.processes import LocalServerError, require_free_port
from logproc_local.stack import LocalStack

DEFAULT_PORTS = {"kafka": 9092, "blob": 10000, "batch": 8765}
DEFAULT_ENV_FILE = Path("logproc-local.env")


def write_env_file(path: Path, connections: dict[str, str]) -> None:
    """``NAME='value'`` lines, readable by the owner only (the values hold keys)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w") as out:
        out.write("# written by logproc-local-stack: the local stand-ins' Airflow connections\n")
        for name, value in connections.items():
            out.write(f"{name}={shlex.quote(value)}\n")
    path.chmod(0o600)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="logproc-local-stack",
        description="Start the local Kafka-protocol broker, Azurite and the local Batch service; write their "
        "Airflow connections to an env file; stop them all on Ctrl-C.",
    )
    parser.add_argument("--dir", type=Path, default=None, help="data directory (default: a temp dir)")
    parser.add_argument("--no-batch", action="store_true", help="do not start the local Batch service")
    parser.add_argument("--kafka-port", type=int, default=DEFAULT_PORTS["kafka"])
    parser.add_argument("--blob-port", type=int, default=DEFAULT_PORTS["blob"])
    parser.add_argument("--batch-port", type=int, default=DEFAULT_PORTS["batch"])
    parser.add_argument("--env-file", type=Path, default=DEFAULT_ENV_FILE,
                        help=f"where to write the AIRFLOW_CONN_* lines (default ./{DEFAULT_ENV_FILE})")
    args = parser.parse_args(argv)
    base = args.dir or Path(tempfile.mkdtemp(prefix="logproc-stack-"))
    try:
        ports = {
            "kafka": require_free_port(args.kafka_port, "Kafka broker", "--kafka-port"),
            "blob": require_free_port(args.blob_port, "Azurite", "--blob-port"),
        }
        if not args.no_batch:
            ports["batch"] = require_free_port(args.batch_port, "local Batch service", "--batch-port")
    except LocalServerError as error:
        parser.exit(2, f"logproc-local-stack: {error}\n")
    stack = LocalStack(base)
    try:
        stack.start(batch=not args.no_batch, ports=ports)
        connections = stack.airflow_connections()
        write_env_file(args.env_file, connections)
        ids = ", ".join(name.removeprefix("AIRFLOW_CONN_").lower() for name in connections)
        print(f"local stack running: Kafka 127.0.0.1:{ports['kafka']}, Blob 127.0.0.1:{ports['blob']}"
              + (f", Batch 127.0.0.1:{ports['batch']}" if "batch" in ports else "")
              + f" (data in {base}); Ctrl-C stops it", file=sys.stderr)
        print(f"connections {ids} written to {args.env_file}; load them with: "
              f"set -a; . {shlex.quote(str(args.env_file))}; set +a", file=sys.stderr, flush=True)
        signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
        signal.pause()
    except KeyboardInterrupt:
        pass
    finally:
        stack.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
