"""Rate limits (429 + headers), the Rego policy (custom file, denial → 403 + audit + metric),
and an unreachable OPA server (fail closed, /readyz says why)."""

from __future__ import annotations

import asyncio
import json
import socket
import sqlite3
import time
from collections.abc import Mapping
from http.client import HTTPConnection
from pathlib import Path

import aiohttp
import openai
import pytest

from ovos_realtime_gateway.rest.forwarded import client_address, networks

from .conftest import SdkFactory
from .gateway_process import GatewayProcess, configured_gateway, create_key, http
from .realtime_helpers import EventReader, ws_url
from .waiting import wait_until_async


def _config(tmp_path: Path, settings: Mapping[str, object]) -> str:
    tmp_path.mkdir(parents=True, exist_ok=True)
    path = tmp_path / "settings.json"
    path.write_text(json.dumps(settings))
    return str(path)


@pytest.mark.slow
def test_requests_per_minute_per_key(tmp_path: Path, make_sdk: SdkFactory) -> None:
    data_dir = tmp_path / "data"
    key = create_key(data_dir, "limited")
    config = _config(tmp_path, {"rate_limits": {"requests_per_minute_per_key": 3}})
    with GatewayProcess(data_dir, "--config", config) as gw:
        remaining = [
            int(http("GET", f"{gw.api_base}/models", key=key).headers["x-ratelimit-remaining-requests"])
            for _ in range(3)
        ]
        assert remaining == [2, 1, 0]
        refused = http("GET", f"{gw.api_base}/models", key=key)
        assert refused.status == 429
        assert refused.json()["error"]["code"] == "rate_limit_exceeded"
        assert int(refused.headers["retry-after"]) >= 1
        with pytest.raises(openai.RateLimitError):
            make_sdk(gw.api_base, key).models.list()
        # another key of the same project has its own bucket
        other = create_key(data_dir, "limited")
        assert http("GET", f"{gw.api_base}/models", key=other).status == 200
        metrics = http("GET", f"{gw.base_url}/metrics").body.decode()
        assert 'ovos_realtime_rate_limited_total{scope="key"}' in metrics
        assert 'ovos_realtime_rate_limit_decisions_total{limit="requests",result="throttled"} 2.0' in metrics


