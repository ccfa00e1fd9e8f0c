"""`websocket_compression` (issue 18, density): the gateway declines permessage-deflate unless
told otherwise, so clients that offer it (the openai SDK's does) send plain frames and no append
is inflated; told to, it accepts it and the session works the same."""

from __future__ import annotations

import asyncio
import base64
from pathlib import Path

import pytest

from .gateway_process import configured_gateway
from .realtime_helpers import realtime_socket

APPEND = {"type": "input_audio_buffer.append", "audio": base64.b64encode(b"\x10\x00" * 2400).decode()}


@pytest.mark.slow
@pytest.mark.parametrize(("settings", "window_bits"), [({}, 0), ({"websocket_compression": True}, 15)])
async def test_permessage_deflate_is_declined_unless_the_setting_accepts_it(
    tmp_path: Path, settings: dict[str, object], window_bits: int
) -> None:
    gateway, key = await asyncio.to_thread(configured_gateway, tmp_path, settings, "deflate", "deflate")
    async with gateway, realtime_socket(gateway.api_base, key, compress=15) as reader:
        await reader.until("session.created")
        assert reader.ws.compress == window_bits  # what the handshake agreed
        update = {"type": "realtime", "audio": {"input": {"turn_detection": None}}}
        await reader.send({"type": "session.update", "session": update})
        await reader.until("session.updated")
        for _ in range(3):
            await reader.send(APPEND)
        await reader.send({"type": "input_audio_buffer.commit"})
        committed = await reader.until("input_audio_buffer.committed")
        assert committed["item_id"]
