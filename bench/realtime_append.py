"""The realtime audio path: `input_audio_buffer.append` throughput and concurrent sessions.

1. Throughput: one client sends 20 ms frames of 24 kHz PCM16 (speech and silence) as fast as it
   can, through JSON, base64, resampling to 16 kHz and the silero VAD (server_vad on), then a
   sentinel event whose answer marks the end. The baseline is a bare aiohttp WebSocket that
   echoes the same frames, in the same run. Printed: frames/s of each and the ratio.
2. Capacity: N sessions stream in real time (one 20 ms frame every 20 ms each) for a while; the
   gateway's own CPU time (from /proc, all its threads) gives the CPU one session costs, and so
   how many real-time sessions one core sustains.

Both run for each VAD frame length (`vad_frame_ms`: 32, 64, 96), one gateway each, in one run,
and once more at the default length with silero classifying each session alone
(`vad_batch_sessions: false`, the way before batching) to compare.

With `--before DIR` (DIR: `git archive <commit> ovos_realtime_gateway | tar -x -C DIR`), the
gateway's code from DIR runs at the default settings too, in `--rounds` rounds alternating with
this code (before, now, now, before, …), and the two are printed side by side.

`--append-ms` sets the audio per append event (20 ms by default; the VAD frame stays as set).
`--compress 15` has the clients offer permessage-deflate, as the `openai` SDK's client (the
`websockets` library) does by default; the gateway accepts it, and then inflates every append.

Usage: .venv/bin/python bench/realtime_append.py [--frames 3000] [--sessions 40] [--seconds 10]
       [--append-ms 20] [--compress 0] [--before DIR] [--rounds 2]
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import aiohttp
import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from ovos_realtime_gateway.engine.voice_input import DEFAULT_FRAME_MS, FRAME_MS_CHOICES  # noqa: E402
from test.gateway_process import configured_gateway  # noqa: E402
from test.speech import chunks, speech_pcm  # noqa: E402

UNCAPPED = {  # sessions enough for any run, quiet logs
    "rate_limits": {"concurrent_sessions": 1000, "concurrent_sessions_per_key": 1000},
    "log_level": "WARNING",
}
SERVER_VAD = {"type": "server_vad", "create_response": False, "interrupt_response": False}


def audio_frames(pauses: bool = True, append_ms: int = 20) -> list[str]:
    """One cycle of speech and pauses (about half each) as append events, `append_ms` of 24 kHz
    PCM16 each, over a room-noise floor at -60 dBFS (a quiet room; digital zeros would flatter
    the silence floor)."""
    text = "what time is it, and what is the weather like"
    speech = np.frombuffer(speech_pcm(text, lead_ms=600, tail_ms=900) if pauses else speech_pcm(text), "<i2")
    noise = np.random.default_rng(7).normal(0, 32768 * 10 ** (-60 / 20), len(speech))
    pcm = np.clip(speech + noise, -32768, 32767).astype("<i2").tobytes()
    return [
        json.dumps({"type": "input_audio_buffer.append", "audio": base64.b64encode(part).decode()})
        for part in chunks(pcm, chunk_ms=append_ms)
        if len(part) == 48 * append_ms
    ]


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def open_session(
    http: aiohttp.ClientSession, url: str, key: str, vad: dict[str, object] | None, compress: int = 0
) -> aiohttp.ClientWebSocketResponse:
    ws = await http.ws_connect(url, headers={"Authorization": f"Bearer {key}"}, compress=compress)
    assert json.loads((await ws.receive()).data)["type"] == "session.created"
    update = {
        "type": "session.update",
        "session": {"type": "realtime", "audio": {"input": {"turn_detection": vad}}},
    }
    await ws.send_str(json.dumps(update))
    while json.loads((await ws.receive()).data)["type"] != "session.updated":
        pass
    return ws


SENTINEL = json.dumps({"type": "conversation.item.retrieve", "item_id": "sentinel", "event_id": "sentinel"})


async def drain_until_sentinel(ws: aiohttp.ClientWebSocketResponse) -> None:
    await ws.send_str(SENTINEL)
    while True:
        event = json.loads((await ws.receive()).data)
        if event["type"] == "error" and event["error"].get("event_id") == "sentinel":
            return


async def gateway_throughput(
    url: str, key: str, frames: list[str], vad: dict[str, object] | None, compress: int = 0
) -> float:
    async with aiohttp.ClientSession() as http:
        ws = await open_session(http, url, key, vad, compress)
        start = time.perf_counter()
        for frame in frames:
            await ws.send_str(frame)
        await drain_until_sentinel(ws)
        elapsed = time.perf_counter() - start
        await ws.close()
    return len(frames) / elapsed


async def echo_throughput(url: str, frames: list[str]) -> float:
    async with aiohttp.ClientSession() as http, http.ws_connect(url) as ws:
        start = time.perf_counter()

        async def read_all() -> None:
            for _ in frames:
                await ws.receive()

        reader = asyncio.create_task(read_all())
        for frame in frames:
            await ws.send_str(frame)
        await reader
        return len(frames) / (time.perf_counter() - start)


async def capacity(  # noqa: PLR0913
    url: str,
    key: str,
    frames: list[str],
    sessions: int,
    seconds: float,
    pid: int,
    vad: dict[str, object] | None = SERVER_VAD,
    append_ms: int = 20,
    compress: int = 0,
) -> tuple[float, float]:
    """(gateway CPU seconds per session-second, worst sentinel round trip in s after the run)."""
    async with aiohttp.ClientSession() as http:
        sockets = [await open_session(http, url, key, vad, compress) for _ in range(sessions)]
        cpu_before, wall_before = cpu_seconds(pid), time.perf_counter()

        async def stream(ws: aiohttp.ClientWebSocketResponse, offset: int) -> None:
            loop = asyncio.get_running_loop()
            begin = loop.time()
            n = 0
            while loop.time() - begin < seconds:
                await ws.send_str(frames[(offset + n) % len(frames)])
                n += 1
                await asyncio.sleep(max(0.0, begin + n * append_ms / 1000 - loop.time()))

        async def drain(ws: aiohttp.ClientWebSocketResponse) -> float:
            """Read everything (VAD events) until the sentinel's answer; when that came."""
            async for message in ws:
                event = json.loads(message.data)
                if event["type"] == "error" and event["error"].get("event_id") == "sentinel":
                    return time.perf_counter()
            raise AssertionError(f"session closed ({ws.close_code}) before the sentinel")

        drains = [asyncio.create_task(drain(ws)) for ws in sockets]
        await asyncio.gather(*(stream(ws, i * 7) for i, ws in enumerate(sockets)))
        cpu = cpu_seconds(pid) - cpu_before
        wall = time.perf_counter() - wall_before
        sent = time.perf_counter()
        for ws in sockets:
            await ws.send_str(SENTINEL)
        answered = await asyncio.gather(*drains)
        worst = max(answered) - sent
        for ws in sockets:
            await ws.close()
    return cpu / (wall * sessions), worst