@pytest.mark.slow
def test_per_project_override(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    key = create_key(data_dir, "tight")
    free = create_key(data_dir, "free")
    config = _config(tmp_path, {"project_limits": {"tight": {"requests_per_minute": 1}}})
    with GatewayProcess(data_dir, "--config", config) as gw:
        assert http("GET", f"{gw.api_base}/models", key=key).status == 200
        assert http("GET", f"{gw.api_base}/models", key=key).status == 429
        assert all(http("GET", f"{gw.api_base}/models", key=free).status == 200 for _ in range(3))


DENY_SECRETS = """
package ovos_realtime

import rego.v1

default allow := false

allow if input.action == "models.list"

reason := "" if allow

else := "minting is switched off on this device"

decision := {"allow": allow, "reason": reason}
"""


@pytest.mark.slow
def test_custom_policy_denial_is_403_audited_and_counted(tmp_path: Path, make_sdk: SdkFactory) -> None:
    data_dir = tmp_path / "data"
    key = create_key(data_dir, "policed")
    policy = tmp_path / "policy.rego"
    policy.write_text(DENY_SECRETS)
    with GatewayProcess(data_dir, "--config", _config(tmp_path, {"policy_file": str(policy)})) as gw:
        sdk = make_sdk(gw.api_base, key)
        sdk.models.list()
        with pytest.raises(openai.PermissionDeniedError) as caught:
            sdk.realtime.client_secrets.create()
        assert "minting is switched off on this device" in caught.value.message
        request_id = caught.value.response.headers["x-request-id"]
        deadline = time.monotonic() + 5
        rows: list[tuple[str, str]] = []
        while not rows and time.monotonic() < deadline:
            time.sleep(0.05)
            with sqlite3.connect(data_dir / "ovos-realtime.db") as db:
                rows = db.execute(
                    "select action, decision from audit_log where request_id = ?", (request_id,)
                ).fetchall()
        assert rows == [("client_secrets.create", "denied")]
        metrics = http("GET", f"{gw.base_url}/metrics").body.decode()
        assert 'ovos_realtime_policy_denials_total{action="client_secrets.create"} 1.0' in metrics
        decided = 'ovos_realtime_policy_decisions_total{action="client_secrets.create",result="denied"} 1.0'
        assert decided in metrics


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.slow
def test_unreachable_opa_fails_closed(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    key = create_key(data_dir, "opa")
    config = _config(tmp_path, {"opa_url": f"http://127.0.0.1:{_closed_port()}"})
    with GatewayProcess(data_dir, "--config", config) as gw:
        refused = http("POST", f"{gw.api_base}/realtime/client_secrets", json_body={}, key=key)
        assert refused.status == 503
        assert refused.json()["error"]["code"] == "policy_unavailable"
        ready = http("GET", f"{gw.base_url}/readyz")
        assert ready.status == 503
        assert ready.json()["checks"]["policy"]["ok"] is False


def test_bad_policy_file_is_one_line_at_start(tmp_path: Path) -> None:
    policy = tmp_path / "broken.rego"
    policy.write_text("package ovos_realtime\nallow if {")
    process = GatewayProcess(tmp_path / "data", "--config", _config(tmp_path, {"policy_file": str(policy)}))
    with pytest.raises(AssertionError) as caught:
        process.start(timeout=20)
    assert f"policy_file {policy}: the Rego policy does not compile" in str(caught.value)
    assert "(line 2, column 10)" in str(caught.value)
    assert "Traceback" not in str(caught.value)


async def test_websocket_upgrade_is_policy_checked_and_session_limited(tmp_path: Path) -> None:
    """The upgrade is an entry point like any other: a policy denial is `error` + close 3000
    (after the 101, as OpenAI reports problems); the project's concurrent-session limit is
    `session_limit_reached` + close 1013, and a slot frees when a session ends."""
    policy = tmp_path / "policy.rego"
    policy.write_text(DENY_SECRETS)  # allows only models.list: no realtime.connect
    denied_dir = tmp_path / "denied"
    denied_dir.mkdir()
    denied_key = await asyncio.to_thread(create_key, denied_dir, "nope")
    limited_dir = tmp_path / "limited"
    limited_dir.mkdir()
    limited_key = await asyncio.to_thread(create_key, limited_dir, "small")
    limits = {"rate_limits": {"concurrent_sessions": 1, "concurrent_sessions_per_key": 1}}
    denied_config = _config(tmp_path / "d", {"policy_file": str(policy)})
    limited_config = _config(tmp_path / "l", limits)
    async with (
        GatewayProcess(denied_dir, "--config", denied_config, log_name="d") as denied,
        GatewayProcess(limited_dir, "--config", limited_config, log_name="l") as limited,
    ):
        async with aiohttp.ClientSession() as http_session:
            auth = {"Authorization": f"Bearer {denied_key}"}
            async with http_session.ws_connect(
                ws_url(denied.api_base, model="gpt-realtime"), headers=auth
            ) as ws:
                error = await EventReader(ws).next()
                assert error["type"] == "error" and error["error"]["code"] == "insufficient_permissions"
                await ws.receive()
                assert ws.close_code == 3000
            metrics = (await asyncio.to_thread(http, "GET", f"{denied.base_url}/metrics")).body.decode()
            assert 'ovos_realtime_policy_denials_total{action="realtime.connect"} 1.0' in metrics

            auth = {"Authorization": f"Bearer {limited_key}"}
            url = ws_url(limited.api_base, model="gpt-realtime")
            async with http_session.ws_connect(url, headers=auth) as first:
                assert (await EventReader(first).next())["type"] == "session.created"
                async with http_session.ws_connect(url, headers=auth) as second:
                    error = await EventReader(second).next()
                    assert error["error"]["code"] == "session_limit_reached"
                    await second.receive()
                    assert second.close_code == 1013

            # the first one ended: its slot is free once the server has closed it (1013 means
            # "try again later"); the gauge falls after the slot is released
            async def none_open() -> bool:
                answer = await asyncio.to_thread(http, "GET", f"{limited.base_url}/metrics")
                return b"\novos_realtime_sessions_open 0.0\n" in answer.body

            await wait_until_async(none_open, "the first session's slot released", 30)
            async with http_session.ws_connect(url, headers=auth) as third:
                assert (await EventReader(third).next())["type"] == "session.created"
            metrics = (await asyncio.to_thread(http, "GET", f"{limited.base_url}/metrics")).body.decode()
            throttled = 'ovos_realtime_rate_limit_decisions_total{limit="sessions",result="throttled"} 1.0'
            assert throttled in metrics


async def test_an_address_that_keeps_failing_authentication_is_held_off(tmp_path: Path) -> None:
    """Past `auth_failures_per_minute` failed authentications, an address gets 429 — even with a
    good key, on REST and on the WebSocket upgrade — while another address is not affected."""
    gateway, key = await asyncio.to_thread(
        configured_gateway, tmp_path, {"auth_failures_per_minute": 3}, "alpha", "throttle"
    )
    async with gateway:
        models = f"{gateway.api_base}/models"
        for _ in range(3):
            assert (await asyncio.to_thread(http, "GET", models, key="sk-ovos-wrong")).status == 401
        held = await asyncio.to_thread(http, "GET", models, key=key)
        assert held.status == 429 and held.json()["error"]["code"] == "rate_limit_exceeded", held.body
        assert "failed authentications from 127.0.0.1" in held.json()["error"]["message"]
        assert int(held.headers["retry-after"]) >= 1
        async with (
            aiohttp.ClientSession() as http_session,
            http_session.ws_connect(
                ws_url(gateway.api_base, model="gpt-realtime"), headers={"Authorization": f"Bearer {key}"}
            ) as ws,
        ):
            error = await EventReader(ws).next()
            assert error["error"]["code"] == "rate_limit_exceeded"
            await ws.receive()
            assert ws.close_code == 1013
        # 127.0.0.2 is loopback too, but another address: its good key works
        assert (await asyncio.to_thread(_from, gateway, "127.0.0.2", key, None)) == 200
        text = (await asyncio.to_thread(http, "GET", f"{gateway.base_url}/metrics")).body.decode()
        assert 'ovos_realtime_auth_failures_total{reason="throttled"} 2.0' in text


def _detail_of(gateway: GatewayProcess, request_id: str) -> dict[str, object]:
    """The audit detail of a request (the audit writer flushes in batches)."""
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        with sqlite3.connect(gateway.data_dir / "ovos-realtime.db") as db:
            row = db.execute("select detail from audit_log where request_id = ?", (request_id,)).fetchone()
        if row is not None:
            detail: dict[str, object] = json.loads(row[0])
            return detail
        time.sleep(0.05)
    raise AssertionError(f"no audit row for {request_id}")


def _from(gateway: GatewayProcess, source: str, key: str, forwarded_for: str | None) -> int:
    """GET /v1/models from the loopback address `source`, claiming to forward `forwarded_for`."""
    host, port = gateway.base_url.removeprefix("http://").split(":")
    connection = HTTPConnection(host, int(port), source_address=(source, 0), timeout=10)
    headers = {"Authorization": f"Bearer {key}"}
    if forwarded_for is not None:
        headers["X-Forwarded-For"] = forwarded_for
    try:
        connection.request("GET", "/v1/models", headers=headers)
        return connection.getresponse().status
    finally:
        connection.close()


async def _websocket_opens(gateway: GatewayProcess, key: str, forwarded_for: str) -> str:
    """The first event a WebSocket session gets, connecting as `forwarded_for` behind the proxy."""
    headers = {"Authorization": f"Bearer {key}", "X-Forwarded-For": forwarded_for}
    url = ws_url(gateway.api_base, model="gpt-realtime")
    async with aiohttp.ClientSession() as http_session, http_session.ws_connect(url, headers=headers) as ws:
        first = await EventReader(ws).next()
        return str(first["type"] if first["type"] != "error" else first["error"]["code"])


async def test_behind_a_trusted_proxy_the_scanner_is_held_off_not_everyone(tmp_path: Path) -> None:
    """With the proxy (127.0.0.1) trusted, failed authentications count against the client its
    X-Forwarded-For names, so one scanner does not lock out every client behind the proxy."""
    settings = {
        "auth_failures_per_minute": 3,
        "trusted_proxies": ["127.0.0.1/32"],
        "audit_repeats_window_seconds": 1,  # a throttled address's row is written when its window closes
        "audit_client_address": "full",  # which client the audit names (the default keeps only its /24)
    }
    gateway, key = await asyncio.to_thread(configured_gateway, tmp_path, settings, "alpha", "proxied")
    async with gateway:
        models = f"{gateway.api_base}/models"
        scanner = {"X-Forwarded-For": "10.0.0.1"}
        failed = [
            (await asyncio.to_thread(http, "GET", models, key="sk-ovos-wrong", headers=scanner))
            for _ in range(3)
        ]
        assert [f.status for f in failed] == [401] * 3
        assert (await asyncio.to_thread(_detail_of, gateway, failed[0].headers["x-request-id"]))[
            "remote"
        ] == "10.0.0.1"
        held = await asyncio.to_thread(http, "GET", models, key=key, headers=scanner)
        assert held.status == 429, held.body
        assert "failed authentications from 10.0.0.1" in held.json()["error"]["message"]
        assert (await asyncio.to_thread(_detail_of, gateway, held.headers["x-request-id"]))[
            "remote"
        ] == "10.0.0.1"
        # what the scanner writes left of the proxy's own entry is not believed
        spoofed = await asyncio.to_thread(
            http, "GET", models, key=key, headers={"X-Forwarded-For": "10.0.0.2, 10.0.0.1"}
        )
        assert spoofed.status == 429
        # another client behind the same proxy is not affected, on REST and on the WebSocket
        assert (
            await asyncio.to_thread(http, "GET", models, key=key, headers={"X-Forwarded-For": "10.0.0.2"})
        ).status == 200
        assert await _websocket_opens(gateway, key, "10.0.0.2") == "session.created"
        assert await _websocket_opens(gateway, key, "10.0.0.1") == "rate_limit_exceeded"
        # a peer that is not a trusted proxy cannot name its address: 127.0.0.2 is held off
        # under its own address, not the 10.0.0.2 it claims
        for _ in range(3):
            assert (await asyncio.to_thread(_from, gateway, "127.0.0.2", "sk-ovos-wrong", "10.0.0.2")) == 401
        assert (await asyncio.to_thread(_from, gateway, "127.0.0.2", key, "10.0.0.9")) == 429
        assert (
            await asyncio.to_thread(http, "GET", models, key=key, headers={"X-Forwarded-For": "10.0.0.2"})
        ).status == 200
    logs = gateway.logs()
    assert "10.0.0.1 GET /v1/models 429" in logs and "10.0.0.2 GET /v1/models 200" in logs


def test_without_trusted_proxies_x_forwarded_for_is_ignored(tmp_path: Path) -> None:
    gateway, key = configured_gateway(tmp_path, {"auth_failures_per_minute": 3}, "alpha", "direct")
    with gateway:
        models = f"{gateway.api_base}/models"
        scanner = {"X-Forwarded-For": "10.0.0.1"}
        for _ in range(3):
            assert http("GET", models, key="sk-ovos-wrong", headers=scanner).status == 401
        held = http("GET", models, key=key, headers={"X-Forwarded-For": "10.0.0.2"})
        assert held.status == 429
        assert "failed authentications from 127.0.0.1" in held.json()["error"]["message"]
    assert "127.0.0.1 GET /v1/models 429" in gateway.logs()


@pytest.mark.parametrize(
    ("peer", "forwarded_for", "client"),
    [
        ("127.0.0.1", ["10.0.0.1"], "10.0.0.1"),
        ("127.0.0.1", ["10.0.0.2, 10.0.0.1"], "10.0.0.1"),  # the right-most untrusted hop
        ("127.0.0.1", ["10.0.0.2", "10.0.0.1"], "10.0.0.1"),  # repeated headers are one list
        ("127.0.0.1", ["10.0.0.1, 192.168.1.5"], "10.0.0.1"),  # through two trusted proxies
        ("127.0.0.1", ["10.0.0.1:5678"], "10.0.0.1"),
        ("127.0.0.1", ["[2001:db8::1]:443"], "2001:db8::1"),
        ("127.0.0.1", [], "127.0.0.1"),  # a trusted proxy that forwards nothing
        ("127.0.0.1", ["10.0.0.1, garbage, 192.168.1.5"], "192.168.1.5"),  # stop at garbage
        ("127.0.0.1", ["192.168.1.5"], "192.168.1.5"),  # only trusted hops: the left-most
        ("::ffff:127.0.0.1", ["10.0.0.1"], "10.0.0.1"),  # IPv4-mapped peer
        ("10.0.0.7", ["10.0.0.1"], "10.0.0.7"),  # an untrusted peer names no one
        (None, ["10.0.0.1"], None),
    ],
)
def test_the_client_is_the_right_most_untrusted_hop(
    peer: str | None, forwarded_for: list[str], client: str | None
) -> None:
    trusted = networks(["127.0.0.1/32", "192.168.1.0/24"])
    assert client_address(peer, forwarded_for, trusted) == client
