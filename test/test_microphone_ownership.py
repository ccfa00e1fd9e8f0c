"""Who may feed and hear the device microphone (issue 12, defect 2): only the project that owns it
(`microphone_project`), one feeding session at a time. Another project's key, an `ek_` it mints and
the talk page's anonymous secrets are refused at the door; a listener hears only the session that
holds the microphone, never two voices mixed."""

from __future__ import annotations

import asyncio
import base64
from collections.abc import AsyncIterator, Iterator

import aiohttp
import numpy as np
import pytest

from .gateway_process import GatewayProcess, cli, configured_gateway, create_key, http
from .realtime_helpers import EventReader, ws_url

SECOND_OF_24K = 24_000


@pytest.fixture(scope="module")
def device(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[GatewayProcess, str]]:
    settings = {"talk_page": True, "microphone_project": "living-room"}
    gateway, owner_key = configured_gateway(
        tmp_path_factory.mktemp("microphone"), settings, "living-room", "microphone"
    )
    with gateway:
        yield gateway, owner_key


@pytest.fixture
async def session() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as made:
        yield made


async def _listen(
    gateway: GatewayProcess, session: aiohttp.ClientSession, key: str
) -> aiohttp.ClientWebSocketResponse:
    url = gateway.base_url.replace("http", "ws", 1) + "/ovos/microphone"
    return await session.ws_connect(url, headers={"Authorization": f"Bearer {key}"})


async def _feeder(gateway: GatewayProcess, session: aiohttp.ClientSession, token: str) -> EventReader:
    ws = await session.ws_connect(
        ws_url(gateway.api_base, model="ovos-microphone"), headers={"Authorization": f"Bearer {token}"}
    )
    return EventReader(ws)


def _tone(level: int) -> str:
    """A second of constant-level PCM16 at 24 kHz, base64 (a level tells whose audio arrived)."""
    return base64.b64encode(np.full(SECOND_OF_24K, level, dtype="<i2").tobytes()).decode()


async def _heard(listener: aiohttp.ClientWebSocketResponse, samples: int) -> np.ndarray:
    """At least `samples` of what the listener receives next (the resampler keeps a few back)."""
    got: list[np.ndarray] = []
    while sum(len(g) for g in got) < samples:
        message = await listener.receive(timeout=20)
        assert message.type == aiohttp.WSMsgType.BINARY, message
        got.append(np.frombuffer(message.data, dtype="<i2"))
    return np.concatenate(got)


async def _feed_when_free(gateway: GatewayProcess, session: aiohttp.ClientSession, token: str) -> EventReader:
    """Connect as a client told 1013 (try again later) would, until the microphone is free."""
    deadline = asyncio.get_running_loop().time() + 20
    while True:
        reader = await _feeder(gateway, session, token)
        first = await reader.next()
        if first["type"] == "session.created":
            return reader
        assert first["error"]["code"] == "microphone_in_use", first
        assert asyncio.get_running_loop().time() < deadline, "the microphone was never released"
        await reader.ws.close()
        await asyncio.sleep(0.2)


async def _refused(reader: EventReader, code: str) -> None:
    error = await reader.until("error")
    assert error["error"]["code"] == code, error
    message = await reader.ws.receive(timeout=20)
    assert message.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED)


async def test_another_project_can_neither_hear_nor_feed_the_device_microphone(
    device: tuple[GatewayProcess, str], session: aiohttp.ClientSession
) -> None:
    gateway, owner_key = device
    stranger = await asyncio.to_thread(create_key, gateway.data_dir, "neighbour")
    with pytest.raises(aiohttp.WSServerHandshakeError) as caught:
        await _listen(gateway, session, stranger)
    assert caught.value.status == 403

    await _refused(await _feeder(gateway, session, stranger), "insufficient_permissions")
    minted = await asyncio.to_thread(
        http, "POST", f"{gateway.api_base}/realtime/client_secrets", key=stranger, json_body={}
    )
    await _refused(await _feeder(gateway, session, minted.json()["value"]), "insufficient_permissions")
    page_secret = (await asyncio.to_thread(http, "POST", f"{gateway.base_url}/talk/client_secret")).json()[
        "value"
    ]
    await _refused(await _feeder(gateway, session, page_secret), "insufficient_permissions")

    # the owner's listener heard none of it, and the owner's own ek_ may feed
    listener = await _listen(gateway, session, owner_key)
    owned = await asyncio.to_thread(
        http, "POST", f"{gateway.api_base}/realtime/client_secrets", key=owner_key, json_body={}
    )
    feeder = await _feeder(gateway, session, owned.json()["value"])
    await feeder.until("session.created")
    await feeder.send({"type": "input_audio_buffer.append", "audio": _tone(1000)})
    heard = await _heard(listener, 8000)
    assert abs(int(np.median(heard)) - 1000) < 50
    await feeder.ws.close()
    await listener.close()


async def test_one_session_feeds_the_microphone_at_a_time(
    device: tuple[GatewayProcess, str], session: aiohttp.ClientSession
) -> None:
    gateway, owner_key = device
    listener = await _listen(gateway, session, owner_key)
    first = await _feeder(gateway, session, owner_key)
    await first.until("session.created")
    second = await _feeder(gateway, session, owner_key)
    await _refused(second, "microphone_in_use")
    assert second.ws.close_code == 1013  # try again later

    await first.send({"type": "input_audio_buffer.append", "audio": _tone(2000)})
    heard = await _heard(listener, 8000)
    assert abs(int(np.median(heard)) - 2000) < 50  # one voice, not a mix
    await first.ws.close()

    third = await _feed_when_free(gateway, session, owner_key)  # free again once the holder closed
    await third.send({"type": "input_audio_buffer.append", "audio": _tone(3000)})
    heard = await _heard(listener, 8000)
    assert abs(int(np.median(heard)) - 3000) < 50
    await third.ws.close()
    await listener.close()


def test_the_talk_page_project_cannot_own_the_microphone(tmp_path_factory: pytest.TempPathFactory) -> None:
    root = tmp_path_factory.mktemp("mic-config")
    config = root / "bad.json"
    config.write_text('{"talk_page": true, "talk_page_project": "home", "microphone_project": "home"}')
    refused = cli("serve", "--config", str(config), data_dir=root / "data", check=False)
    assert refused.returncode != 0 and "microphone_project" in refused.stderr
