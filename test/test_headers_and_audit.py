"""Every response's OpenAI headers, and the request id in the logs and the audit trail."""

from __future__ import annotations

import base64
import re
import sqlite3
import time
from http.client import HTTPConnection

import openai

from .gateway_process import GatewayProcess, http

REQUEST_ID = re.compile(r"^req_[0-9a-f]{32}$")


def test_success_carries_openai_headers(gateway: GatewayProcess, alpha_key: str) -> None:
    result = http("POST", f"{gateway.api_base}/realtime/client_secrets", json_body={}, key=alpha_key)
    assert result.status == 200
    h = result.headers
    assert REQUEST_ID.match(h["x-request-id"])
    assert int(h["openai-processing-ms"]) >= 1
    assert h["openai-version"] == "2020-10-01"
    assert int(h["x-ratelimit-limit-requests"]) >= int(h["x-ratelimit-remaining-requests"]) >= 0
    assert re.match(r"^(\d+h)?(\d+m)?\d+m?s$", h["x-ratelimit-reset-requests"])
    assert h["openai-project"].startswith("proj_")


def test_request_ids_are_unique_and_on_errors_too(gateway: GatewayProcess) -> None:
    ids = {http("GET", f"{gateway.api_base}/models").headers["x-request-id"] for _ in range(5)}
    assert len(ids) == 5 and all(REQUEST_ID.match(i) for i in ids)


def test_sdk_exposes_the_request_id(client: openai.OpenAI) -> None:
    raw = client.realtime.client_secrets.with_raw_response.create()
    assert REQUEST_ID.match(raw.headers["x-request-id"])
    assert raw.parse().value.startswith("ek_")


def _audit_rows(gateway: GatewayProcess, request_id: str) -> list[tuple[str, str, int]]:
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:  # the audit writer flushes in batches
        with sqlite3.connect(gateway.data_dir / "ovos-realtime.db") as db:
            rows = db.execute(
                "select action, decision, status from audit_log where request_id = ?", (request_id,)
            ).fetchall()
        if rows:
            return rows
        time.sleep(0.05)
    return []


def test_request_id_reaches_audit_and_logs(gateway: GatewayProcess, alpha_key: str) -> None:
    minted = http("POST", f"{gateway.api_base}/realtime/client_secrets", json_body={}, key=alpha_key)
    request_id = minted.headers["x-request-id"]
    assert _audit_rows(gateway, request_id) == [("client_secrets.create", "allowed", 200)]
    assert f'"request_id": "{request_id}"' in gateway.logs()  # JSON lines: stderr is not a terminal

    refused = http("POST", f"{gateway.api_base}/realtime/client_secrets", json_body={}, key="sk-ovos-wrong")
    assert _audit_rows(gateway, refused.headers["x-request-id"]) == [
        ("client_secrets.create", "unauthenticated", 401)
    ]


def test_secrets_never_reach_the_logs(gateway: GatewayProcess, alpha_key: str) -> None:
    minted = http("POST", f"{gateway.api_base}/realtime/client_secrets", json_body={}, key=alpha_key).json()
    logs = gateway.logs()
    assert alpha_key not in logs
    assert minted["value"] not in logs


SECURITY_HEADERS = {
    "x-content-type-options": "nosniff",
    "referrer-policy": "no-referrer",
    "x-frame-options": "DENY",
}


def _assert_secured(headers: dict[str, str], what: str) -> None:
    for name, value in SECURITY_HEADERS.items():
        assert headers.get(name) == value, f"{what}: {name} = {headers.get(name)!r}"
    assert "frame-ancestors 'none'" in headers["content-security-policy"], what
    assert "strict-transport-security" not in headers, f"{what}: HSTS without TLS"


def test_every_response_carries_security_headers(gateway: GatewayProcess, alpha_key: str) -> None:
    responses = {
        "success": http("GET", f"{gateway.api_base}/models", key=alpha_key),
        "401": http("GET", f"{gateway.api_base}/models"),
        "404": http("GET", f"{gateway.base_url}/no/such/path"),
        "405": http("DELETE", f"{gateway.api_base}/models"),
        "health": http("GET", f"{gateway.base_url}/healthz"),
        "metrics": http("GET", f"{gateway.base_url}/metrics"),
        "openapi": http("GET", f"{gateway.base_url}/openapi.yaml"),
    }
    for what, result in responses.items():
        _assert_secured(result.headers, what)
        assert result.headers["content-security-policy"].startswith("default-src 'none'"), what


def test_the_websocket_handshake_carries_security_headers(gateway: GatewayProcess, alpha_key: str) -> None:
    host, port = gateway.base_url.removeprefix("http://").split(":")
    connection = HTTPConnection(host, int(port), timeout=10)
    try:
        connection.request(
            "GET",
            "/v1/realtime?model=gpt-realtime",
            headers={
                "Authorization": f"Bearer {alpha_key}",
                "Connection": "Upgrade",
                "Upgrade": "websocket",
                "Sec-WebSocket-Version": "13",
                "Sec-WebSocket-Key": base64.b64encode(b"0123456789abcdef").decode(),
            },
        )
        handshake = connection.getresponse()
        assert handshake.status == 101
        _assert_secured({k.lower(): v for k, v in handshake.getheaders()}, "101")
    finally:
        connection.close()
