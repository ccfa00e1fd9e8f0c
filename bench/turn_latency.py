"""Spoken-turn latency over the real stack, split by stage, the gateway's share apart.

Runs OVOS (messagebus, ovos-core with its skills) and the gateway, then asks "what time is it"
(flite speech, streamed in real time into one server-VAD session) N times. For each turn the
client timestamps the events; the gateway's /metrics histograms give the time spent inside the
STT and TTS plugin calls and waiting for the skills, so the rest is the gateway's own share:

  VAD end → transcript          speech_stopped → input_audio_transcription.completed
  transcript → first speak      → first response.output_audio_transcript.delta
  speak → first audio delta     → first response.output_audio.delta

  VAD end → first audio         the whole wait a user hears (goal: median ≤ 800 ms on 2 cores)

The turns run four times, in the same run against the same OVOS: with the old default (the
`light` profile: batch pocketsphinx, espeak-ng), the light profile with streaming pocketsphinx
(decodes while the user speaks), and the new default (`neural`: Whisper tiny.en, Piper) without
and with `converse_skills` as the demo sets it (so OVOS does not wait 0.5 s per turn for a
converse answer the date-time skill never gives). Each turn's transcript is checked to reach the
date-time skill ("time" heard).

Usage: .venv/bin/python bench/turn_latency.py [--turns 20]
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
from pathlib import Path
from typing import Any

import openai

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from ovos_realtime_gateway.ovos.stack import CONVERSATIONAL_SKILLS, OvosStack  # noqa: E402
from test.gateway_process import GatewayProcess, create_key, http  # noqa: E402
from test.speech import chunks, user_speech_pcm  # noqa: E402

STAGE = re.compile(r'ovos_realtime_turn_stage_seconds_(sum|count)\{stage="(\w+)"\} ([0-9.e+-]+)')


def stage_totals(base_url: str) -> dict[tuple[str, str], float]:
    text = http("GET", f"{base_url}/metrics").body.decode()
    return {(m.group(2), m.group(1)): float(m.group(3)) for m in STAGE.finditer(text)}


def mean_stage(
    before: dict[tuple[str, str], float], after: dict[tuple[str, str], float], stage: str
) -> float:
    count = after.get((stage, "count"), 0) - before.get((stage, "count"), 0)
    total = after.get((stage, "sum"), 0) - before.get((stage, "sum"), 0)
    return total / count if count else float("nan")


async def turns(api_base: str, key: str, n: int) -> list[dict[str, float]]:
    client = openai.AsyncOpenAI(base_url=api_base, api_key=key, max_retries=0)
    speech = user_speech_pcm("what time is it", lead_ms=300, tail_ms=900)
    results: list[dict[str, float]] = []
    async with client.realtime.connect(model="gpt-realtime") as conn:
        await conn.recv()
        session: Any = {
            "type": "realtime",
            "audio": {
                "input": {
                    "transcription": {"model": "ovos-stt"},
                    "turn_detection": {"type": "server_vad", "silence_duration_ms": 500},
                }
            },
        }
        await conn.session.update(session=session)
        await conn.recv()
        loop = asyncio.get_running_loop()
        for _ in range(n):
            marks: dict[str, float] = {}

            async def stream() -> None:
                start = loop.time()
                for i, part in enumerate(chunks(speech)):
                    await conn.input_audio_buffer.append(audio=base64.b64encode(part).decode())
                    await asyncio.sleep(max(0.0, start + (i + 1) * 0.02 - loop.time()))

            sender = asyncio.create_task(stream())
            async for event in conn:
                now = loop.time()
                kind = event.type
                if kind == "input_audio_buffer.speech_stopped":
                    marks.setdefault("vad_end", now)
                elif event.type == "conversation.item.input_audio_transcription.completed":
                    marks.setdefault("transcript", now)
                    marks["heard_time"] = float("time" in event.transcript.lower())
                elif kind == "response.output_audio_transcript.delta":
                    marks.setdefault("speak", now)
                elif kind == "response.output_audio.delta":
                    marks.setdefault("audio", now)
                elif kind == "response.done":
                    break
            await sender
            if len(marks) == 5:
                results.append(marks)
            await asyncio.sleep(0.5)
    await client.close()
    return results


DEMO: dict[str, Any] = {"converse_skills": list(CONVERSATIONAL_SKILLS)}  # as `ovos-realtime demo` runs
PROFILES: dict[str, dict[str, Any]] = {
    "light (old default)": {"speech_profile": "light"},
    "light, streaming STT": {
        "speech_profile": "light",
        "stt_plugin": "ovos-realtime-stt-pocketsphinx-streaming",
        **DEMO,
    },
    "neural, converse_skills unset": {"speech_profile": "neural"},
    "neural (new default, as the demo)": {"speech_profile": "neural", **DEMO},
}
STAGES = [
    ("VAD end -> transcript", "vad_end", "transcript", "stt", "STT plugin"),
    ("transcript -> first speak", "transcript", "speak", "skills_first_speak", "OVOS skills"),
    ("speak -> first audio delta", "speak", "audio", "tts", "TTS plugin (first audio)"),
]


def measure(tmp: Path, bus_url: str, name: str, n: int) -> tuple[list[dict[str, float]], dict[str, float]]:
    """N turns with one gateway; the client's marks and the mean time inside each plugin stage."""
    slug = re.sub(r"\W+", "-", name)
    config = tmp / f"{slug}.json"
    config.write_text(json.dumps({"messagebus_url": bus_url, "log_level": "WARNING", **PROFILES[name]}))
    data_dir = tmp / f"{slug}-data"
    data_dir.mkdir()
    key = create_key(data_dir, "bench")
    with GatewayProcess(data_dir, "--config", str(config)) as gateway:
        deadline = time.monotonic() + 120
        while http("GET", f"{gateway.base_url}/readyz").status != 200 and time.monotonic() < deadline:
            time.sleep(0.5)  # noqa: TID251 - a plain poll, no event loop here
        asyncio.run(turns(gateway.api_base, key, 2))  # warm up: plugin caches, skill intents
        before = stage_totals(gateway.base_url)
        marks = asyncio.run(turns(gateway.api_base, key, n))
        after = stage_totals(gateway.base_url)
    return marks, {stage: mean_stage(before, after, stage) * 1000 for _, _, _, stage, _ in STAGES}


