"""BlobUploadOperator and the upload work against Azurite: parts, manifest, reruns, names, errors."""

from __future__ import annotations

import base64
import datetime as dt
import gzip
import hashlib
import json
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from airflow_provider_logproc.blob import (
    BlobExistsError,
    BlobUploadError,
    BlobUploadRequest,
    InvalidBlobNameError,
    Source,
    upload,
)
from airflow_provider_logproc.operators.blob import BlobUploadOperator, resolve_sources
from logproc_local.processes import free_port
from tests.fixtures.airflow_dags import register_dag

pytestmark = pytest.mark.integration
PREFIX = "logs/2024/01/01"


def write_lines(path: Path, count: int, start: int = 0, width: int = 40) -> Path:
    with path.open("wb") as out:
        for i in range(start, start + count):
            out.write(b'{"n":%d,"msg":"%s"}\n' % (i, b"m" * (i % width)))
    return path


def run(service, path: Path | list[Path], **kwargs):
    paths = path if isinstance(path, list) else [path]
    request = BlobUploadRequest(sources=resolve_sources([f"file://{p}" for p in paths]), **kwargs)
    return upload(service, request, log=logging.getLogger("test.blob"))


def download(service, container: str, name: str) -> bytes:
    return service.get_blob_client(container, name).download_blob().readall()


def names_under(service, container: str, prefix: str) -> list[str]:
    return sorted(blob.name for blob in service.get_container_client(container).list_blobs(name_starts_with=prefix))


def etags(service, container: str, prefix: str) -> dict[str, str]:
    blobs = service.get_container_client(container).list_blobs(name_starts_with=prefix)
    return {blob.name: blob.etag for blob in blobs}


def test_single_blob_with_properties(blob_service_client, blob_container, tmp_path):
    container = blob_container()
    source = write_lines(tmp_path / "in.jsonl", 5_000)
    result = run(blob_service_client, source, container=container, blob_name="day/2024-01-01.jsonl",
                 metadata={"window": "2024-01-01"}, tags={"topic": "logs"}, access_tier="Cool",
                 block_size=64 * 1024)  # several blocks: the staged-block path
    data = source.read_bytes()
    assert result.record_count == 5_000 and result.manifest_url is None
    (url,) = result.blob_urls
    assert url.endswith(f"/{container}/day/2024-01-01.jsonl") and "?" not in url
    assert download(blob_service_client, container, "day/2024-01-01.jsonl") == data
    client = blob_service_client.get_blob_client(container, "day/2024-01-01.jsonl")
    properties = client.get_blob_properties()
    assert bytes(properties.content_settings.content_md5) == hashlib.md5(data).digest()
    assert properties.content_settings.content_type == "application/x-ndjson"
    assert properties.metadata == {"window": "2024-01-01"}
    assert properties.blob_tier == "Cool"
    assert client.get_blob_tags() == {"topic": "logs"}


def test_parts_end_on_line_ends_and_manifest_describes_them(blob_service_client, blob_container, tmp_path):
    container = blob_container()
    first = write_lines(tmp_path / "a.jsonl", 3_000)
    second = write_lines(tmp_path / "b.jsonl", 2_000, start=3_000)
    result = run(blob_service_client, [first, second], container=container, prefix=PREFIX, parts=4,
                 block_size=32 * 1024)
    data = first.read_bytes() + second.read_bytes()
    names = [f"{PREFIX}/part-0000{i}.jsonl" for i in range(4)]
    assert names_under(blob_service_client, container, PREFIX) == sorted([*names, f"{PREFIX}/manifest.json"])
    contents = [download(blob_service_client, container, name) for name in names]
    assert b"".join(contents) == data
    assert all(content.endswith(b"\n") for content in contents)
    for content in contents:  # every line is a whole record
        assert all(json.loads(line) for line in content.splitlines())
    assert result.record_count == 5_000

    manifest = json.loads(download(blob_service_client, container, f"{PREFIX}/manifest.json"))
    assert result.manifest_url.endswith(f"/{container}/{PREFIX}/manifest.json")
    assert manifest["part_count"] == 4 and manifest["record_count"] == 5_000 and manifest["size"] == len(data)
    assert manifest["sources"] == [f"file://{first}", f"file://{second}"]
    assert [part["url"] for part in manifest["parts"]] == result.blob_urls
    for part, name, content in zip(manifest["parts"], names, contents, strict=True):
        properties = blob_service_client.get_blob_client(container, name).get_blob_properties()
        assert part["name"] == name and part["size"] == len(content) == properties.size
        assert part["md5"] == hashlib.md5(content).hexdigest()
        assert base64.b64decode(part["content_md5"]) == bytes(properties.content_settings.content_md5)
        assert part["records"] == content.count(b"\n")


