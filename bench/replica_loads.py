"""The two loads of bench/replicas.py, on gateways at `bases` with a project key, and what they
measure: the gateways' CPU (and the shared state servers') over the measured spans, the lag of
the VAD's turn events, the latency of REST requests. Each call is one round; runs add up."""

from __future__ import annotations

import asyncio
import itertools
import json
import math
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

from bench.realtime_append import SENTINEL, SERVER_VAD, audio_frames, cpu_seconds, open_session
from ovos_realtime_gateway.engine.turns import MIN_SPEECH_MS

FRAME_MS = 20
PREFIX_PADDING_MS = 300  # server_vad's default, which SERVER_VAD keeps
SECRET_BODY = {"session": {"type": "realtime", "model": "gpt-realtime"}}


def tree_cpu_seconds(pid: int) -> float:
    """CPU of `pid` with its reaped children and its live children (PostgreSQL's backends)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    ticks = sum(int(f) for f in fields[11:15])  # utime, stime, cutime, cstime
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            child = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:  # gone meanwhile
            continue
        if int(child[1]) == pid:  # its parent
            ticks += int(child[11]) + int(child[12])
    return ticks / os.sysconf("SC_CLK_TCK")


@dataclass
class CpuMeter:
    """CPU seconds of the gateways and of the shared state's servers (PostgreSQL with its backends,
    redis-server) over the spans measured, summed."""

    gateway_pids: list[int]
    state_pids: list[int]
    wall: float = 0.0
    gateway: float = 0.0
    state: float = 0.0

    def _now(self) -> tuple[float, float, float]:
        return (
            time.perf_counter(),
            sum(cpu_seconds(p) for p in self.gateway_pids),
            sum(tree_cpu_seconds(p) for p in self.state_pids),
        )

    @contextmanager
    def span(self) -> Iterator[None]:
        before = self._now()
        yield
        after = self._now()
        self.wall += after[0] - before[0]
        self.gateway += after[1] - before[1]
        self.state += after[2] - before[2]


@dataclass
class SessionsRun:
    """The sessions load on one deployment, over every round."""

    sessions: int
    replicas: int
    cpu: CpuMeter
    lags: list[float] = field(default_factory=list)  # s, one per turn event

    @property
    def per_session(self) -> float:
        """Gateway cores per session (CPU seconds per second of a session), all replicas."""
        return self.cpu.gateway / (self.cpu.wall * self.sessions)

    @property
    def state_per_session(self) -> float:
        return self.cpu.state / (self.cpu.wall * self.sessions)


@dataclass
class RestRun:
    """The REST load on one deployment, over every round."""

    cpu: CpuMeter
    latencies: list[float] = field(default_factory=list)  # s, one per request

    @property
    def per_second(self) -> float:
        return len(self.latencies) / self.cpu.wall

    @property
    def cpu_per_request(self) -> float:
        return self.cpu.gateway / len(self.latencies)

    @property
    def state_per_request(self) -> float:
        return self.cpu.state / len(self.latencies)


def decided_at_ms(event: dict[str, Any]) -> float | None:
    """Where in the input audio the turn detector had what it needed to send `event`; None when
    that is not known (a start clamped at 0 by the prefix padding)."""
    if event["type"] == "input_audio_buffer.speech_stopped":
        return float(event["audio_end_ms"])  # includes the silence that ended the turn
    start = int(event["audio_start_ms"])
    return start + PREFIX_PADDING_MS + MIN_SPEECH_MS if start > 0 else None


async def stream_session(
    ws: aiohttp.ClientWebSocketResponse, frames: list[str], offset: int, seconds: float
) -> list[float]:
    """Send frames in real time for `seconds`; when each began to be sent (perf_counter)."""
    sent: list[float] = []
    loop = asyncio.get_running_loop()
    begin = loop.time()
    while loop.time() - begin < seconds:
        sent.append(time.perf_counter())  # before: a full socket may hold the sender up past the answer
        await ws.send_str(frames[(offset + len(sent) - 1) % len(frames)])
        await asyncio.sleep(max(0.0, begin + len(sent) * FRAME_MS / 1000 - loop.time()))
    return sent


async def read_turn_events(ws: aiohttp.ClientWebSocketResponse) -> list[tuple[float, float]]:
    """(decided at ms of input audio, received at perf_counter) of each turn event, until the
    sentinel's answer."""
    seen: list[tuple[float, float]] = []
    async for message in ws:
        event = json.loads(message.data)
        if event["type"] in ("input_audio_buffer.speech_started", "input_audio_buffer.speech_stopped"):
            decided = decided_at_ms(event)
            if decided is not None:
                seen.append((decided, time.perf_counter()))
        elif event["type"] == "error" and event["error"].get("event_id") == "sentinel":
            return seen
    raise SystemExit(f"a session closed ({ws.close_code}) before its sentinel was answered")


