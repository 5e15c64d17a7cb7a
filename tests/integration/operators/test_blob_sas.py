"""Short-lived, least-privilege SAS URLs from a wasb connection, checked against Azurite."""

from __future__ import annotations

import datetime as dt
import json
from urllib.parse import parse_qs, urlsplit

import pytest
from airflow.providers.microsoft.azure.hooks.wasb import WasbHook
from azure.core.exceptions import HttpResponseError
from azure.storage.blob import BlobClient, ContainerClient

from airflow_provider_logproc.azure_batch.sas import SasError, blob_sas_url, container_sas_url, redact_sas
from airflow_provider_logproc.blob.names import InvalidBlobNameError
from logproc_local.azurite import ACCOUNT_KEY

pytestmark = pytest.mark.integration


def query(url: str) -> dict[str, str]:
    return {key: values[0] for key, values in parse_qs(urlsplit(url).query).items()}


def test_read_blob_sas_reads_and_cannot_write(azurite, blob_service_client, blob_container):
    container = blob_container()
    blob_service_client.get_blob_client(container, "in/part-00000.jsonl").upload_blob(b'{"a":1}\n')
    url = blob_sas_url(WasbHook(wasb_conn_id="wasb_default"), container, "in/part-00000.jsonl",
                       expiry=dt.timedelta(minutes=30))
    assert url.startswith(f"{azurite.blob_endpoint}/{container}/in/part-00000.jsonl?")
    fields = query(url)
    assert fields["sp"] == "r" and fields["sr"] == "b"
    expiry = dt.datetime.fromisoformat(fields["se"].replace("Z", "+00:00"))
    assert dt.timedelta(minutes=29) < expiry - dt.datetime.now(dt.UTC) <= dt.timedelta(minutes=30)
    client = BlobClient.from_blob_url(url)
    assert client.download_blob().readall() == b'{"a":1}\n'
    with pytest.raises(HttpResponseError) as denied:
        client.upload_blob(b"overwrite", overwrite=True)
    assert denied.value.status_code == 403


def test_write_container_sas_creates_blobs_and_cannot_read(blob_service_client, blob_container):
    container = blob_container()
    url = container_sas_url(WasbHook(wasb_conn_id="wasb_default"), container, permission="cw",
                            expiry=dt.timedelta(hours=2))
    assert query(url)["sp"] == "cw" and query(url)["sr"] == "c"
    client = ContainerClient.from_container_url(url)
    client.upload_blob("results/partial-0.json", b"{}")
    assert blob_service_client.get_blob_client(container, "results/partial-0.json").download_blob().readall() == b"{}"
    with pytest.raises(HttpResponseError) as denied:
        client.get_blob_client("results/partial-0.json").download_blob().readall()
    assert denied.value.status_code == 403


def test_account_key_connection_without_connection_string(azurite, monkeypatch, blob_service_client, blob_container):
    monkeypatch.setenv("AIRFLOW_CONN_WASB_KEY", json.dumps(
        {"conn_type": "wasb", "host": azurite.blob_endpoint, "login": "devstoreaccount1", "password": ACCOUNT_KEY}))
    container = blob_container()
    blob_service_client.get_blob_client(container, "x.jsonl").upload_blob(b"x\n")
    url = container_sas_url(WasbHook(wasb_conn_id="wasb_key"), container, permission="rl")
    names = [blob.name for blob in ContainerClient.from_container_url(url).list_blobs()]
    assert names == ["x.jsonl"]


def test_redact_sas_hides_the_signature(blob_container):
    url = container_sas_url(WasbHook(wasb_conn_id="wasb_default"), blob_container())
    signature = query(url)["sig"]
    redacted = redact_sas(url)
    assert signature not in redacted and "sig=***" in redacted and "sp=r" in redacted


def test_refusals(azurite, monkeypatch, blob_container):
    hook = WasbHook(wasb_conn_id="wasb_default")
    container = blob_container()
    with pytest.raises(SasError, match="unknown letters 'z'"):
        container_sas_url(hook, container, permission="rz")
    with pytest.raises(SasError, match="positive"):
        blob_sas_url(hook, container, "x", expiry=dt.timedelta(0))
    with pytest.raises(SasError, match="short-lived"):
        blob_sas_url(hook, container, "x", expiry=dt.timedelta(days=8))
    with pytest.raises(InvalidBlobNameError):
        blob_sas_url(hook, container, "../x")
    monkeypatch.setenv("AIRFLOW_CONN_WASB_SAS_ONLY", json.dumps(
        {"conn_type": "wasb", "host": azurite.blob_endpoint, "extra": {"sas_token": "sv=2024-08-04&sig=abc"}}))
    with pytest.raises(SasError, match="authenticates with a SAS token"):
        container_sas_url(WasbHook(wasb_conn_id="wasb_sas_only"), container)


