"""TLS on the gateway port (self-signed, and a given cert), and the Prometheus endpoint."""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
import shutil
import socket
import ssl
import subprocess
import threading
import urllib.request
from pathlib import Path

import openai
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from .conftest import SdkFactory
from .gateway_process import GatewayProcess, create_key, http


def _tls_client(make_sdk: SdkFactory, gw: GatewayProcess, key: str, cafile: Path) -> openai.OpenAI:
    context = ssl.create_default_context(cafile=str(cafile))
    return make_sdk(gw.api_base, key, http_client=openai.DefaultHttpxClient(verify=context))


@pytest.mark.slow
def test_self_signed_tls_is_trusted_through_its_certificate(tmp_path: Path, make_sdk: SdkFactory) -> None:
    data_dir = tmp_path / "data"
    key = create_key(data_dir, "tls")
    with GatewayProcess(data_dir, "--tls-self-signed") as gw:
        assert gw.base_url.startswith("https://")
        cert = data_dir / "tls" / "cert.pem"
        assert f"NODE_EXTRA_CA_CERTS={cert}" in gw.stdout_path.read_text()
        raw = _tls_client(make_sdk, gw, key, cert).realtime.client_secrets.with_raw_response.create()
        assert raw.parse().value.startswith("ek_")
        assert raw.headers["strict-transport-security"] == "max-age=31536000"
        assert raw.headers["x-content-type-options"] == "nosniff"
        with pytest.raises(openai.APIConnectionError):  # untrusted without the certificate
            make_sdk(gw.api_base, key).models.list()
    # the certificate is kept: a restart serves the same one
    first = cert.read_bytes()
    with GatewayProcess(data_dir, "--tls-self-signed", log_name="again"):
        assert cert.read_bytes() == first


@pytest.mark.slow
def test_given_certificate_and_key(tmp_path: Path, make_sdk: SdkFactory) -> None:
    from ovos_realtime_gateway.tls import ensure_self_signed

    cert, key_file = ensure_self_signed(tmp_path / "own", ["127.0.0.1"])
    data_dir = tmp_path / "data"
    key = create_key(data_dir, "tls")
    with GatewayProcess(data_dir, "--tls-cert", str(cert), "--tls-key", str(key_file)) as gw:
        assert _tls_client(make_sdk, gw, key, cert).models.list().data


def _healthz_from_python(url: str, cafile: Path) -> int:
    """GET /healthz trusting only `cafile`, with strict X.509 checks (Python 3.13's default)."""
    context = ssl.create_default_context(cafile=str(cafile))
    context.verify_flags |= ssl.VERIFY_X509_STRICT
    with urllib.request.urlopen(f"{url}/healthz", context=context, timeout=10) as response:
        return int(response.status)


NODE_GET = """
const https = require("https");
https.get(process.argv[1], (r) => { console.log(r.statusCode); r.resume(); })
  .on("error", (e) => { console.log("error " + e.code); process.exitCode = 1; });
"""


def _healthz_from_node(url: str, cafile: Path) -> str:
    """GET /healthz from Node, trusting `cafile` through NODE_EXTRA_CA_CERTS (as docs say)."""
    node = shutil.which("node")
    if node is None:
        pytest.fail("node is missing: scripts/install-system-deps installs it")
    env = {**os.environ, "NODE_EXTRA_CA_CERTS": str(cafile)}
    done = subprocess.run(
        [node, "-e", NODE_GET, f"{url}/healthz"], env=env, capture_output=True, text=True, timeout=60
    )
    return done.stdout.strip() + done.stderr.strip()