def test_gzip_parts_of_at_most_max_bytes(blob_service_client, blob_container, tmp_path):
    container = blob_container()
    source = write_lines(tmp_path / "in.jsonl", 4_000)
    result = run(blob_service_client, source, container=container, prefix=PREFIX, max_part_bytes=50_000, gzip=True)
    names = names_under(blob_service_client, container, f"{PREFIX}/part-")
    assert len(names) == len(result.blobs) > 2 and all(name.endswith(".jsonl.gz") for name in names)
    raw = [gzip.decompress(download(blob_service_client, container, name)) for name in names]
    assert all(len(part) <= 50_000 and part.endswith(b"\n") for part in raw)
    assert b"".join(raw) == source.read_bytes()
    properties = blob_service_client.get_blob_client(container, names[0]).get_blob_properties()
    assert properties.content_settings.content_type == "application/gzip"
    # Deterministic gzip: a rerun stores the very same bytes.
    md5s = [bytes(blob_service_client.get_blob_client(container, n).get_blob_properties().content_settings.content_md5)
            for n in names]
    rerun = run(blob_service_client, source, container=container, prefix=PREFIX, max_part_bytes=50_000, gzip=True)
    assert [blob.md5 for blob in rerun.blobs] == md5s


def test_rerun_replace_overwrites_the_same_names_and_removes_stale_parts(blob_service_client, blob_container,
                                                                        tmp_path):
    container = blob_container()
    run(blob_service_client, write_lines(tmp_path / "big.jsonl", 4_000), container=container, prefix=PREFIX, parts=4)
    assert len(names_under(blob_service_client, container, f"{PREFIX}/part-")) == 4
    smaller = write_lines(tmp_path / "small.jsonl", 1_000, start=10_000)
    result = run(blob_service_client, smaller, container=container, prefix=PREFIX, parts=2)
    assert names_under(blob_service_client, container, f"{PREFIX}/part-") == [
        f"{PREFIX}/part-00000.jsonl", f"{PREFIX}/part-00001.jsonl"]
    assert result.deleted_stale == [f"{PREFIX}/part-00002.jsonl", f"{PREFIX}/part-00003.jsonl"]
    manifest = json.loads(download(blob_service_client, container, f"{PREFIX}/manifest.json"))
    assert manifest["part_count"] == 2 and manifest["record_count"] == 1_000
    assert b"".join(download(blob_service_client, container, p["name"]) for p in manifest["parts"]) == (
        smaller.read_bytes())


class BrokenStream:
    """A source that fails after some data: the upload must not leave a manifest behind."""

    def __init__(self, good: bytes):
        self.good = good
        self.sent = False

    def read(self, size: int = -1) -> bytes:
        if not self.sent:
            self.sent = True
            return self.good
        raise OSError("source storage went away")


