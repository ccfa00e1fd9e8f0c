"""Real-time server-VAD sessions on one core: the gateway pinned to a core, N sessions at once.

`bench/realtime_append.py` measures the CPU a session costs at 40 sessions and divides; this one
puts the sessions on the core. The gateway process, every thread of it, is pinned to one core
(`taskset`), and this client runs on the others. N sessions (100, 200, 300, 350 by default, one after
another on the same gateway) each send a conversation (speech and pauses over a quiet room, the
audio of `realtime_append.py`) in real time: one 20 ms append of 24 kHz PCM16 every 20 ms, their
phases spread evenly over the 20 ms (no burst of all N at once), server VAD on.

Printed per N: how busy the gateway's core was; its CPU per second of audio a session sent, and so
the sessions one core holds at that load; how many of the appends due the client sent in time
(below 98 % the figures are not trusted: the client, not the gateway, was the limit); and the lag
of the VAD's turn events (from sending the append that held the audio that decided a turn to
receiving the event: it includes the 500 ms of silence a stop waits for, not at all). A gateway
that keeps up holds its lags at 1-2 VAD hand-offs (~100-200 ms); one that falls behind shows
seconds, growing with the run.

With `--before DIR` (DIR: `git archive <commit> ovos_realtime_gateway | tar -x -C DIR`) the
gateway's code from DIR runs the same loads in the same run, in `--rounds` rounds alternating.

Usage: .venv/bin/python bench/sessions_per_core.py [--sessions 100,200,300,350] [--seconds 20]
       [--before DIR] [--rounds 1] [--json FILE] [--quick]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import aiohttp

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.realtime_append import SENTINEL, SERVER_VAD, audio_frames, cpu_seconds, open_session  # noqa: E402
from bench.replica_loads import FRAME_MS, event_lags, read_turn_events  # noqa: E402
from test.gateway_process import configured_gateway, rss_kib  # noqa: E402

PHASES = 20  # sending groups, 1 ms apart: the sessions' appends are spread over the 20 ms
OPENING = 25  # sessions opened at once
SATURATED = 0.98  # the core's share busy from which the gateway is taken to be the limit
IN_TIME = 0.98  # the share of appends due that the client must send for the figures to count
LAG_BOUND = 0.5  # s: the turn events' 95th percentile lag of a gateway that keeps up
SETTINGS = {  # hundreds of sessions on one key, opened within a minute
    "rate_limits": {
        "concurrent_sessions": 1000,
        "concurrent_sessions_per_key": 1000,
        "requests_per_minute": 10_000,
        "requests_per_minute_per_key": 10_000,
    },
    "log_level": "WARNING",
}


@dataclass
class Load:
    """One load: `sessions` sessions for a span, on the gateway's code `code`."""

    code: str
    sessions: int
    wall: float = 0.0
    cpu: float = 0.0  # the gateway's CPU seconds over the span
    sent: int = 0  # appends sent
    due: int = 0  # appends due in real time
    lags: list[float] = field(default_factory=list)  # s, one per turn event
    events: list[int] = field(default_factory=list)  # turn events each session received
    rss_mib: float = 0.0  # the gateway's resident memory with the sessions open (the largest)

    @property
    def core_busy(self) -> float:
        return self.cpu / self.wall

    @property
    def per_session(self) -> float:
        """Gateway cores per real-time session: CPU per second of audio sent."""
        return self.cpu / (self.sent * FRAME_MS / 1000)

    @property
    def in_time(self) -> float:
        return self.sent / self.due

    @property
    def keeps_up(self) -> bool:
        """The core had room, the client kept time, and turn events came within half a second."""
        return (
            self.core_busy < SATURATED and self.in_time >= IN_TIME and quantile(self.lags, 0.95) < LAG_BOUND
        )


def pin(pid: int, cores: set[int]) -> None:
    """Every thread of `pid` (those it starts later inherit it) onto `cores`."""
    cpus = ",".join(map(str, sorted(cores)))
    subprocess.run(["taskset", "-a", "-cp", cpus, str(pid)], check=True, stdout=subprocess.DEVNULL)


async def run_load(url: str, key: str, pid: int, load: Load, seconds: float) -> None:
    frames = audio_frames()
    connector = aiohttp.TCPConnector(limit=0)
    async with aiohttp.ClientSession(connector=connector) as http:
        sockets: list[aiohttp.ClientWebSocketResponse] = []
        while len(sockets) < load.sessions:
            batch = min(OPENING, load.sessions - len(sockets))
            sockets += await asyncio.gather(*(open_session(http, url, key, SERVER_VAD) for _ in range(batch)))
        readers = [asyncio.create_task(read_turn_events(ws)) for ws in sockets]
        sent: list[list[float]] = [[] for _ in sockets]
        groups = [list(range(g, len(sockets), PHASES)) for g in range(PHASES)]
        loop = asyncio.get_running_loop()
        ticks = int(seconds * 1000 / FRAME_MS) * PHASES
        cpu_before, wall_before = cpu_seconds(pid), time.perf_counter()
        begin = loop.time()
        for tick in range(ticks):
            await asyncio.sleep(max(0.0, begin + tick * FRAME_MS / 1000 / PHASES - loop.time()))
            if loop.time() - begin > seconds:  # the client fell behind: what is late is not sent
                break
            for index in groups[tick % PHASES]:
                times = sent[index]
                times.append(time.perf_counter())
                await sockets[index].send_str(frames[(index * 7 + len(times) - 1) % len(frames)])
        load.cpu += cpu_seconds(pid) - cpu_before
        load.wall += time.perf_counter() - wall_before
        load.sent += sum(map(len, sent))
        load.due += ticks // PHASES * len(sockets)
        load.rss_mib = max(load.rss_mib, rss_kib(pid) / 1024)
        for ws in sockets:
            await ws.send_str(SENTINEL)
        seen = await asyncio.gather(*readers)
        await asyncio.gather(*(ws.close() for ws in sockets))
    load.events += [len(events) for events in seen]
    load.lags += [lag for times, events in zip(sent, seen, strict=True) for lag in event_lags(times, events)]