def start_echo(log: Path) -> tuple[subprocess.Popen[bytes], str]:
    with open(log, "wb") as out:
        proc = subprocess.Popen([sys.executable, str(ROOT / "bench" / "bare_ws_echo.py")], stdout=out)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        match = re.search(r"listening on (\S+)", log.read_text())
        if match:
            return proc, match.group(1).replace("http://", "ws://")
        time.sleep(0.05)  # noqa: TID251 - a plain poll, no event loop here
    proc.kill()
    raise SystemExit("echo server did not start")


def measure(  # noqa: PLR0913
    root: Path,
    frame_ms: int,
    frames: list[str],
    args: argparse.Namespace,
    batch: bool = True,
    code: Path | None = None,
) -> dict[str, float]:
    """Everything measured on one gateway whose VAD classifies `frame_ms` frames (the gateway's
    code from `code` when given)."""
    cycle = audio_frames(append_ms=args.append_ms)
    settings = {**UNCAPPED, "vad_frame_ms": frame_ms, "vad_batch_sessions": batch}
    name = f"bench-{frame_ms}ms" + ("" if batch else "-alone") + ("-before" if code else "")
    name += f"-{len(list(root.glob(name + '*.json')))}"  # rounds measure the same settings again
    env = {"PYTHONPATH": str(code), "PYTHONSAFEPATH": "1"} if code is not None else None
    gateway, key = configured_gateway(root, settings, "bench", name, env=env)
    with gateway:
        assert gateway.proc is not None
        pid = gateway.proc.pid
        url = gateway.api_base.replace("http://", "ws://") + "/realtime?model=gpt-realtime"
        talking = audio_frames(pauses=False, append_ms=args.append_ms)
        wire = {"append_ms": args.append_ms, "compress": args.compress}
        result = {
            "with_vad": asyncio.run(gateway_throughput(url, key, frames, SERVER_VAD, args.compress)),
            "without_vad": asyncio.run(gateway_throughput(url, key, frames, None, args.compress)),
            "talking": asyncio.run(capacity(url, key, talking, args.sessions, args.seconds, pid, **wire))[0],
            "transport_only": asyncio.run(
                capacity(url, key, cycle, args.sessions, args.seconds, pid, None, **wire)
            )[0],
        }
        result["per_session"], result["worst"] = asyncio.run(
            capacity(url, key, cycle, args.sessions, args.seconds, pid, **wire)
        )
    return result