def test_a_failed_rerun_leaves_no_manifest_so_readers_never_see_a_partial_set(blob_service_client, blob_container,
                                                                               tmp_path):
    container = blob_container()
    source = write_lines(tmp_path / "in.jsonl", 2_000)
    run(blob_service_client, source, container=container, prefix=PREFIX, max_part_bytes=20_000)
    assert f"{PREFIX}/manifest.json" in names_under(blob_service_client, container, PREFIX)

    @contextmanager
    def broken_open() -> Iterator[BrokenStream]:
        yield BrokenStream(source.read_bytes()[:50_000])

    request = BlobUploadRequest(sources=[Source(uri="mem://broken", open=broken_open, size=None)],
                                container=container, prefix=PREFIX, max_part_bytes=20_000)
    with pytest.raises(OSError, match="went away"):
        upload(blob_service_client, request)
    assert f"{PREFIX}/manifest.json" not in names_under(blob_service_client, container, PREFIX)


def test_skip_if_same_uploads_nothing_when_equal_and_only_what_changed(blob_service_client, blob_container,
                                                                      tmp_path):
    container = blob_container()
    source = write_lines(tmp_path / "in.jsonl", 3_000)
    options = {"container": container, "prefix": PREFIX, "max_part_bytes": 40_000, "if_exists": "skip_if_same"}
    first = run(blob_service_client, source, **options)
    before = etags(blob_service_client, container, PREFIX)
    again = run(blob_service_client, source, **options)
    assert again.skipped and again.bytes_sent == 0
    assert etags(blob_service_client, container, PREFIX) == before
    assert again.blob_urls == first.blob_urls and again.record_count == 3_000
    assert again.manifest_url == first.manifest_url
    assert again.content_fingerprint == first.content_fingerprint

    # Append records: the earlier full parts are identical and stay untouched.
    with source.open("ab") as out:
        out.write(b'{"n":"late","msg":"appended"}\n' * 500)
    changed = run(blob_service_client, source, **options)
    after = etags(blob_service_client, container, PREFIX)
    untouched = [blob.name for blob in changed.blobs if not blob.uploaded]
    assert len(untouched) == len(first.blobs) - 1
    assert all(after[name] == before[name] for name in untouched)
    assert after[f"{PREFIX}/manifest.json"] != before[f"{PREFIX}/manifest.json"]
    assert changed.record_count == 3_500
    assert changed.content_fingerprint != first.content_fingerprint
    manifest = json.loads(download(blob_service_client, container, f"{PREFIX}/manifest.json"))
    assert manifest["record_count"] == 3_500 and manifest["part_count"] == len(changed.blobs)


def test_skip_if_same_single_blob(blob_service_client, blob_container, tmp_path):
    container = blob_container()
    source = write_lines(tmp_path / "in.jsonl", 1_000)
    run(blob_service_client, source, container=container, blob_name="one.jsonl", if_exists="skip_if_same")
    before = etags(blob_service_client, container, "one.jsonl")
    assert run(blob_service_client, source, container=container, blob_name="one.jsonl",
               if_exists="skip_if_same").skipped
    assert etags(blob_service_client, container, "one.jsonl") == before
    write_lines(source, 1_001)
    result = run(blob_service_client, source, container=container, blob_name="one.jsonl", if_exists="skip_if_same")
    assert not result.skipped and result.record_count == 1_001
    assert download(blob_service_client, container, "one.jsonl") == source.read_bytes()


def counting_source(path: Path) -> tuple[Source, list[int]]:
    opened: list[int] = []

    def open_source():
        opened.append(1)
        return path.open("rb")

    return Source(uri=f"file://{path}", open=open_source, size=path.stat().st_size), opened


