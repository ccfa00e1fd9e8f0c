"""Memory of the speech profiles: the gateway process's resident size with each profile's plugins
loaded, and its peak while N utterances are transcribed at once (each session commits 3 s of
speech with transcription on, all at the same moment). A bare gateway (no speech loaded) is the
baseline, in the same run.

Usage: .venv/bin/python bench/speech_memory.py [--concurrency 1,2,4,8]
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import openai

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from ovos_realtime_gateway.ovos.stack import OvosStack  # noqa: E402
from test.gateway_process import GatewayProcess, create_key, http  # noqa: E402
from test.speech import chunks, speech_pcm  # noqa: E402

PROFILES = {"bare (no speech loaded)": None, "light": "light", "neural (default)": "neural"}


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS")


class PeakSampler:
    def __init__(self, pid: int) -> None:
        self.pid, self.peak, self._stop = pid, 0.0, threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, rss_mb(self.pid))
            self._stop.wait(0.02)

    def __enter__(self) -> PeakSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


async def transcribe_at_once(api_base: str, key: str, n: int) -> list[str]:
    """N sessions each append 3 s of speech, then all commit together; their transcripts."""
    pcm = speech_pcm("set a timer for five minutes and then tell me a joke", lead_ms=300, tail_ms=300)
    client = openai.AsyncOpenAI(base_url=api_base, api_key=key, max_retries=0)
    connections = [client.realtime.connect(model="gpt-realtime") for _ in range(n)]
    conns = [await c.__aenter__() for c in connections]
    audio_in: Any = {"transcription": {"model": "ovos-stt"}, "turn_detection": None}
    for conn in conns:
        await conn.recv()
        await conn.session.update(session={"type": "realtime", "audio": {"input": audio_in}})
        await conn.recv()
        for part in chunks(pcm, chunk_ms=200):
            await conn.input_audio_buffer.append(audio=base64.b64encode(part).decode())
    for conn in conns:
        await conn.input_audio_buffer.commit()

    async def transcript(conn: Any) -> str:
        async for event in conn:
            if event.type == "conversation.item.input_audio_transcription.completed":
                return str(event.transcript)
        return ""

    texts = await asyncio.gather(*(transcript(c) for c in conns))
    for c in connections:
        await c.__aexit__(None, None, None)
    await client.close()
    return list(texts)


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--concurrency", default="1,2,4,8")
    args = parser.parse_args()
    levels = [int(n) for n in args.concurrency.split(",")]
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        bus = OvosStack(Path(tmp) / "ovos").start(services=("ovos-messagebus",))
        try:
            for label, profile in PROFILES.items():
                data_dir = Path(tmp) / f"data-{profile}"
                data_dir.mkdir()
                key = create_key(data_dir, "bench")
                config = {"log_level": "WARNING"}
                if profile is not None:
                    config |= {"messagebus_url": bus.bus_url, "speech_profile": profile}
                path = Path(tmp) / f"{profile}.json"
                path.write_text(json.dumps(config))
                with GatewayProcess(data_dir, "--config", str(path)) as gateway:
                    assert gateway.proc is not None
                    deadline = time.monotonic() + 120
                    while profile is not None and time.monotonic() < deadline:
                        speech = http("GET", f"{gateway.base_url}/readyz").json()["checks"].get("speech", {})
                        if speech.get("ok"):
                            break
                        time.sleep(0.2)  # noqa: TID251 - a plain poll, no event loop here
                    idle = rss_mb(gateway.proc.pid)
                    peaks = []
                    for n in levels if profile is not None else []:
                        with PeakSampler(gateway.proc.pid) as sampler:
                            texts = asyncio.run(transcribe_at_once(gateway.api_base, key, n))
                        assert all(texts), texts
                        peaks.append((n, sampler.peak))
                    rows.append((label, idle, peaks))
        finally:
            bus.stop()
    base = rows[0][1]
    print(f"\n{'profile':26}{'idle RSS MB':>12}{'+ over bare':>12}   peak RSS MB while N utterances decode")
    for label, idle, peaks in rows:
        decoding = "  ".join(f"N={n}: {peak:.0f} (+{peak - idle:.0f})" for n, peak in peaks)
        print(f"{label:26}{idle:>12.0f}{idle - base:>12.0f}   {decoding}")


if __name__ == "__main__":
    main()
