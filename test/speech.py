"""Real speech for tests: espeak-ng (Debian) renders a sentence; soxr resamples it."""

from __future__ import annotations

import functools
import io
import shutil
import subprocess
import tempfile
import wave
from pathlib import Path

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


def chunks(pcm: bytes, rate: int = 24000, chunk_ms: int = 20) -> list[bytes]:
    size = rate * 2 * chunk_ms // 1000
    return [pcm[i : i + size] for i in range(0, len(pcm), size)]


def voiced_ms(text: str) -> tuple[float, float]:
    """Where the voice is within espeak's output (its own leading/trailing silence excluded),
    by plain energy: independent of the VAD under test."""
    raw, source_rate = _espeak(text)
    loud = np.flatnonzero(np.abs(np.frombuffer(raw, dtype="<i2").astype(np.int32)) > 500)
    return loud[0] / source_rate * 1000, loud[-1] / source_rate * 1000


@functools.cache
def _flite(text: str, voice: str) -> tuple[bytes, int]:
    flite = shutil.which("flite")
    if flite is None:
        pytest.fail("flite is missing: scripts/install-system-deps installs it")
    with tempfile.TemporaryDirectory() as tmp:
        path = f"{tmp}/speech.wav"
        subprocess.run([flite, "-voice", voice, "-t", text, "-o", path], check=True, timeout=60)
        with wave.open(path) as reader:
            return reader.readframes(reader.getnframes()), reader.getframerate()


def user_speech_pcm(
    text: str, rate: int = 24000, lead_ms: int = 0, tail_ms: int = 0, voice: str = "rms"
) -> bytes:
    """A user saying `text` in one of Debian flite's voices (`rms` by default: CMU's own voice,
    which CMU's pocketsphinx recognises; `kal` pauses between words)."""
    raw, source_rate = _flite(text, voice)
    samples = soxr.resample(np.frombuffer(raw, dtype="<i2"), source_rate, rate)
    silence = np.zeros(int(rate * lead_ms / 1000), dtype=np.int16)
    tail = np.zeros(int(rate * tail_ms / 1000), dtype=np.int16)
    return np.concatenate([silence, samples.astype(np.int16), tail]).astype("<i2").tobytes()


def voice_pcm(text: str, voice: str, rate: int = 24000, lead_ms: int = 0, tail_ms: int = 0) -> bytes:
    """`text` in a named voice: `espeak-ng`, or one of flite's (`rms`, `slt`, `awb`, `kal`)."""
    if voice == "espeak-ng":
        return speech_pcm(text, rate, lead_ms=lead_ms, tail_ms=tail_ms)
    return user_speech_pcm(text, rate, lead_ms=lead_ms, tail_ms=tail_ms, voice=voice)


def user_speech_wav(
    path: Path, text: str, rate: int = 48_000, lead_ms: int = 1500, tail_ms: int = 3000, voice: str = "rms"
) -> Path:
    """Speech as a 16-bit mono WAV file (a browser's fake microphone plays it)."""
    with wave.open(str(path), "wb") as writer:
        writer.setnchannels(1)
        writer.setsampwidth(2)
        writer.setframerate(rate)
        writer.writeframes(voice_pcm(text, voice, rate, lead_ms=lead_ms, tail_ms=tail_ms))
    return path


def with_noise(pcm: bytes, snr_db: float, seed: int = 0) -> bytes:
    """`pcm` (16-bit) with white noise added at `snr_db` below the speech's power (measured over
    its voiced samples), as from a fan or a street; reproducible for a seed."""
    samples = np.frombuffer(pcm, dtype="<i2").astype(np.float64)
    voiced = samples[np.abs(samples) > 300]
    power = float(np.mean(voiced**2)) if voiced.size else 0.0
    noise = np.random.default_rng(seed).normal(0.0, np.sqrt(power / 10 ** (snr_db / 10)), samples.size)
    return np.clip(samples + noise, -32768, 32767).astype("<i2").tobytes()