def measure(
    root: Path, code: Path | None, counts: list[int], seconds: float, gateway_core: int
) -> list[Load]:
    name = "before" if code else "now"
    name += f"-{len(list(root.glob(name + '*.json')))}"
    env = {"PYTHONPATH": str(code), "PYTHONSAFEPATH": "1"} if code is not None else None
    gateway, key = configured_gateway(root, SETTINGS, "bench", name, env=env)
    loads = []
    with gateway:
        assert gateway.proc is not None
        pin(gateway.proc.pid, {gateway_core})
        url = gateway.api_base.replace("http://", "ws://") + "/realtime?model=gpt-realtime"
        for count in counts:
            load = Load("before" if code else "now", count)
            asyncio.run(run_load(url, key, gateway.proc.pid, load, seconds))
            loads.append(load)
    return loads


def merged(loads: list[Load]) -> Load:
    total = Load(loads[0].code, loads[0].sessions)
    for load in loads:
        total.wall += load.wall
        total.cpu += load.cpu
        total.sent += load.sent
        total.due += load.due
        total.lags += load.lags
        total.events += load.events
        total.rss_mib = max(total.rss_mib, load.rss_mib)
    return total


def quantile(values: list[float], q: float) -> float:
    if len(values) < 2:
        return values[0] if values else 0.0
    return statistics.quantiles(values, n=100, method="inclusive")[round(q * 100) - 1]


def per_core(load: Load) -> str:
    """Sessions one core holds at this load; on a saturated core the CPU a session needs is not known."""
    return f"{1 / load.per_session:.0f}" if load.core_busy < SATURATED else "saturated"


def print_table(results: dict[tuple[str, int], list[Load]]) -> None:
    print(
        f"{'code':<8}{'sessions':>9}{'core busy':>11}{'CPU/session':>13}{'sessions/core':>15}"
        f"{'in time':>9}{'turn events':>13}{'lag p50':>9}{'p95':>7}{'max':>7}{'keeps up':>10}{'RSS':>8}"
        f"{'rounds: sessions/core':>24}"
    )
    for (code, count), loads in results.items():
        total = merged(loads)
        lags = total.lags or [0.0]
        events = f"{min(total.events, default=0)}-{max(total.events, default=0)}"
        rounds = " ".join(per_core(load) for load in loads)
        print(
            f"{code:<8}{count:>9}{total.core_busy:>10.0%}{total.per_session * 100:>12.3f}%"
            f"{per_core(total):>15}{total.in_time:>9.1%}{events:>13}{statistics.median(lags) * 1000:>7.0f}ms"
            f"{quantile(lags, 0.95) * 1000:>5.0f}ms{max(lags) * 1000:>5.0f}ms"
            f"{'yes' if total.keeps_up else 'no':>10}{total.rss_mib:>5.0f}MiB{rounds:>24}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--sessions", default="100,200,300,350", help="comma-separated session counts")
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--before", type=Path, help="a checkout of the gateway's code to compare with")
    parser.add_argument("--rounds", type=int, default=1, help="rounds of each code, alternating")
    parser.add_argument("--json", type=Path, help="write the figures here")
    parser.add_argument("--quick", action="store_true", help="10 sessions, 3 s: checks that it runs")
    args = parser.parse_args()
    counts = [10] if args.quick else [int(n) for n in args.sessions.split(",")]
    seconds = 3.0 if args.quick else args.seconds
    cores = sorted(os.sched_getaffinity(0))
    if len(cores) < 2:
        raise SystemExit("needs two cores: one for the gateway, the rest for this client")
    gateway_core = cores[0]
    os.sched_setaffinity(0, set(cores[1:]))
    codes: list[Path | None] = [None, args.before] if args.before else [None]
    results: dict[tuple[str, int], list[Load]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for round_ in range(args.rounds):
            for code in codes if round_ % 2 == 0 else codes[::-1]:
                for load in measure(Path(tmp), code, counts, seconds, gateway_core):
                    results.setdefault((load.code, load.sessions), []).append(load)
    results = dict(sorted(results.items(), key=lambda item: (item[0][1], item[0][0] != "before")))
    print(
        f"real-time server-VAD sessions, the gateway pinned to core {gateway_core}; "
        f"{seconds:.0f} s per load, 20 ms appends, conversation audio"
    )
    print_table(results)
    if args.json:
        args.json.write_text(
            json.dumps(
                {
                    f"{code} {count}": [asdict(load) for load in loads]
                    for (code, count), loads in results.items()
                }
            )
        )


if __name__ == "__main__":
    main()
