"""Cost of the streaming audio path per session, beside a one-shot baseline in the same run.

Streams 60 s of audio through the transcoders in the chunk sizes clients use (20 ms appends in,
TTS blocks out) and compares with the least work possible: one `soxr.resample` call over the whole
buffer (no streaming, no G.711). Prints CPU time, the real-time factor (audio seconds processed per
CPU second) and the ratio streamed / one-shot.

Usage: .venv/bin/python bench/audio_transcode.py
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import soxr

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from ovos_realtime_gateway.audio import AudioFormat, InputTranscoder, OutputTranscoder  # noqa: E402
from ovos_realtime_gateway.audio.transcode import encode  # noqa: E402

SECONDS = 60.0
Samples = npt.NDArray[np.int16]


def tone(rate: int) -> Samples:
    t = np.arange(int(rate * SECONDS)) / rate
    return (np.sin(2 * np.pi * 440 * t) * 12000).astype(np.int16)


def cpu_seconds(fn: Callable[[], object], repeat: int = 5) -> float:
    best = float("inf")
    for _ in range(repeat):
        start = time.process_time()
        fn()
        best = min(best, time.process_time() - start)
    return best


def stream_in(session_format: dict[str, Any], chunks: list[bytes]) -> None:
    transcoder = InputTranscoder(session_format)
    for part in chunks:
        transcoder.feed(part)
    transcoder.flush()


def stream_out(session_format: dict[str, Any], source_rate: int, blocks: list[Samples]) -> None:
    transcoder = OutputTranscoder(source_rate, session_format)
    for block in blocks:
        transcoder.feed(block)
    transcoder.flush()


def one_shot(samples: Samples, in_rate: int, out_rate: int) -> None:
    soxr.resample(samples, in_rate, out_rate)


def main() -> None:
    pcm24 = {"type": "audio/pcm", "rate": 24000}
    pcmu = {"type": "audio/pcmu"}
    rows: list[tuple[str, float, float]] = []
    for label, session_format in (("pcm 24 kHz", pcm24), ("pcmu 8 kHz", pcmu)):
        fmt = AudioFormat.from_session(session_format)
        samples = tone(fmt.rate)
        wire = encode(fmt, samples)
        size = fmt.bytes_for_ms(20)
        chunks = [wire[i : i + size] for i in range(0, len(wire), size)]
        ours = cpu_seconds(partial(stream_in, session_format, chunks))
        baseline = cpu_seconds(partial(one_shot, samples, fmt.rate, 16000))
        rows.append((f"in:  {label} -> 16 kHz, 20 ms appends", ours, baseline))
    source = tone(22050)
    blocks = [source[i : i + 4096] for i in range(0, len(source), 4096)]
    for label, session_format in (("pcm 24 kHz", pcm24), ("pcmu 8 kHz", pcmu)):
        target = AudioFormat.from_session(session_format).rate
        ours = cpu_seconds(partial(stream_out, session_format, 22050, blocks))
        baseline = cpu_seconds(partial(one_shot, source, 22050, target))
        rows.append((f"out: 22.05 kHz TTS -> {label}, 4096-sample blocks", ours, baseline))

    print(f"{SECONDS:.0f} s of audio per path; CPU seconds, best of 5")
    print(f"{'path':<50}{'streamed':>10}{'one-shot':>10}{'ratio':>8}{'x realtime':>12}")
    for name, ours, baseline in rows:
        print(f"{name:<50}{ours:>10.4f}{baseline:>10.4f}{ours / baseline:>8.2f}{SECONDS / ours:>12.0f}")


if __name__ == "__main__":
    main()
