"""``python -m logproc_local.batch_service``: run the local Batch service (foreground).

The account key comes from ``--key``, else ``$LOGPROC_BATCH_ACCOUNT_KEY``, else a random one; with
``--write-connection FILE`` the ``azure_batch`` Airflow connection (JSON, with the key) is written
to FILE (mode 0600) rather than printed, so the key never lands in a log.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import logging
import os
import secrets
import signal
import sys
from pathlib import Path

from aiohttp import web

from logproc_local.batch_service.engine import BatchAccount, PoolConfig
from logproc_local.batch_service.node import DEFAULT_TASK_ENV_PASSTHROUGH
from logproc_local.batch_service.server import BatchServer

KEY_ENV = "LOGPROC_BATCH_ACCOUNT_KEY"


def random_account_key() -> str:
    return base64.b64encode(secrets.token_bytes(64)).decode("ascii")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m logproc_local.batch_service",
                                     description="A local Azure Batch service (REST api-version 2025-06-01) that "
                                                 "runs tasks as processes on this machine.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8780)
    parser.add_argument("--account", default="localbatch", help="the Batch account name (default: localbatch)")
    parser.add_argument("--key", default=None, help=f"the account key, base64 (default: ${KEY_ENV} or random)")
    parser.add_argument("--pool-id", default="local-pool")
    parser.add_argument("--slots", type=int, default=4, help="task slots of the local pool (default: 4)")
    parser.add_argument("--data-dir", type=Path, required=True, help="where task directories live")
    parser.add_argument("--scheduling-delay", type=float, default=0.0,
                        help="seconds a new task stays active before it may be scheduled (default: 0)")
    parser.add_argument("--task-env", default=",".join(DEFAULT_TASK_ENV_PASSTHROUGH),
                        help="comma-separated variables that tasks inherit from this process")
    parser.add_argument("--write-connection", type=Path, default=None,
                        help="write the azure_batch Airflow connection (JSON, includes the key) to this file")
    parser.add_argument("--log-level", default="INFO")
    return parser.parse_args(argv)


async def serve(args: argparse.Namespace, key: str) -> None:
    base_url = f"http://{args.host}:{args.port}"
    account = BatchAccount(args.data_dir.resolve(), args.account, base_url,
                           PoolConfig(pool_id=args.pool_id, task_slots=args.slots),
                           scheduling_delay=args.scheduling_delay,
                           task_env_passthrough=[name for name in args.task_env.split(",") if name])
    server = BatchServer(account, key)
    runner = web.AppRunner(server.app, access_log=None, handle_signals=False)
    await runner.setup()
    site = web.TCPSite(runner, args.host, args.port, reuse_address=True)
    await site.start()
    logging.getLogger("localbatch").info(
        "local Batch service: account %s at %s, pool %s with %d task slots, data in %s",
        args.account, base_url, args.pool_id, args.slots, args.data_dir)
    stopped = asyncio.Event()

    def on_signal() -> None:
        account.shutting_down = True  # before anything else: tasks killed by this signal are not failures
        stopped.set()

    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, on_signal)
    await stopped.wait()
    logging.getLogger("localbatch").info("stopping")
    await runner.cleanup()


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), stream=sys.stdout,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    key = args.key or os.environ.get(KEY_ENV) or random_account_key()
    args.data_dir.mkdir(parents=True, exist_ok=True)
    if args.write_connection:
        connection = {"conn_type": "azure_batch", "login": args.account, "password": key,
                      "extra": {"account_url": f"http://{args.host}:{args.port}"}}
        descriptor = os.open(args.write_connection, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        os.fchmod(descriptor, 0o600)  # also when the file existed with wider permissions
        with os.fdopen(descriptor, "w") as out:
            out.write(json.dumps(connection))
        logging.getLogger("localbatch").info("wrote the azure_batch connection to %s", args.write_connection)
    asyncio.run(serve(args, key))
    return 0


if __name__ == "__main__":
    sys.exit(main())
