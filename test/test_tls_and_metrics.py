"""TLS on the gateway port (self-signed, and a given cert), and the Prometheus endpoint."""

from __future__ import annotations

import ssl
from pathlib import Path

import openai
import pytest

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
