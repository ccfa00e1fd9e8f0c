"""The `/v1/realtime` upgrade: credentials, model, subprotocols, dialect (checklist 11–19)."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import openai
import pytest

from ovos_realtime_gateway.settings import GatewaySettings

from .gateway_process import GatewayProcess, http
from .realtime_helpers import EventReader, ws_url

GATEWAY_SILENCE_MS = GatewaySettings().vad_silence_duration_ms


@pytest.fixture
async def http_session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


async def _refused(
    http_session: aiohttp.ClientSession, url: str, **kwargs: Any
) -> tuple[dict[str, object], int, str]:
    async with http_session.ws_connect(url, **kwargs) as ws:
        reader = EventReader(ws)
        event = await reader.next()
        closing = await ws.receive(timeout=5)
        assert closing.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED)
        return event, int(ws.close_code or 0), str(closing.extra or "")


async def test_bad_key_is_error_then_close_3000(
    gateway: GatewayProcess, http_session: aiohttp.ClientSession
) -> None:
    event, code, reason = await _refused(
        http_session,
        ws_url(gateway.api_base, model="gpt-realtime"),
        headers={"Authorization": "Bearer sk-ovos-bad"},
    )
    assert event["type"] == "error"
    assert event["error"]["code"] == "invalid_api_key"  # type: ignore[index]  # event is a dict[str, object]
    assert code == 3000 and reason == "invalid_request_error.invalid_api_key"


async def test_no_key_is_null_code_then_close_3000(
    gateway: GatewayProcess, http_session: aiohttp.ClientSession
) -> None:
    event, code, _ = await _refused(http_session, ws_url(gateway.api_base, model="gpt-realtime"))
    assert event["error"]["code"] is None  # type: ignore[index]  # event is a dict[str, object]
    assert code == 3000


async def test_unknown_and_missing_model_close_4000(
    gateway: GatewayProcess, alpha_key: str, http_session: aiohttp.ClientSession
) -> None:
    auth = {"Authorization": f"Bearer {alpha_key}"}
    event, code, _ = await _refused(http_session, ws_url(gateway.api_base, model="gpt-nope"), headers=auth)
    assert (event["error"]["code"], code) == ("invalid_model", 4000)  # type: ignore[index]  # event is a dict[str, object]
    event, code, _ = await _refused(http_session, ws_url(gateway.api_base), headers=auth)
    assert (event["error"]["code"], code) == ("missing_model", 4000)  # type: ignore[index]  # event is a dict[str, object]


async def test_browser_subprotocol_credentials_are_accepted_and_echoed(
    gateway: GatewayProcess, alpha_key: str, http_session: aiohttp.ClientSession
) -> None:
    protocols = ("realtime", f"openai-insecure-api-key.{alpha_key}")
    async with http_session.ws_connect(
        ws_url(gateway.api_base, model="gpt-realtime"), protocols=protocols
    ) as ws:
        assert ws.protocol == "realtime"
        created = await EventReader(ws).next()
        assert created["type"] == "session.created"


async def test_python_sdk_connects_and_gets_session_created(gateway: GatewayProcess, alpha_key: str) -> None:
    client = openai.AsyncOpenAI(base_url=gateway.api_base, api_key=alpha_key, max_retries=0)
    async with client.realtime.connect(model="gpt-realtime") as conn:
        created = await conn.recv()
        assert created.type == "session.created"
        session = created.session
        # the SDK types this session as the create *request*: its id and expiry arrive as extras
        extra = session.model_extra or {}
        assert session.type == "realtime" and extra["id"].startswith("sess_")
        assert abs((extra.get("expires_at") or 0) - (time.time() + 3600)) < 10
        vad = session.audio.input.turn_detection  # type: ignore[union-attr]  # recv() is typed as the SDK's union of server events and sessions
        assert vad.type == "server_vad" and vad.create_response and vad.interrupt_response  # type: ignore[union-attr]  # turn_detection: the SDK's union of VAD kinds (None allowed)
        assert (vad.threshold, vad.prefix_padding_ms, vad.silence_duration_ms) == (  # type: ignore[union-attr]  # turn_detection: the SDK's union of VAD kinds (None allowed)
            0.5,
            300,
            GATEWAY_SILENCE_MS,
        )
    await client.close()


async def test_client_secret_session_is_hydrated(gateway: GatewayProcess, alpha_key: str) -> None:
    client = openai.AsyncOpenAI(base_url=gateway.api_base, api_key=alpha_key, max_retries=0)
    secret = await client.realtime.client_secrets.create(
        session={"type": "realtime", "instructions": "from the secret", "output_modalities": ["text"]}
    )
    ephemeral = openai.AsyncOpenAI(base_url=gateway.api_base, api_key=secret.value, max_retries=0)
    async with ephemeral.realtime.connect(model="gpt-realtime") as conn:
        created = await conn.recv()
        assert created.type == "session.created"
        assert created.session.instructions == "from the secret"  # type: ignore[union-attr]  # recv() is typed as the SDK's union of server events and sessions
        assert created.session.output_modalities == ["text"]  # type: ignore[union-attr]  # recv() is typed as the SDK's union of server events and sessions
        assert created.session.id == secret.session.id  # type: ignore[union-attr]  # recv() is typed as the SDK's union of server events and sessions
    await ephemeral.close()
    await client.close()


async def test_transcription_intent(
    gateway: GatewayProcess, alpha_key: str, http_session: aiohttp.ClientSession
) -> None:
    url = ws_url(gateway.api_base, intent="transcription")
    async with http_session.ws_connect(url, headers={"Authorization": f"Bearer {alpha_key}"}) as ws:
        created = await EventReader(ws).next()
        assert created["type"] == "session.created"
        assert created["session"]["type"] == "transcription"
        assert created["session"]["object"] == "realtime.transcription_session"


def test_plain_http_get_gets_a_clear_400(gateway: GatewayProcess, alpha_key: str) -> None:
    response = http(
        "GET",
        f"{gateway.api_base}/realtime?model=gpt-realtime",
        headers={"Authorization": f"Bearer {alpha_key}"},
    )
    assert response.status == 400
    error = response.json()["error"]
    assert error["type"] == "invalid_request_error" and "Upgrade: websocket" in error["message"]
