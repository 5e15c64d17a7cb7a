"""Issue 9, items 1 and 2: a server killed (SIGKILL) in the middle of a step, restarted, step retried.

Each test starts its OWN server (the session's broker and Azurite stay untouched), kills it while
the step is running, restarts it on the same port with the same data dir, retries the step the way
Airflow would (the same operator, again) and checks what a reader sees: the window's records exactly
once, every blob whole or absent, never a manifest naming a part that is not complete.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
import threading
import time
import zlib
from pathlib import Path
from typing import Any

import pytest

from logproc_local import sample_logs

pytestmark = pytest.mark.system

DAY = dt.date(2026, 4, 2)
WINDOW_RECORDS = 150_000  # enough that the read is still going when the broker is frozen
PARTITIONS = 3


class RecordingTaskInstance:
    def __init__(self) -> None:
        self.xcom: dict[str, Any] = {}

    def xcom_push(self, key: str, value: Any) -> None:
        self.xcom[key] = value


class Attempt(threading.Thread):
    """One try of a step in a thread, so the test can kill a server while it runs."""

    def __init__(self, step) -> None:
        super().__init__(daemon=True)
        self.step = step
        self.result: Any = None
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            self.result = self.step()
        except BaseException as error:
            self.error = error


def wait_for(condition, timeout: float, interval: float) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout}s")
        time.sleep(interval)


def day_bounds(day: dt.date) -> tuple[dt.datetime, dt.datetime]:
    start = dt.datetime.combine(day, dt.time(), tzinfo=dt.UTC)
    return start, start + dt.timedelta(days=1)


# --- item 1: broker killed mid-consume ----------------------------------------------------------------

def test_broker_killed_mid_consume_then_retried_gives_the_window_exactly_once(session_dir, tmp_path):
    from amazon.ion import simpleion
    from confluent_kafka.admin import AdminClient, NewTopic

    from airflow_provider_logproc.consume.ion_json import BARE_VALUE_MODEL
    from airflow_provider_logproc.operators.kafka import KafkaBatchConsumeOperator
    from logproc_local.kafka_broker import LocalKafkaBroker

    data_dir = tmp_path / "kafka-data"
    broker = LocalKafkaBroker(data_dir).start()
    try:
        admin = AdminClient({"bootstrap.servers": broker.bootstrap_servers})
        topic = "faults-kill"
        for future in admin.create_topics([NewTopic(topic, PARTITIONS, 1, config={"retention.ms": "-1"})]).values():
            future.result(timeout=15)
        produced = [r for day in (DAY - dt.timedelta(days=1), DAY, DAY + dt.timedelta(days=1))
                    for r in sample_logs.generate(day, WINDOW_RECORDS if day == DAY else 2_000, seed=21)]
        sample_logs.produce(produced, topic, {"bootstrap.servers": broker.bootstrap_servers},
                            partitions=PARTITIONS)
        time.sleep(2.5)  # noida-db writes its data dir about once a second: let it persist first
        start, end = day_bounds(DAY)
        target = tmp_path / "out" / "raw.ion"
        operator = KafkaBatchConsumeOperator(
            task_id="consume", topics=topic, output_uri=f"file://{target}", max_lateness=0,
            kafka_config_id="kafka_faults")

        def consume() -> tuple[str, dict[str, Any]]:
            ti = RecordingTaskInstance()
            uri = operator.execute({"ti": ti, "data_interval_start": start, "data_interval_end": end})  # type: ignore[typeddict-item]
            return uri, ti.xcom

        import os

        os.environ["AIRFLOW_CONN_KAFKA_FAULTS"] = json.dumps(
            {"conn_type": "kafka", "extra": broker.connection_extra()})
        try:
            first = Attempt(consume)
            began = time.monotonic()
            first.start()
            # The output's temporary file appears once the window is planned (offsets asked of
            # the broker) and reading begins: freeze the broker then, so the kill lands mid-read
            # however fast the machine is, rather than after a guessed delay.
            wait_for(lambda: any(target.parent.glob(f".{target.name}.tmp-*")) or not first.is_alive(),
                     timeout=120, interval=0.002)
            broker.freeze()
            alive_at_kill = first.is_alive()
            time.sleep(0.5)
            broker.kill()
            killed_at = time.monotonic() - began
            time.sleep(2.0)
            broker = LocalKafkaBroker(data_dir, port=broker.port).start()
            first.join(timeout=180)
            assert not first.is_alive(), "the first attempt hangs after the broker came back"
            attempts = 1
            outcome = first.result
            if first.error is not None:  # what Airflow does next: the task is retried
                attempts = 2
                second = Attempt(consume)
                second.start()
                second.join(timeout=180)
                assert second.error is None, f"the retry failed: {second.error!r}"
                outcome = second.result
            took = time.monotonic() - began
        finally:
            os.environ.pop("AIRFLOW_CONN_KAFKA_FAULTS", None)

        _uri, xcom = outcome
        with target.open("rb") as handle:
            envelopes = list(simpleion.load(handle, single_value=False, value_model=BARE_VALUE_MODEL))
        got = Counter_of((e["partition"], e["offset"]) for e in envelopes)
        start_ms, end_ms = int(start.timestamp() * 1000), int(end.timestamp() * 1000)
        want_values = sorted(r.value for r in produced if start_ms <= r.timestamp_ms < end_ms)
        duplicated = sum(n - 1 for n in got.values() if n > 1)
        got_values = sorted(envelope_value(e) for e in envelopes)
        lost = len(set(want_values) - set(got_values))
        print(json.dumps({"item": 1, "produced_in_window": len(want_values), "read": len(envelopes),
                          "lost": lost, "duplicated": duplicated, "attempts": attempts,
                          "first_attempt_error": repr(first.error)[:200], "alive_at_kill": alive_at_kill,
                          "killed_after_s": round(killed_at, 2), "total_s": round(took, 2)}))
        assert alive_at_kill, "the consume ended before the broker was frozen"
        assert duplicated == 0 and lost == 0
        assert got_values == want_values
        assert xcom["record_count"] == len(want_values)
        assert [p.name for p in target.parent.iterdir()] == ["raw.ion"]  # no temporary files left
        per_partition = Counter_of(zlib.crc32(r.key or b"") % PARTITIONS for r in produced
                                   if start_ms <= r.timestamp_ms < end_ms)
        assert Counter_of(e["partition"] for e in envelopes) == per_partition
    finally:
        broker.stop()


def Counter_of(items) -> dict:
    from collections import Counter

    return dict(Counter(items))


def envelope_value(envelope: dict[str, Any]) -> bytes:
    """The record as produced (the envelope keeps JSON values parsed): compare canonical JSON."""
    from decimal import Decimal

    import orjson

    value = envelope["value"]
    if isinstance(value, (bytes, bytearray)):
        return bytes(value)
    if isinstance(value, str):
        return value.encode()
    return orjson.dumps(value, default=lambda v: float(v) if isinstance(v, Decimal) else str(v))


# --- item 2: Azurite killed mid-upload ----------------------------------------------------------------

def _write_jsonl(path: Path, size: int) -> Path:
    line_no = 0
    with path.open("wb") as out:
        written = 0
        while written < size:
            chunk = b"".join(b'{"n":%d,"path":"/item/%d","pad":"%s"}\n' % (i, i, b"p" * (i % 97))
                             for i in range(line_no, line_no + 10_000))
            line_no += 10_000
            out.write(chunk)
            written += len(chunk)
    return path


def test_azurite_killed_mid_upload_then_retried_leaves_whole_blobs_and_no_partial_manifest(tmp_path):
    from azure.core.exceptions import ResourceNotFoundError
    from azure.storage.blob import BlobServiceClient

    from airflow_provider_logproc.blob import BlobUploadRequest, upload
    from airflow_provider_logproc.operators.blob import resolve_sources
    from logproc_local.azurite import LocalAzurite

    location = tmp_path / "azurite"
    server = LocalAzurite(location).start()
    prefix = "logs/2026/04/02"
    container = "faults"
    try:
        source = _write_jsonl(tmp_path / "raw.jsonl", 160 * 1024 * 1024)
        data = source.read_bytes()

        def service() -> BlobServiceClient:
            # Fail fast on a dead port (the retry is Airflow's job), like a task with a short SDK budget.
            return BlobServiceClient.from_connection_string(server.connection_string, retry_total=1,
                                                            connection_timeout=5, read_timeout=30)

        def attempt() -> Any:
            request = BlobUploadRequest(sources=resolve_sources([f"file://{source}"]), container=container,
                                        prefix=prefix, parts=8, create_container=True)
            return upload(service(), request, log=logging.getLogger("test.faults.blob"))

        def reader_view() -> dict[str, Any]:
            """What a reader sees: the manifest (if any) and every blob's MD5."""
            client = service().get_container_client(container)
            try:
                manifest = json.loads(client.get_blob_client(f"{prefix}/manifest.json").download_blob().readall())
            except ResourceNotFoundError:
                manifest = None
            blobs = {b.name: hashlib.md5(client.get_blob_client(b.name).download_blob().readall()).hexdigest()
                     for b in client.list_blobs(name_starts_with=prefix) if not b.name.endswith("manifest.json")}
            return {"manifest": manifest, "blobs": blobs}

        # The container exists before the run (as in production). Azurite saves its metadata every
        # few seconds: a kill -9 right after creating it would lose the container itself.
        service().create_container(container)
        time.sleep(6)
        first = Attempt(attempt)
        began = time.monotonic()
        first.start()

        def a_part_is_committed() -> bool:
            return any(b.name.endswith(".jsonl") for b in
                       service().get_container_client(container).list_blobs(name_starts_with=prefix))

        # Freeze Azurite once the first part is committed (the upload is then under way, with
        # parts still to go however fast the machine is), rather than after a guessed delay.
        wait_for(lambda: a_part_is_committed() or not first.is_alive(), timeout=120, interval=0.01)
        server.freeze()
        alive_at_kill = first.is_alive()
        server.kill()
        killed_at = time.monotonic() - began
        first.join(timeout=300)
        assert not first.is_alive()
        server = LocalAzurite(location, port=server.port).start()

        after_kill = reader_view()
        # Never a partial manifest: either none, or one whose every part is present and matches.
        if after_kill["manifest"] is not None:
            for part in after_kill["manifest"]["parts"]:
                assert after_kill["blobs"].get(part["name"]) == part["md5"]
        attempts = 1
        result = first.result
        if first.error is not None:
            attempts = 2
            result = attempt()
        took = time.monotonic() - began

        view = reader_view()
        manifest = view["manifest"]
        assert manifest is not None and manifest["part_count"] == len(result.blob_urls)
        joined = b"".join(
            service().get_blob_client(container, part["name"]).download_blob().readall()
            for part in manifest["parts"])
        assert joined == data
        for part in manifest["parts"]:
            assert view["blobs"][part["name"]] == part["md5"]
        # A part the killed attempt managed to commit was already whole (names and cuts are
        # deterministic, so it must equal the final part of the same name).
        for name, md5 in after_kill["blobs"].items():
            assert view["blobs"].get(name, md5) == md5, f"{name} was partial after the kill"
        assert sorted(view["blobs"]) == sorted(part["name"] for part in manifest["parts"])  # no stray blobs
        print(json.dumps({"item": 2, "bytes": len(data), "parts": manifest["part_count"],
                          "records": manifest["record_count"], "attempts": attempts,
                          "first_attempt_error": repr(first.error)[:200], "alive_at_kill": alive_at_kill,
                          "killed_after_s": round(killed_at, 2),
                          "manifest_after_kill": after_kill["manifest"] is not None,
                          "blobs_after_kill": len(after_kill["blobs"]), "total_s": round(took, 2)}))
        assert alive_at_kill, "the upload ended before the kill: raise the source size"
    finally:
        server.stop()