def _signed_with(cert_path: Path, key_path: Path, tmp: Path) -> tuple[Path, Path]:
    """A server certificate for 127.0.0.1 that the gateway's key signs, naming its certificate
    as issuer: what a stolen key could mint if that certificate were a CA."""
    issuer = x509.load_pem_x509_certificate(cert_path.read_bytes())
    issuer_key = serialization.load_pem_private_key(key_path.read_bytes(), None)
    assert isinstance(issuer_key, ec.EllipticCurvePrivateKey)
    key = ec.generate_private_key(ec.SECP256R1())
    now = dt.datetime.now(dt.timezone.utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "forged")]))
        .issuer_name(issuer.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False
        )
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), False)
        .sign(issuer_key, hashes.SHA256())
    )
    (tmp / "forged.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (tmp / "forged.key").write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    return tmp / "forged.pem", tmp / "forged.key"


def _handshake_trusting(cafile: Path, cert: Path, key: Path) -> None:
    """A TLS handshake with a server presenting `cert`, by a client that trusts only `cafile`."""
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_context.load_cert_chain(cert, key)
    listener = socket.create_server(("127.0.0.1", 0))

    def serve() -> None:
        connection, _ = listener.accept()
        try:
            server_context.wrap_socket(connection, server_side=True).close()
        except (ssl.SSLError, OSError):
            connection.close()

    server = threading.Thread(target=serve, daemon=True)
    server.start()
    try:
        client_context = ssl.create_default_context(cafile=str(cafile))
        with socket.create_connection(listener.getsockname(), timeout=10) as raw:
            client_context.wrap_socket(raw, server_hostname="127.0.0.1").close()
    finally:
        server.join(10)
        listener.close()


@pytest.mark.slow
def test_the_self_signed_certificate_is_a_server_leaf_that_vouches_for_no_one_else(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    with GatewayProcess(data_dir, "--tls-self-signed") as gw:
        cert_path, key_path = data_dir / "tls" / "cert.pem", data_dir / "tls" / "key.pem"
        cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
        constraints = cert.extensions.get_extension_for_class(x509.BasicConstraints)
        assert constraints.critical and constraints.value.ca is False
        usage = cert.extensions.get_extension_for_class(x509.KeyUsage)
        assert usage.critical and usage.value.digital_signature
        assert not usage.value.key_cert_sign and not usage.value.crl_sign
        extended = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
        assert list(extended) == [ExtendedKeyUsageOID.SERVER_AUTH]
        names = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        assert names.get_values_for_type(x509.DNSName) == ["localhost"]
        assert {str(a) for a in names.get_values_for_type(x509.IPAddress)} == {"127.0.0.1", "::1"}
        assert oct(key_path.stat().st_mode & 0o777) == "0o600"
        # Python and Node trust it as it is, by the address and by the name
        by_name = gw.base_url.replace("127.0.0.1", "localhost")
        for url in (gw.base_url, by_name):
            assert _healthz_from_python(url, cert_path) == 200
            assert _healthz_from_node(url, cert_path) == "200"
        # a certificate its key signs is not trusted by whoever trusts it
        forged, forged_key = _signed_with(cert_path, key_path, tmp_path)
        with pytest.raises(ssl.SSLCertVerificationError) as refused:
            _handshake_trusting(cert_path, forged, forged_key)
        assert refused.value.verify_message == "invalid CA certificate"


def _ca_as_older_versions_made_it(data_dir: Path) -> bytes:
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "ovos-realtime self-signed")])
    now = dt.datetime.now(dt.timezone.utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=825))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName("localhost")]), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    (data_dir / "tls").mkdir(parents=True)
    (data_dir / "tls" / "key.pem").write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    pem = cert.public_bytes(serialization.Encoding.PEM)
    (data_dir / "tls" / "cert.pem").write_bytes(pem)
    return pem


@pytest.mark.slow
def test_a_ca_certificate_left_by_an_older_version_is_replaced_at_start(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    old = _ca_as_older_versions_made_it(data_dir)
    with GatewayProcess(data_dir, "--tls-self-signed") as gw:
        cert_path = data_dir / "tls" / "cert.pem"
        assert cert_path.read_bytes() != old
        cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
        assert cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca is False
        assert _healthz_from_python(gw.base_url, cert_path) == 200
    assert "replacing the self-signed certificate" in gw.logs()
    assert "it is a CA" in gw.logs() and f"NODE_EXTRA_CA_CERTS={cert_path}" in gw.logs()


def test_metrics_count_requests_and_failures(gateway: GatewayProcess, alpha_key: str) -> None:
    http("GET", f"{gateway.api_base}/models", key=alpha_key)
    http("GET", f"{gateway.api_base}/models", key="sk-ovos-nope")
    http("GET", f"{gateway.api_base}/models")
    text = http("GET", f"{gateway.base_url}/metrics").body.decode()
    assert 'ovos_realtime_http_requests_total{method="GET",route="/v1/models",status="200"}' in text
    assert 'ovos_realtime_http_requests_total{method="GET",route="/v1/models",status="401"}' in text
    assert 'ovos_realtime_auth_failures_total{reason="missing"}' in text
    assert 'ovos_realtime_auth_failures_total{reason="invalid_api_key"}' in text
    assert "ovos_realtime_http_request_duration_seconds_bucket" in text


def test_health_and_readiness(gateway: GatewayProcess) -> None:
    assert http("GET", f"{gateway.base_url}/healthz").json()["status"] == "ok"
    ready = http("GET", f"{gateway.base_url}/readyz")
    assert ready.status == 200
    body = ready.json()
    assert body["status"] == "ready"
    assert body["checks"]["store"]["ok"] is True and body["checks"]["store"]["schema_version"] >= 3
    assert body["checks"]["policy"] == {"ok": True, "source": "embedded"}