def median_ms(marks: list[dict[str, float]], start: str, end: str) -> tuple[float, float]:
    spans = sorted((m[end] - m[start]) * 1000 for m in marks)
    return statistics.median(spans), spans[min(len(spans) - 1, int(0.9 * len(spans)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--turns", type=int, default=20)
    args = parser.parse_args()
    results = {}
    with tempfile.TemporaryDirectory() as tmp, OvosStack(Path(tmp) / "ovos") as stack:
        stack.wait_ready(300)
        for name in PROFILES:
            results[name] = measure(Path(tmp), stack.bus_url, name, args.turns)

    for name, (marks, inside) in results.items():
        heard = sum(m["heard_time"] for m in marks)
        print(f"\n{len(marks)} spoken turns ('what time is it', flite voice, server VAD), {name}, ms")
        print(f"'time' heard in {heard:.0f} of {len(marks)} transcripts")
        print(f"{'stage':<30}{'median':>8}{'p90':>8}   {'of which':<26}{'mean':>7}{'gateway share':>15}")
        for label, start, end, stage, what in STAGES:
            median, p90 = median_ms(marks, start, end)
            share = median - inside[stage]
            print(f"{label:<30}{median:>8.0f}{p90:>8.0f}   {what:<26}{inside[stage]:>7.0f}{share:>15.0f}")
        total, total_p90 = median_ms(marks, "vad_end", "audio")
        print(f"{'VAD end -> first audio':<30}{total:>8.0f}{total_p90:>8.0f}")
    old, _, _, new = (median_ms(results[p][0], "vad_end", "audio")[0] for p in PROFILES)
    batch, live = (median_ms(results[p][0], "vad_end", "transcript")[0] for p in list(PROFILES)[:2])
    print(
        "\nVAD end -> transcript, streaming / batch pocketsphinx: "
        f"{live:.0f} / {batch:.0f} ms = {live / batch:.2f}"
    )
    print(f"VAD end -> first audio, new / old default: {new:.0f} / {old:.0f} ms = {new / old:.2f}")


if __name__ == "__main__":
    main()