# -- Entra identity: user delegation SAS ---------------------------------------------------------------------
# Azurite accepts bearer tokens over HTTPS with ``--oauth basic`` (it checks issuer, audience and lifetime,
# not the token's signature) and serves user delegation keys, so the Entra branch runs for real here.

TENANT = "11111111-2222-3333-4444-555555555555"
OBJECT_ID = "aaaaaaaa-0000-0000-0000-000000000001"


class EntraLikeCredential:
    """A TokenCredential issuing tokens shaped like Entra's, for Azurite's basic OAuth check."""

    def get_token(self, *scopes, **kwargs):
        import base64
        import time

        from azure.core.credentials import AccessToken

        def encode(value: dict) -> str:
            return base64.urlsafe_b64encode(json.dumps(value).encode()).rstrip(b"=").decode()

        now = int(time.time())
        claims = {"aud": "https://storage.azure.com", "iss": f"https://sts.windows.net/{TENANT}/", "iat": now - 60,
                  "nbf": now - 60, "exp": now + 3600, "oid": OBJECT_ID, "tid": TENANT}
        return AccessToken(f"{encode({'alg': 'RS256', 'typ': 'JWT'})}.{encode(claims)}.c2lnbmF0dXJl", now + 3600)


@pytest.fixture(scope="module")
def azurite_https(tmp_path_factory):
    """A second Azurite, on HTTPS with a self-signed certificate and basic OAuth."""
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    from logproc_local.azurite import azurite_blob_binary
    from logproc_local.processes import ManagedProcess, free_port

    directory = tmp_path_factory.mktemp("azurite-https")
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = dt.datetime.now(dt.UTC)
    certificate = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(days=1)).not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                       critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256()))
    cert_path, key_path = directory / "cert.pem", directory / "key.pem"
    cert_path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    port = free_port()
    process = ManagedProcess(
        "Azurite (Blob, HTTPS + OAuth)",
        [str(azurite_blob_binary()), "--blobHost", "127.0.0.1", "--blobPort", str(port),
         "--location", str(directory / "data"), "--skipApiVersionCheck", "--disableTelemetry", "--silent", "--loose",
         "--oauth", "basic", "--cert", str(cert_path), "--key", str(key_path)],
        directory / "azurite.log")
    process.start()
    from azure.storage.blob import BlobServiceClient

    service = BlobServiceClient(f"https://127.0.0.1:{port}/devstoreaccount1", credential=EntraLikeCredential(),
                                connection_verify=str(cert_path), retry_total=0)
    try:
        process.wait_ready(lambda: list(service.list_containers(results_per_page=1)) is not None, 30)
        yield service, str(cert_path)
    finally:
        process.stop()


def test_entra_identity_gets_a_user_delegation_sas(azurite_https):
    service, cert_path = azurite_https
    service.create_container("delegated")
    service.get_blob_client("delegated", "in/part-00000.jsonl").upload_blob(b'{"a":1}\n')

    url = blob_sas_url(service, "delegated", "in/part-00000.jsonl", expiry=dt.timedelta(minutes=20))
    fields = query(url)
    assert fields["skoid"] == OBJECT_ID and fields["sktid"] == TENANT and fields["spr"] == "https"
    reader = BlobClient.from_blob_url(url, connection_verify=cert_path)
    assert reader.download_blob().readall() == b'{"a":1}\n'
    with pytest.raises(HttpResponseError) as denied:
        reader.upload_blob(b"x", overwrite=True)
    assert denied.value.status_code == 403

    writer_url = container_sas_url(service, "delegated", permission="cw", expiry=dt.timedelta(minutes=20))
    ContainerClient.from_container_url(writer_url, connection_verify=cert_path).upload_blob("out/p.json", b"{}")
    assert service.get_blob_client("delegated", "out/p.json").download_blob().readall() == b"{}"