def mean_of(results: list[dict[str, float]]) -> dict[str, float]:
    """The rounds' mean of each figure (the worst sentinel: the worst of all)."""
    merged = {key: sum(result[key] for result in results) / len(results) for key in results[0]}
    merged["worst"] = max(result["worst"] for result in results)
    return merged


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--frames", type=int, default=3000)
    parser.add_argument("--sessions", type=int, default=40)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--append-ms", type=int, default=20, help="audio per append event")
    parser.add_argument(
        "--compress",
        type=int,
        default=0,
        help="permessage-deflate window bits the clients offer (15: as the openai SDK's websockets does)",
    )
    parser.add_argument("--before", type=Path, help="a checkout of the gateway's code to compare with")
    parser.add_argument("--rounds", type=int, default=2, help="with --before: rounds of both, alternating")
    args = parser.parse_args()
    cycle = audio_frames(append_ms=args.append_ms)
    frames = (cycle * (args.frames // len(cycle) + 1))[: args.frames]
    now: list[dict[str, float]] = []
    before: list[dict[str, float]] = []
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        alone = measure(root, DEFAULT_FRAME_MS, frames, args, batch=False)
        for round_ in range(args.rounds if args.before else 1):
            order = [args.before, None] if round_ % 2 == 0 else [None, args.before]
            for code in order if args.before else [None]:
                result = measure(root, DEFAULT_FRAME_MS, frames, args, code=code)
                (now if code is None else before).append(result)
        runs = {DEFAULT_FRAME_MS: mean_of(now)}
        for ms in FRAME_MS_CHOICES:
            if ms != DEFAULT_FRAME_MS:
                runs[ms] = measure(root, ms, frames, args)
        proc, echo_url = start_echo(root / "echo.log")
        try:
            echo = asyncio.run(echo_throughput(echo_url + "/v1/realtime", frames))
        finally:
            proc.terminate()
            proc.wait(10)

    deflate = ", permessage-deflate (not the echo)" if args.compress else ""
    print(
        f"input_audio_buffer.append, {args.append_ms} ms of 24 kHz PCM16 each, {args.frames} of them"
        + deflate
    )
    print(f"{'path':<48}{'frames/s':>10}{'x realtime':>12}{'ratio':>8}")
    rows = [(f"gateway, server_vad, {ms} ms VAD frames", run["with_vad"]) for ms, run in runs.items()]
    rows.append((f"gateway, server_vad, {DEFAULT_FRAME_MS} ms, each session alone", alone["with_vad"]))
    if before:
        rows.append((f"gateway before, server_vad, {DEFAULT_FRAME_MS} ms", mean_of(before)["with_vad"]))
    rows.append(("gateway, manual turns (no VAD)", runs[DEFAULT_FRAME_MS]["without_vad"]))
    rows.append(("bare aiohttp echo (baseline)", echo))
    for name, fps in rows:
        print(f"{name:<48}{fps:>10.0f}{fps * args.append_ms / 1000:>12.0f}{fps / echo:>8.2f}")
    print()
    print(f"capacity: {args.sessions} real-time sessions, {args.seconds:.0f} s per run; CPU per session")
    columns = "".join(f"{f'{ms} ms frames':>16}" for ms in runs) + f"{f'{DEFAULT_FRAME_MS} ms alone':>16}"
    print(f"{'audio':<44}{columns}{'sessions/core':>16}{'alone':>8}")
    kinds = (
        ("speech and pauses (a conversation)", "per_session"),
        ("continuous speech (worst case)", "talking"),
        ("manual turns: transport only, no VAD", "transport_only"),
    )
    for name, key in kinds:
        costs = "".join(f"{run[key] * 100:>15.2f}%" for run in [*runs.values(), alone])
        per_core, per_core_alone = 1 / runs[DEFAULT_FRAME_MS][key], 1 / alone[key]
        print(f"{name:<44}{costs}{per_core:>16.0f}{per_core_alone:>8.0f}  (at {DEFAULT_FRAME_MS} ms)")
    if before:
        print()
        print(f"at {DEFAULT_FRAME_MS} ms: the code from {args.before} vs this, {len(now)} rounds alternating")
        header = f"{'before':>10}{'now':>10}{'sessions/core before':>22}{'now':>6}{'each round':>24}"
        print(f"{'audio':<44}{header}")
        for name, key in kinds:
            was, is_ = mean_of(before)[key], runs[DEFAULT_FRAME_MS][key]
            each = " ".join(f"{1 / b[key]:.0f}/{1 / n[key]:.0f}" for b, n in zip(before, now, strict=True))
            print(f"{name:<44}{was * 100:>9.3f}%{is_ * 100:>9.3f}%{1 / was:>22.0f}{1 / is_:>6.0f}{each:>24}")
    worst = max(run["worst"] for run in [*runs.values(), alone, *before])
    print(f"slowest session answered its sentinel after a run in {worst * 1000:.0f} ms")


if __name__ == "__main__":
    main()