@pytest.mark.parametrize("target", [{"prefix": PREFIX, "parts": 2}, {"blob_name": "one.jsonl"}])
def test_fail_refuses_before_reading_or_sending_anything(blob_service_client, blob_container, tmp_path, target):
    container = blob_container()
    path = write_lines(tmp_path / "in.jsonl", 1_000)
    source, opened = counting_source(path)
    upload(blob_service_client, BlobUploadRequest(sources=[source], container=container, if_exists="fail", **target))
    assert opened == [1]
    before = etags(blob_service_client, container, "")
    with pytest.raises(BlobExistsError, match="if_exists='fail': nothing was uploaded"):
        upload(blob_service_client, BlobUploadRequest(sources=[source], container=container, if_exists="fail",
                                                      **target))
    assert opened == [1], "the source was not even opened"
    assert etags(blob_service_client, container, "") == before
    # No uncommitted blocks were staged either.
    for name in before:
        blocks = blob_service_client.get_blob_client(container, name).get_block_list("uncommitted")[1]
        assert blocks == []


def test_single_blob_is_byte_exact_for_any_content(blob_service_client, blob_container, tmp_path):
    """A single blob gets the sources' bytes unchanged (binary Ion archives too): nothing added or cut."""
    container = blob_container()
    first, second = tmp_path / "a.ion", tmp_path / "b.ion"
    first.write_bytes(b"\xe0\x01\x00\xea" + bytes(range(256)) * 4000)  # no newline at the end
    second.write_bytes(b"\xe0\x01\x00\xea" + b"\x00" * 300_000)  # no newline at all
    result = run(blob_service_client, [first, second], container=container, blob_name="archive/raw.ion",
                 content_type="application/ion", block_size=64 * 1024, read_size=32 * 1024)
    stored = download(blob_service_client, container, "archive/raw.ion")
    assert stored == first.read_bytes() + second.read_bytes()
    properties = blob_service_client.get_blob_client(container, "archive/raw.ion").get_blob_properties()
    assert properties.content_settings.content_type == "application/ion"
    assert bytes(properties.content_settings.content_md5) == hashlib.md5(stored).digest()
    assert result.blobs[0].size == len(stored)


def test_create_container_and_empty_input(blob_service_client, tmp_path):
    container = f"created-{free_port()}"
    empty = tmp_path / "empty.jsonl"
    empty.write_bytes(b"")
    result = run(blob_service_client, empty, container=container, prefix="", create_container=True, gzip=True)
    assert [blob.name for blob in result.blobs] == ["part-00000.jsonl.gz"] and result.record_count == 0
    assert gzip.decompress(download(blob_service_client, container, "part-00000.jsonl.gz")) == b""
    assert json.loads(download(blob_service_client, container, "manifest.json"))["part_count"] == 1


# -- names and secrets: through the operator and a real wasb connection -----------------------------------


@pytest.mark.parametrize(
    ("target", "match"),
    [
        ({"container": "Bad_Container", "prefix": PREFIX}, "container name"),
        ({"container": "logs", "prefix": "logs/../other"}, r"'\.\.' as path segment 2"),
        ({"container": "logs", "prefix": "/logs/2024"}, "starts with '/'"),
        ({"container": "logs", "blob_name": "a//b.jsonl"}, "empty segment"),
        ({"container": "logs", "blob_name": "x/.."}, "ends with '/' or '.'"),
    ],
)
def test_names_are_refused_before_any_request(tmp_path, monkeypatch, target, match):
    # The connection points at a port nobody listens on: a request would fail differently.
    monkeypatch.setenv("AIRFLOW_CONN_WASB_NOWHERE", json.dumps(
        {"conn_type": "wasb", "host": f"http://127.0.0.1:{free_port()}/devstoreaccount1",
         "extra": {"sas_token": "sv=2024-08-04&sig=x", "retry_total": 0}}))
    source = write_lines(tmp_path / "in.jsonl", 10)
    operator = BlobUploadOperator(task_id="upload", source=f"file://{source}", wasb_conn_id="wasb_nowhere", **target)
    with pytest.raises(InvalidBlobNameError, match=match):
        operator.execute({})


DISTINCTIVE_KEY = base64.b64encode(b"logproc-distinctive-wrong-key-0123456789-abcdefghijklmnop").decode()
DISTINCTIVE_SIG = "LogprocDistinctiveSig0123456789abcdefXYZ%3D"


