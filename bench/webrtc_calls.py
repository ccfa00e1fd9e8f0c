"""CPU per concurrent WebRTC call, next to the same audio over WebSocket sessions (the baseline).

N aiortc peers (in this process) call one gateway (another process) and talk without pause:
speech and pauses over a -60 dBFS noise floor, Opus-encoded by the peers. The gateway decodes
Opus, resamples to the session format, runs server VAD on it, and sends its own track back
(Opus-encoding 50 frames/s per call, silence between answers). Then N WebSocket sessions stream
the same audio as `input_audio_buffer.append` events in real time. The gateway's own CPU time
(from /proc, all threads) over the window, per call, is printed for both, with the ratio.

No responder is behind this gateway (no OVOS), so the outbound track carries silence: the Opus
encoding cost is there, the TTS cost is not (bench/turn_latency.py measures that).

Usage: .venv/bin/python bench/webrtc_calls.py [--calls 10] [--seconds 20]
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import aiohttp
import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.realtime_append import SERVER_VAD, UNCAPPED, cpu_seconds  # noqa: E402
from test.gateway_process import configured_gateway, http  # noqa: E402
from test.speech import chunks, speech_pcm  # noqa: E402
from test.webrtc_peer import CallPeer  # noqa: E402

WITH_VAD = {"type": "realtime", "audio": {"input": {"turn_detection": SERVER_VAD}}}
TRANSPORT_ONLY = {"type": "realtime", "audio": {"input": {"turn_detection": None}}}


def talking(rate: int) -> bytes:
    """Speech and pauses (about half each) over a quiet room's noise floor."""
    text = "what time is it, and what is the weather like"
    speech = np.frombuffer(speech_pcm(text, rate, lead_ms=600, tail_ms=900), "<i2")
    noise = np.random.default_rng(7).normal(0, 32768 * 10 ** (-60 / 20), len(speech))
    return bytes(np.clip(speech + noise, -32768, 32767).astype("<i2").tobytes())


async def place(api_base: str, key: str, peer: CallPeer, session: dict[str, Any]) -> None:
    offer = await peer.offer()
    form = aiohttp.FormData()
    form.add_field("sdp", offer, content_type="application/sdp")
    form.add_field("session", json.dumps(session), content_type="application/json")
    async with aiohttp.ClientSession() as client:
        headers = {"Authorization": f"Bearer {key}"}
        async with client.post(f"{api_base}/realtime/calls", data=form, headers=headers) as answer:
            assert answer.status == 201, await answer.text()
            await peer.accept(await answer.text())
    await peer.until("session.created")


async def calls_cpu(  # noqa: PLR0913
    api_base: str, key: str, pid: int, n: int, seconds: float, session: dict[str, Any]
) -> float:
    """CPU seconds per second per call while `n` calls talk for `seconds`."""
    peers = [CallPeer() for _ in range(n)]
    try:
        for peer in peers:
            await place(api_base, key, peer, session)
        speech = talking(48_000)
        for peer in peers:
            peer.microphone.say(speech * int(seconds / (len(speech) / 96_000) + 2))
        await asyncio.sleep(2)  # settle: every call is streaming both ways
        cpu, wall = cpu_seconds(pid), time.perf_counter()
        await asyncio.sleep(seconds)
        used = (cpu_seconds(pid) - cpu) / (time.perf_counter() - wall)
        if session is WITH_VAD:
            for peer in peers:  # every call was heard (its queued events say so)
                await peer.until("input_audio_buffer.speech_started", 1)
        return used / n
    finally:
        await asyncio.gather(*(p.close() for p in peers))


async def websocket_cpu(  # noqa: PLR0913
    api_base: str, key: str, pid: int, n: int, seconds: float, session: dict[str, Any]
) -> float:
    frames = [
        json.dumps({"type": "input_audio_buffer.append", "audio": base64.b64encode(part).decode()})
        for part in chunks(talking(24_000))
    ]
    url = api_base.replace("http://", "ws://") + "/realtime?model=gpt-realtime"
    async with aiohttp.ClientSession() as client:
        sockets = [await client.ws_connect(url, headers={"Authorization": f"Bearer {key}"}) for _ in range(n)]
        for ws in sockets:
            await ws.send_str(json.dumps({"type": "session.update", "session": session}))

        async def stream(ws: aiohttp.ClientWebSocketResponse, offset: int, until: float) -> None:
            start = time.perf_counter()
            sent = 0
            while time.perf_counter() < until:
                await ws.send_str(frames[(offset + sent) % len(frames)])
                sent += 1
                await asyncio.sleep(max(0.0, start + sent * 0.02 - time.perf_counter()))

        async def drain(ws: aiohttp.ClientWebSocketResponse) -> None:
            async for _ in ws:
                pass

        drains = [asyncio.create_task(drain(ws)) for ws in sockets]
        end = time.perf_counter() + seconds + 2
        streams = [asyncio.create_task(stream(ws, i * 37, end)) for i, ws in enumerate(sockets)]
        await asyncio.sleep(2)
        cpu, wall = cpu_seconds(pid), time.perf_counter()
        await asyncio.gather(*streams)
        used = (cpu_seconds(pid) - cpu) / (time.perf_counter() - wall)
        for ws in sockets:
            await ws.close()
        await asyncio.gather(*drains, return_exceptions=True)
        return used / n


def left_behind(base_url: str, timeout: float = 60.0) -> str:
    """Callers closed their side without hanging up: the gateway must notice and release."""
    start = time.monotonic()
    while "ovos_realtime_peer_connections 0.0" not in http("GET", f"{base_url}/metrics").body.decode():
        if time.monotonic() - start > timeout:
            return f"LEAK (still open after {timeout:.0f} s)"
        time.sleep(0.5)  # noqa: TID251 (no event loop here)
    return f"0 (released {time.monotonic() - start:.1f} s after the callers left)"


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--calls", type=int, default=10)
    parser.add_argument("--seconds", type=float, default=20.0)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        gateway, key = configured_gateway(Path(tmp), UNCAPPED, "bench", "bench")
        with gateway:
            assert gateway.proc is not None
            pid = gateway.proc.pid
            figures = {}
            for name, session in (("server VAD", WITH_VAD), ("transport only", TRANSPORT_ONLY)):
                webrtc = asyncio.run(calls_cpu(gateway.api_base, key, pid, args.calls, args.seconds, session))
                gone = left_behind(gateway.base_url)
                ws = asyncio.run(websocket_cpu(gateway.api_base, key, pid, args.calls, args.seconds, session))
                figures[name] = (webrtc, ws, gone)
    print(f"{args.calls} concurrent, {args.seconds:.0f} s each; gateway CPU per call (1.0 = one core)")
    print(f"{'audio path':16} {'WebRTC call':>12} {'WebSocket':>10} {'ratio':>6}  calls/core")
    for name, (webrtc, ws, _) in figures.items():
        print(f"{name:16} {webrtc:12.4f} {ws:10.4f} {webrtc / ws:6.2f}  {1 / webrtc:8.1f}")
    for name, (_, _, gone) in figures.items():
        print(f"peer connections left after the callers went away ({name}): {gone}")


if __name__ == "__main__":
    main()
