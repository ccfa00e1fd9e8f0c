"""Real speech for tests: espeak-ng (Debian) renders a sentence; soxr resamples it."""

from __future__ import annotations

import functools
import io
import shutil
import subprocess
import wave

import numpy as np
import pytest
import soxr


@functools.cache
def _espeak(text: str) -> tuple[bytes, int]:
    espeak = shutil.which("espeak-ng")
    if espeak is None:
        pytest.fail("espeak-ng is missing: scripts/install-system-deps installs it")
    wav = subprocess.run([espeak, "--stdout", text], capture_output=True, check=True, timeout=60).stdout
    with wave.open(io.BytesIO(wav)) as reader:
        return reader.readframes(reader.getnframes()), reader.getframerate()


def speech_pcm(text: str, rate: int = 24000, lead_ms: int = 0, tail_ms: int = 0) -> bytes:
    """16-bit mono PCM of `text` spoken at `rate`, with silence before and after."""
    raw, source_rate = _espeak(text)
    samples = soxr.resample(np.frombuffer(raw, dtype="<i2"), source_rate, rate)
    silence = np.zeros(int(rate * lead_ms / 1000), dtype=np.int16)
    tail = np.zeros(int(rate * tail_ms / 1000), dtype=np.int16)
    return np.concatenate([silence, samples.astype(np.int16), tail]).astype("<i2").tobytes()


def speech_ms(text: str) -> float:
    raw, source_rate = _espeak(text)
    return len(raw) / 2 / source_rate * 1000


def chunks(pcm: bytes, rate: int = 24000, chunk_ms: int = 20) -> list[bytes]:
    size = rate * 2 * chunk_ms // 1000
    return [pcm[i : i + size] for i in range(0, len(pcm), size)]


def voiced_ms(text: str) -> tuple[float, float]:
    """Where the voice is within espeak's output (its own leading/trailing silence excluded),
    by plain energy: independent of the VAD under test."""
    raw, source_rate = _espeak(text)
    loud = np.flatnonzero(np.abs(np.frombuffer(raw, dtype="<i2").astype(np.int32)) > 500)
    return loud[0] / source_rate * 1000, loud[-1] / source_rate * 1000