@pytest.fixture
def debug_logs(caplog):
    caplog.set_level(logging.DEBUG)
    for name in ("urllib3", "azure"):
        logging.getLogger(name).setLevel(logging.DEBUG)
    yield caplog
    for name in ("urllib3", "azure"):
        logging.getLogger(name).setLevel(logging.NOTSET)


def assert_secret_free(error: BaseException, caplog, *secrets: str) -> None:
    texts = [str(error), repr(error), caplog.text, *(record.getMessage() for record in caplog.records)]
    for secret in secrets:
        assert all(secret not in text for text in texts), f"{secret!r} leaked"
    assert error.__cause__ is None and error.__suppress_context__


def test_wrong_key_gives_a_clear_error_without_the_key(azurite, tmp_path, monkeypatch, debug_logs):
    monkeypatch.setenv("AIRFLOW_CONN_WASB_WRONG_KEY", json.dumps(
        {"conn_type": "wasb", "host": azurite.blob_endpoint, "login": "devstoreaccount1",
         "password": DISTINCTIVE_KEY, "extra": {"retry_total": 0}}))
    source = write_lines(tmp_path / "in.jsonl", 100)
    operator = BlobUploadOperator(task_id="upload", source=f"file://{source}", container="logs", blob_name="x.jsonl",
                                  wasb_conn_id="wasb_wrong_key", create_container=True)
    with pytest.raises(BlobUploadError, match="refused the credentials") as caught:
        operator.execute({})
    assert "creating container 'logs' failed" in str(caught.value)
    assert azurite.blob_endpoint in str(caught.value)
    assert_secret_free(caught.value, debug_logs, DISTINCTIVE_KEY)


def test_wrong_sas_gives_a_clear_error_and_debug_logs_without_the_signature(azurite, tmp_path, monkeypatch,
                                                                           debug_logs):
    # urllib3 logs each request line with its query (the SAS) at DEBUG: the signature must not get through.
    sas = f"sv=2024-08-04&ss=b&srt=sco&sp=rwdlac&se=2099-01-01T00:00:00Z&sig={DISTINCTIVE_SIG}"
    monkeypatch.setenv("AIRFLOW_CONN_WASB_WRONG_SAS", json.dumps(
        {"conn_type": "wasb", "host": azurite.blob_endpoint, "extra": {"sas_token": sas, "retry_total": 0}}))
    source = write_lines(tmp_path / "in.jsonl", 100)
    operator = BlobUploadOperator(task_id="upload", source=f"file://{source}", container="logs", blob_name="x.jsonl",
                                  wasb_conn_id="wasb_wrong_sas")
    with pytest.raises(BlobUploadError, match="refused the credentials") as caught:
        operator.execute({})
    assert any("/logs/x.jsonl?" in record.getMessage() for record in debug_logs.records), "the request was logged"
    assert_secret_free(caught.value, debug_logs, DISTINCTIVE_SIG, "LogprocDistinctiveSig")


def test_dead_port_gives_a_clear_error_without_the_sas(tmp_path, monkeypatch, debug_logs):
    port = free_port()
    sas = f"sv=2024-08-04&ss=b&srt=sco&sp=rwdlac&se=2099-01-01T00:00:00Z&sig={DISTINCTIVE_SIG}"
    monkeypatch.setenv("AIRFLOW_CONN_WASB_DEAD", json.dumps(
        {"conn_type": "wasb", "host": f"http://127.0.0.1:{port}/devstoreaccount1",
         "extra": {"sas_token": sas, "retry_total": 0}}))
    source = write_lines(tmp_path / "in.jsonl", 100)
    operator = BlobUploadOperator(task_id="upload", source=f"file://{source}", container="logs", prefix=PREFIX,
                                  parts=2, wasb_conn_id="wasb_dead")
    expected = f"could not reach Azure Blob Storage at http://127.0.0.1:{port}"
    with pytest.raises(BlobUploadError, match=expected) as caught:
        operator.execute({})
    assert "listing blobs under 'logs/2024/01/01/part-' failed" in str(caught.value)
    assert_secret_free(caught.value, debug_logs, DISTINCTIVE_SIG, "LogprocDistinctiveSig")


