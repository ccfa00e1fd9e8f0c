"""Revocation reaches live things (issue 12, defect 4): `keys revoke` — and the end of a
rotation's grace — ends the key's open WebSocket sessions, sidebands and calls, and every `ek_`
it minted, within `revocation_check_seconds`; an `ek_`'s sessions count against its key's cap."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterator

import aiohttp
import openai
import pytest

from .gateway_process import GatewayProcess, cli, configured_gateway, create_key
from .realtime_helpers import EventReader, ws_url
from .test_webrtc_calls import metric, place_call, wait_for_metric
from .webrtc_peer import CallPeer

ENDS_WITHIN_S = 30.0  # the gateway checks every second here; the deadline is for a loaded machine


@pytest.fixture(scope="module")
def watched(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GatewayProcess]:
    settings = {"revocation_check_seconds": 1, "rate_limits": {"concurrent_sessions_per_key": 2}}
    gateway, _ = configured_gateway(tmp_path_factory.mktemp("revocation"), settings, "seed", "revocation")
    with gateway:
        yield gateway


def _key_id(key: str) -> str:
    return "key_" + key.split("-")[2]


def _revoke(gateway: GatewayProcess, key: str) -> None:
    cli("keys", "revoke", _key_id(key), data_dir=gateway.data_dir)


async def _open(gateway: GatewayProcess, http: aiohttp.ClientSession, token: str) -> EventReader:
    ws = await http.ws_connect(
        ws_url(gateway.api_base, model="gpt-realtime"), headers={"Authorization": f"Bearer {token}"}
    )
    reader = EventReader(ws)
    return reader


async def _ends_revoked(reader: EventReader) -> None:
    """The session says why (an `error`, `invalid_api_key`) and closes with 3000."""
    error = await reader.until("error", timeout=ENDS_WITHIN_S)
    assert error["error"]["code"] == "invalid_api_key", error
    assert "revoked" in error["error"]["message"]
    message = await reader.ws.receive(timeout=ENDS_WITHIN_S)
    assert message.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED), message
    assert reader.ws.close_code == 3000


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


async def test_revoking_a_key_ends_its_open_sessions_and_those_of_its_client_secrets(
    watched: GatewayProcess, http: aiohttp.ClientSession
) -> None:
    key = await asyncio.to_thread(create_key, watched.data_dir, "revoked")
    other = await asyncio.to_thread(create_key, watched.data_dir, "revoked")
    sdk = openai.OpenAI(base_url=watched.api_base, api_key=key, max_retries=0)
    ek = (await asyncio.to_thread(sdk.realtime.client_secrets.create)).value
    unused_ek = (await asyncio.to_thread(sdk.realtime.client_secrets.create)).value
    with_key = await _open(watched, http, key)
    with_secret = await _open(watched, http, ek)
    bystander = await _open(watched, http, other)
    for reader in (with_key, with_secret, bystander):
        await reader.until("session.created")

    (await asyncio.to_thread(_revoke, watched, key))
    await _ends_revoked(with_key)
    await _ends_revoked(with_secret)
    # a secret the revoked key minted opens nothing more, though it has not expired
    refused = await _open(watched, http, unused_ek)
    error = await refused.until("error")
    assert error["error"]["code"] == "invalid_api_key" and "revoked" in error["error"]["message"]
    # the same project's other key is untouched, and its session goes on
    await bystander.send({"type": "session.update", "session": {"type": "realtime", "instructions": "on"}})
    assert (await bystander.until("session.updated"))["session"]["instructions"] == "on"
    for reader in (with_key, with_secret, refused, bystander):
        await reader.ws.close()


async def test_the_end_of_a_rotation_grace_ends_the_old_keys_sessions(
    watched: GatewayProcess, http: aiohttp.ClientSession
) -> None:
    old = await asyncio.to_thread(create_key, watched.data_dir, "rotated")
    session = await _open(watched, http, old)
    await session.until("session.created")
    rotated = await asyncio.to_thread(
        cli, "keys", "rotate", _key_id(old), "--grace-seconds", "2", data_dir=watched.data_dir
    )
    new = rotated.stdout.strip().splitlines()[-1]
    await _ends_revoked(session)
    successor = await _open(watched, http, new)
    await successor.until("session.created")
    await successor.ws.close()


async def test_revoking_a_key_ends_its_calls_and_sidebands(
    watched: GatewayProcess, http: aiohttp.ClientSession
) -> None:
    caller_key = await asyncio.to_thread(create_key, watched.data_dir, "calls")
    monitor_key = await asyncio.to_thread(create_key, watched.data_dir, "calls")
    sdk = openai.OpenAI(base_url=watched.api_base, api_key=caller_key, max_retries=0)
    watched_call, kept_call = CallPeer(), CallPeer()
    try:
        call_id = await place_call(sdk, watched_call)
        await watched_call.until("session.created")
        monitor_sdk = openai.OpenAI(base_url=watched.api_base, api_key=monitor_key, max_retries=0)
        kept_id = await place_call(monitor_sdk, kept_call)
        await kept_call.until("session.created")
        sideband_ws = await http.ws_connect(
            ws_url(watched.api_base, call_id=kept_id), headers={"Authorization": f"Bearer {caller_key}"}
        )
        sideband = EventReader(sideband_ws)
        await sideband.until("session.created")
        calls_before = await asyncio.to_thread(metric, watched, "ovos_realtime_sessions_open")

        (await asyncio.to_thread(_revoke, watched, caller_key))
        error = await watched_call.until("error", timeout=ENDS_WITHIN_S)
        assert error["error"]["code"] == "invalid_api_key", error
        await _ends_revoked(sideband)  # the monitor placed with the revoked key goes ...
        await wait_for_metric(watched, "ovos_realtime_sessions_open", calls_before - 1, ENDS_WITHIN_S)
        with pytest.raises(openai.NotFoundError):  # ... the revoked key's call is over ...
            await asyncio.to_thread(monitor_sdk.realtime.calls.hangup, call_id)
        # ... and the call the other key placed goes on
        kept_call.send({"type": "session.update", "session": {"type": "realtime", "instructions": "on"}})
        assert (await kept_call.until("session.updated"))["session"]["instructions"] == "on"
        await asyncio.to_thread(monitor_sdk.realtime.calls.hangup, kept_id)
    finally:
        await watched_call.close()
        await kept_call.close()


async def test_client_secrets_count_against_their_keys_session_cap(
    watched: GatewayProcess, http: aiohttp.ClientSession
) -> None:
    key = await asyncio.to_thread(create_key, watched.data_dir, "capped")
    sdk = openai.OpenAI(base_url=watched.api_base, api_key=key, max_retries=0)
    secrets = [(await asyncio.to_thread(sdk.realtime.client_secrets.create)).value for _ in range(3)]
    opened = [await _open(watched, http, secret) for secret in secrets[:2]]
    for reader in opened:
        await reader.until("session.created")
    over = await _open(watched, http, secrets[2])
    error = await over.until("error")
    assert error["error"]["code"] == "session_limit_reached", error
    assert "key" in error["error"]["message"]
    with_key = await _open(watched, http, key)  # the key itself is at its cap too
    assert (await with_key.until("error"))["error"]["code"] == "session_limit_reached"
    for reader in (*opened, over, with_key):
        await reader.ws.close()
