"""Soak: many voice sessions opening, talking and closing for a long time; does the gateway hold?

N workers (default 50) each loop: open a realtime session with the Python `openai` SDK, turn on
server VAD and transcription, speak one question in real time (espeak-ng speech, 20 ms appends),
wait for the turn's outcome (its transcription and its response), close, and start again. A
closed loop: at most N sessions at once, however slow the gateway gets. Meanwhile a sampler asks
`GET /v1/models` every 5 s (REST latency) and reads the gateway's RSS every `--sample-seconds`.

Prints the RSS at start, after the warm-up and at the end, the RSS slope after the warm-up (a
least-squares fit, MB per 10 minutes; goal: under 1), sessions completed and failed (goal: 0
failed), the unhandled exceptions in the gateway's log (goal: 0), and the REST and WebSocket-open
latencies (median, p95) of the first and last thirds of the run side by side (a ratio near 1: no
slowdown over time).

Without `--ovos` the responses fail at once with `responder_unavailable` (no assistant to ask):
the gateway's whole session path still runs (VAD, Whisper, items, store, audit). With `--ovos` the
real messagebus, ovos-core and its skills answer, and Piper speaks.

Usage: .venv/bin/python bench/soak.py [--sessions 50] [--minutes 15] [--ci] [--ovos]
       (--ci: 60 s, 10 sessions, 15 s warm-up, 10 s samples: a quick check)
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import re
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import openai

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from test.gateway_process import GatewayProcess, create_key, http, rss_kib  # noqa: E402
from test.speech import chunks, user_speech_pcm  # noqa: E402

QUESTION = "what time is it"
TURN_DEADLINE_S = 180.0  # a turn that has not ended by then is a failed session
OUTCOMES = {
    "conversation.item.input_audio_transcription.completed",
    "conversation.item.input_audio_transcription.failed",
}
UNHANDLED = re.compile(r"^Traceback|Unhandled exception|Error handling request", re.M)


@dataclass
class Tally:
    completed: int = 0
    failed: int = 0
    failures: dict[str, int] = field(default_factory=dict)
    open_s: list[tuple[float, float]] = field(default_factory=list)  # (when, seconds to session.created)
    rest_s: list[tuple[float, float]] = field(default_factory=list)
    rss: list[tuple[float, int]] = field(default_factory=list)  # (when, KiB)

    def fail(self, why: str) -> None:
        self.failed += 1
        self.failures[why] = self.failures.get(why, 0) + 1


async def one_session(client: openai.AsyncOpenAI, speech: list[bytes], tally: Tally) -> None:
    loop = asyncio.get_running_loop()
    started = loop.time()
    async with client.realtime.connect(model="gpt-realtime") as conn:
        created = await conn.recv()
        if created.type != "session.created":
            raise RuntimeError(f"first event {created.type}")
        tally.open_s.append((time.monotonic(), loop.time() - started))
        await conn.session.update(
            session={
                "type": "realtime",
                "output_modalities": ["text"],
                "audio": {
                    "input": {
                        "transcription": {"model": "whisper-1"},
                        "turn_detection": {"type": "server_vad"},
                    }
                },
            }
        )
        start = loop.time()
        for n, part in enumerate(speech):
            await conn.input_audio_buffer.append(audio=base64.b64encode(part).decode())
            await asyncio.sleep(max(0.0, start + (n + 1) * 0.02 - loop.time()))
        seen: set[str] = set()
        deadline = loop.time() + TURN_DEADLINE_S
        while not ({"response.done"} <= seen and seen & OUTCOMES):
            left = deadline - loop.time()
            if left <= 0:
                raise TimeoutError(f"turn did not end; saw {sorted(seen)}")
            event = await asyncio.wait_for(conn.recv(), left)
            seen.add(event.type)
            if event.type == "error":
                raise RuntimeError(f"error event {event.error.code}")


async def worker(client: openai.AsyncOpenAI, speech: list[bytes], tally: Tally, until: float) -> None:
    while time.monotonic() < until:
        try:
            await one_session(client, speech, tally)
            tally.completed += 1
        except Exception as exc:  # a failed session is a finding, not the end of the soak
            tally.fail(type(exc).__name__ + (f": {exc}" if isinstance(exc, RuntimeError) else ""))
            await asyncio.sleep(1.0)


async def sampler(gateway: GatewayProcess, key: str, tally: Tally, until: float, every_s: float) -> None:
    assert gateway.proc is not None
    next_rss = time.monotonic()
    while time.monotonic() < until:
        now = time.monotonic()
        if now >= next_rss:
            tally.rss.append((now, rss_kib(gateway.proc.pid)))
            next_rss += every_s
        began = time.monotonic()
        result = await asyncio.to_thread(http, "GET", f"{gateway.api_base}/models", key=key)
        if result.status == 200:
            tally.rest_s.append((began, time.monotonic() - began))
        await asyncio.sleep(5.0)
    tally.rss.append((time.monotonic(), rss_kib(gateway.proc.pid)))


def slope_mb_per_10_min(points: list[tuple[float, int]]) -> float:
    if len(points) < 2:
        return float("nan")
    xs = [p[0] for p in points]
    ys = [p[1] / 1024 for p in points]
    mean_x, mean_y = statistics.fmean(xs), statistics.fmean(ys)
    var = sum((x - mean_x) ** 2 for x in xs)
    return sum((x - mean_x) * (y - mean_y) for x, y in zip(xs, ys, strict=True)) / var * 600 if var else 0.0


def thirds(samples: list[tuple[float, float]], start: float, end: float) -> tuple[list[float], list[float]]:
    third = (end - start) / 3
    first = [s for t, s in samples if t < start + third]
    last = [s for t, s in samples if t >= end - third]
    return first, last


def quantiles(values: list[float]) -> str:
    if len(values) < 2:
        return "n/a"
    ordered = sorted(values)
    p95 = ordered[min(len(ordered) - 1, int(len(ordered) * 0.95))]
    return f"median {statistics.median(ordered) * 1000:6.1f} ms  p95 {p95 * 1000:6.1f} ms"


async def soak(gateway: GatewayProcess, key: str, args: argparse.Namespace) -> Tally:
    tally = Tally()
    speech = list(chunks(user_speech_pcm(QUESTION, lead_ms=300, tail_ms=1200)))
    begin = time.monotonic()
    until = begin + args.minutes * 60
    client = openai.AsyncOpenAI(base_url=gateway.api_base, api_key=key, max_retries=0)
    workers = []
    for _ in range(args.sessions):  # staggered, as people arrive
        workers.append(asyncio.create_task(worker(client, speech, tally, until)))
        await asyncio.sleep(0.1)
    await asyncio.gather(sampler(gateway, key, tally, until, args.sample_seconds), *workers)
    await client.close()
    return tally


def report(tally: Tally, gateway: GatewayProcess, args: argparse.Namespace, begin: float) -> None:
    end = time.monotonic()
    warm_until = begin + args.warmup_seconds
    after_warmup = [p for p in tally.rss if p[0] >= warm_until]
    print(
        f"soak: {args.sessions} sessions for {args.minutes:g} min ({'with OVOS' if args.ovos else 'no OVOS'})"
    )
    print(f"  RSS at start        {tally.rss[0][1] / 1024:8.1f} MB")
    if after_warmup:
        print(f"  RSS after warm-up   {after_warmup[0][1] / 1024:8.1f} MB  ({args.warmup_seconds:g} s)")
    print(f"  RSS at the end      {tally.rss[-1][1] / 1024:8.1f} MB")
    print(f"  slope after warm-up {slope_mb_per_10_min(after_warmup):8.2f} MB per 10 min  (goal < 1)")
    print(f"  sessions completed  {tally.completed:8d}")
    print(f"  sessions failed     {tally.failed:8d}  {json.dumps(tally.failures) if tally.failures else ''}")
    unhandled = len(UNHANDLED.findall(gateway.logs()))
    print(f"  unhandled in log    {unhandled:8d}")
    for name, samples in (("REST GET /models", tally.rest_s), ("WebSocket open", tally.open_s)):
        first, last = thirds(samples, begin, end)
        ratio = statistics.median(last) / statistics.median(first) if first and last else float("nan")
        print(
            f"  {name:18} first third: {quantiles(first)} | last third: {quantiles(last)} | ratio {ratio:.2f}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sessions", type=int, default=50)
    parser.add_argument("--minutes", type=float, default=15.0)
    parser.add_argument("--warmup-seconds", type=float, default=180.0)
    parser.add_argument("--sample-seconds", type=float, default=30.0)
    parser.add_argument("--ci", action="store_true", help="60 s, 10 sessions, 15 s warm-up, 10 s samples")
    parser.add_argument("--ovos", action="store_true", help="answer with the real OVOS stack")
    args = parser.parse_args()
    if args.ci:
        args.sessions, args.minutes, args.warmup_seconds, args.sample_seconds = 10, 1.0, 15.0, 10.0
    limits = {
        "requests_per_minute": 100_000,
        "requests_per_minute_per_key": 100_000,
        "concurrent_sessions": args.sessions + 10,
        "concurrent_sessions_per_key": args.sessions + 10,
    }
    with tempfile.TemporaryDirectory(prefix="soak-") as tmp:
        root = Path(tmp)
        data_dir = root / "data"
        data_dir.mkdir()
        key = create_key(data_dir, "soak")
        settings: dict[str, object] = {"rate_limits": limits}
        stack = None
        if args.ovos:
            from ovos_realtime_gateway.ovos.stack import CONVERSATIONAL_SKILLS, OvosStack

            stack = OvosStack(root / "ovos")
            stack.__enter__()
            stack.wait_ready(300)
            settings |= {"messagebus_url": stack.bus_url, "converse_skills": list(CONVERSATIONAL_SKILLS)}
        config = root / "soak.json"
        config.write_text(json.dumps(settings))
        try:
            with GatewayProcess(data_dir, "--config", str(config), log_name="soak") as gateway:
                ready = time.monotonic() + 300
                while http("GET", f"{gateway.base_url}/readyz").status != 200 and time.monotonic() < ready:
                    time.sleep(1)  # noqa: TID251 (before the loop runs)
                begin = time.monotonic()
                tally = asyncio.run(soak(gateway, key, args))
                report(tally, gateway, args, begin)
        finally:
            if stack is not None:
                stack.__exit__(None, None, None)


if __name__ == "__main__":
    main()