# -- a real Airflow run: templating and XCom ---------------------------------------------------------------


def test_dag_run_templates_names_and_pushes_xcom(azurite, blob_service_client, blob_container, tmp_path,
                                                 airflow_db):
    from airflow.sdk import DAG, task
    from airflow.timetables.interval import CronDataIntervalTimetable
    from airflow.utils.state import DagRunState

    container = blob_container()
    first = write_lines(tmp_path / "a.jsonl", 700)
    second = write_lines(tmp_path / "b.jsonl", 300, start=700)
    with DAG(dag_id=f"blob_upload_{container}", schedule=CronDataIntervalTimetable("@daily", timezone="UTC"),
             start_date=dt.datetime(2024, 1, 1, tzinfo=dt.UTC), catchup=False, params={"parts": 3}) as dag:

        @task
        def staged_files() -> list[str]:
            return [f"file://{first}", f"file://{second}"]

        files = staged_files()
        BlobUploadOperator(
            task_id="upload",
            source="{{ ti.xcom_pull(task_ids='staged_files') }}",
            container=container,
            prefix="logs/{{ data_interval_start.strftime('%Y/%m/%d') }}",
            parts="{{ params.parts }}",
            metadata={"window": "{{ data_interval_start | ds }}"},
        ).set_upstream(files)

    register_dag(dag)
    dag_run = dag.test(logical_date=dt.datetime(2024, 3, 2, tzinfo=dt.UTC))
    assert dag_run.state == DagRunState.SUCCESS
    ti = next(ti for ti in dag_run.get_task_instances() if ti.task_id == "upload")
    urls = ti.xcom_pull(task_ids="upload")
    manifest_uri = ti.xcom_pull(task_ids="upload", key="manifest_uri")
    assert ti.xcom_pull(task_ids="upload", key="record_count") == 1_000
    # The window of logical date 2024-03-02 is [03-01, 03-02): the prefix is the window's day.
    assert [url.rsplit(f"/{container}/", 1)[1] for url in urls] == [
        f"logs/2024/03/01/part-0000{i}.jsonl" for i in range(3)]
    assert manifest_uri.endswith(f"/{container}/logs/2024/03/01/manifest.json") and "?" not in manifest_uri
    part = blob_service_client.get_blob_client(container, "logs/2024/03/01/part-00000.jsonl")
    properties = part.get_blob_properties()
    assert properties.metadata == {"window": "2024-03-01"}


def test_progress_is_logged_in_mb_per_second_and_oversize_lines_are_reported(blob_service_client, blob_container,
                                                                             tmp_path, caplog):
    container = blob_container()
    source = tmp_path / "in.jsonl"
    source.write_bytes(b'{"a":1}\n' + b'{"long":"' + b"x" * 300 + b'"}\n' + b'{"b":2}\n' * 50)
    caplog.set_level(logging.INFO, logger="test.blob")
    request = BlobUploadRequest(sources=resolve_sources(f"file://{source}"), container=container, prefix=PREFIX,
                                max_part_bytes=100)
    result = upload(blob_service_client, request, log=logging.getLogger("test.blob"), progress_interval=0)
    assert result.blobs[1].records == 1 and result.blobs[1].raw_size == 312
    messages = [record.getMessage() for record in caplog.records]
    assert any("MB/s" in message and message.startswith("read ") for message in messages)
    assert any(message.startswith("upload finished") and "MB/s" in message for message in messages)
    assert any("single line longer than max_part_bytes=100" in message and "part-00001.jsonl" in message
               for message in messages)