def event_lags(sent: list[float], seen: list[tuple[float, float]]) -> list[float]:
    lags = []
    for decided_ms, received in seen:
        frame = math.ceil(decided_ms / FRAME_MS) - 1  # the client frame holding that audio
        if 0 <= frame < len(sent):
            lags.append(received - sent[frame])
    return lags


async def sessions_load(bases: list[str], key: str, run: SessionsRun, seconds: float) -> None:
    """One round: `run.sessions` sessions, dealt to the replicas (`bases`) in turn, stream for `seconds`."""
    frames = audio_frames()
    urls = [b.replace("http://", "ws://") + "/realtime?model=gpt-realtime" for b in bases]
    async with aiohttp.ClientSession() as http:
        sockets = [
            await open_session(http, urls[i % len(urls)], key, SERVER_VAD) for i in range(run.sessions)
        ]
        readers = [asyncio.create_task(read_turn_events(ws)) for ws in sockets]
        with run.cpu.span():
            sent = await asyncio.gather(
                *(stream_session(ws, frames, i * 7, seconds) for i, ws in enumerate(sockets))
            )
        for ws in sockets:
            await ws.send_str(SENTINEL)
        seen = await asyncio.gather(*readers)
        for ws in sockets:
            await ws.close()
    run.lags += [lag for s, events in zip(sent, seen, strict=True) for lag in event_lags(s, events)]


async def rest_load(bases: list[str], key: str, run: RestRun, seconds: float, concurrency: int) -> None:
    """One round: the mix for `seconds`, each mix minted on the next replica in turn and the rest
    asked of the one after it (with two, the lookup never reaches the replica that minted);
    every answer must be 200."""
    turn = itertools.count()
    headers = {"Authorization": f"Bearer {key}"}
    latencies: list[float] = []

    async def request(
        http: aiohttp.ClientSession, base: str, method: str, path: str, body: Any = None
    ) -> Any:
        start = time.perf_counter()
        async with http.request(method, base + path, json=body, headers=headers) as response:
            answer = await response.read()
            if response.status != 200:
                raise SystemExit(f"{method} {base}{path}: HTTP {response.status}: {answer[:300]!r}")
        latencies.append(time.perf_counter() - start)
        return json.loads(answer)

    async def mix(http: aiohttp.ClientSession) -> None:
        n = next(turn)
        minting, other = bases[n % len(bases)], bases[(n + 1) % len(bases)]
        secret = await request(http, minting, "POST", "/realtime/client_secrets", SECRET_BODY)
        assert secret["value"].startswith("ek_"), secret
        await request(http, other, "GET", "/models")
        session = await request(http, other, "GET", f"/realtime/sessions/{secret['session']['id']}")
        assert session["id"] == secret["session"]["id"], session

    async def worker(http: aiohttp.ClientSession, deadline: float) -> None:
        while time.perf_counter() < deadline:
            await mix(http)

    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=concurrency)) as http:
        with run.cpu.span():
            deadline = time.perf_counter() + seconds
            await asyncio.gather(*(worker(http, deadline) for _ in range(concurrency)))
    run.latencies += latencies
