"""Issue 17: how fast a staged object reaches the local Blob stand-in (Azurite), by client.

Explains the daily DAG's abfs-vs-file ratio (bench_daily_dag.py --staging both): is the time in how
the provider writes (``ObjectStoragePath``/adlfs, one block at a time) or in Azurite? Writes the same
``--megabytes`` of random bytes, alternating A B C … over ``--repeat`` rounds, through

* ``adlfs``   — ``ObjectStoragePath("abfs://wasb_default@staging/...").open("wb")``, 1 MB writes
                (what ``staging.atomic_write`` does for an object-store base);
* ``sdk-1``   — ``BlobClient.upload_blob(max_concurrency=1)``;
* ``sdk-4``   — ``BlobClient.upload_blob(max_concurrency=4)`` (blocks staged in parallel).

Prints each client's median time [range] and MB/s. If the parallel upload is not much faster than
the others, the stand-in is the limit, not the client.

    .venv/bin/python bench/bench_staging_write.py [--megabytes 200] [--repeat 5]
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

from logproc_local.azurite import LocalAzurite  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--megabytes", type=int, default=200)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    logging.getLogger("azure").setLevel(logging.WARNING)
    azurite = LocalAzurite(Path(tempfile.mkdtemp(prefix="bench-staging-")) / "azurite").start()
    try:
        from azure.storage.blob import BlobServiceClient

        service = BlobServiceClient.from_connection_string(azurite.connection_string)
        service.create_container("staging")
        os.environ["AIRFLOW_CONN_WASB_DEFAULT"] = json.dumps(
            {"conn_type": "wasb", "extra": {"connection_string": azurite.connection_string}})
        from airflow.providers.common.compat.sdk import ObjectStoragePath

        megabyte = os.urandom(1 << 20)
        data = megabyte * args.megabytes

        def through_adlfs() -> None:
            with ObjectStoragePath("abfs://wasb_default@staging/bench/adlfs.bin").open("wb") as handle:
                for _ in range(args.megabytes):
                    handle.write(megabyte)

        def through_sdk(threads: int) -> Callable[[], None]:
            def upload() -> None:
                service.get_blob_client("staging", f"bench/sdk-{threads}.bin").upload_blob(
                    data, overwrite=True, max_concurrency=threads)
            return upload

        clients = {"adlfs": through_adlfs, "sdk-1": through_sdk(1), "sdk-4": through_sdk(4)}
        logging.getLogger("azure").setLevel(logging.WARNING)  # importing Airflow may have reset it
        times: dict[str, list[float]] = {name: [] for name in clients}
        for _ in range(args.repeat):
            for name, write in clients.items():
                started = time.perf_counter()
                write()
                times[name].append(time.perf_counter() - started)
        print(f"{args.megabytes} MB to Azurite, {args.repeat} alternating rounds (median [min-max]):")
        for name, values in times.items():
            median = statistics.median(values)
            rate = args.megabytes / median
            print(f"  {name:6s} {median:6.2f} s [{min(values):.2f}-{max(values):.2f}]  {rate:5.0f} MB/s")
    finally:
        azurite.stop()


if __name__ == "__main__":
    main()
