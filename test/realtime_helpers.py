"""Reading realtime events in tests: bounded waits that fail with the events seen so far."""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import aiohttp

from .speech import chunks

SPOKEN_TURN_EVENTS = [
    "input_audio_buffer.speech_started",
    "input_audio_buffer.speech_stopped",
    "input_audio_buffer.committed",
    "conversation.item.added",
    "conversation.item.done",
    "response.created",
]
"""A server-VAD voice turn, in the upstream order (contract §12, checklist 35)."""


class EventReader:
    """Wraps a raw aiohttp WebSocket (for what SDKs would not send or would hide)."""

    def __init__(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self.ws = ws
        self.seen: list[dict[str, Any]] = []

    async def send(self, event: dict[str, Any] | str | bytes) -> None:
        if isinstance(event, bytes):
            await self.ws.send_bytes(event)
        elif isinstance(event, str):
            await self.ws.send_str(event)
        else:
            await self.ws.send_str(json.dumps(event))

    async def next(self, timeout: float = 10.0) -> dict[str, Any]:
        message = await asyncio.wait_for(self.ws.receive(), timeout)
        if message.type != aiohttp.WSMsgType.TEXT:
            raise AssertionError(
                f"expected a text frame, got {message.type} {message.data!r}; seen {self.types()}"
            )
        event: dict[str, Any] = json.loads(message.data)
        self.seen.append(event)
        return event

    async def until(self, type_: str, timeout: float = 10.0) -> dict[str, Any]:
        """Read until an event of `type_` arrives (fails with the log of what came instead)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while True:
            left = deadline - loop.time()
            if left <= 0:
                raise AssertionError(f"no {type_} within {timeout}s; seen {self.types()}")
            try:
                event = await self.next(left)
            except asyncio.TimeoutError:
                raise AssertionError(f"no {type_} within {timeout}s; seen {self.types()}") from None
            if event["type"] == type_:
                return event

    async def quiet(self, seconds: float = 0.3) -> list[dict[str, Any]]:
        """Everything that arrives within `seconds` (to show that nothing did)."""
        got: list[dict[str, Any]] = []
        try:
            while True:
                got.append(await self.next(seconds))
        except asyncio.TimeoutError:
            return got

    def types(self) -> list[str]:
        return [e["type"] for e in self.seen]


@asynccontextmanager
async def realtime_socket(api_base: str, token: str, **connect: Any) -> AsyncIterator[EventReader]:
    """A raw `/v1/realtime?model=gpt-realtime` WebSocket opened with `token` as a Bearer
    credential (`connect`: more `ws_connect` options), closed on leaving."""
    url = ws_url(api_base, model="gpt-realtime")
    headers = {"Authorization": f"Bearer {token}"}
    async with aiohttp.ClientSession() as http, http.ws_connect(url, headers=headers, **connect) as ws:
        yield EventReader(ws)


def ws_url(api_base: str, **query: str) -> str:
    url = api_base.replace("http://", "ws://").replace("https://", "wss://") + "/realtime"
    if query:
        url += "?" + "&".join(f"{k}={v}" for k, v in query.items())
    return url


async def say_and_ask(conn: Any, text: str) -> None:
    """With an SDK realtime connection: add a typed user message, then ask for a response."""
    item: Any = {"type": "message", "role": "user", "content": [{"type": "input_text", "text": text}]}
    await conn.conversation.item.create(item=item)
    await conn.response.create()


async def speak_in_real_time(conn: Any, pcm: bytes, chunk_ms: int = 20) -> None:
    """Append `pcm` (24 kHz PCM16) to an SDK connection's input buffer in `chunk_ms` pieces, each
    when a microphone would have sent it."""
    loop = asyncio.get_running_loop()
    start = loop.time()
    for n, part in enumerate(chunks(pcm, chunk_ms=chunk_ms)):
        await conn.input_audio_buffer.append(audio=base64.b64encode(part).decode())
        await asyncio.sleep(max(0.0, start + (n + 1) * chunk_ms / 1000 - loop.time()))
