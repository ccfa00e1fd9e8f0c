"""A cheap first-stage voice detector in front of silero: how much model time it saves, and
whether turns stay where they are.

Conversations (three questions with pauses, four voices) over four kinds of background are run
through the gateway's VAD path as it is (`VoiceInput`: the -50 dBFS silence floor, silero on the
rest) and through WebRTC's VAD as a gate: silero hears a frame only from the gate's first hit
(after a warm-up on the frames before it, to bring silero's state up to date) until `hangover`
frames after its last hit. Printed: the share of frames silero ran on, and how far the turn
edges moved (in frames) against the path as it is.

Usage: pip install webrtcvad-wheels; .venv/bin/python bench/vad_prefilter.py
"""

from __future__ import annotations

import asyncio
import importlib
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from ovos_realtime_gateway.engine.turns import SpeechStarted, TurnDetector, TurnSignal, VadParams  # noqa: E402
from ovos_realtime_gateway.engine.voice_input import SpeechDetector, VadBackend, VoiceInput  # noqa: E402
from ovos_realtime_gateway.speech.vad import opm_speech_detectors  # noqa: E402
from test.speech import voice_pcm, with_noise  # noqa: E402

PARAMS = VadParams("server_vad", 0.5, 300, 500, None, False, False)
FRAME = 512  # 32 ms, the default
FLOOR = (32768 * 10 ** (-50 / 20)) ** 2
VOICES = ("espeak-ng", "rms", "slt", "kal")
BACKGROUNDS = {  # name: (white noise in dBFS, speech-to-noise ratio in dB or None)
    "quiet room, -60 dBFS": (-60.0, None),
    "digital silence, -90 dBFS": (-90.0, None),
    "fan, -45 dBFS (over the floor)": (-45.0, None),
    "street, speech 10 dB over it": (-60.0, 10.0),
}
GATES = [(mode, warm_up, 8) for mode in (0, 1, 2, 3) for warm_up in (0, 16)]


def conversation(voice: str, noise_dbfs: float, snr_db: float | None) -> npt.NDArray[np.int16]:
    texts = ("what time is it", "set a timer for five minutes", "and what is the weather like tomorrow")
    pcm = np.concatenate(
        [
            np.frombuffer(voice_pcm(text, voice, 16000, lead_ms=800 + 300 * i, tail_ms=1200), "<i2")
            for i, text in enumerate(texts)
        ]
    )
    if snr_db is not None:
        pcm = np.frombuffer(with_noise(pcm.tobytes(), snr_db, seed=3), "<i2")
    noise = np.random.default_rng(7).normal(0.0, 32768 * 10 ** (noise_dbfs / 20), pcm.size)
    return np.clip(pcm + noise, -32768, 32767).astype(np.int16)


class Counted:
    def __init__(self, inner: SpeechDetector) -> None:
        self.inner = inner
        self.calls = 0

    def is_speech(self, frame: npt.NDArray[np.int16]) -> bool:
        self.calls += 1
        return self.inner.is_speech(frame)


def as_it_is(pcm: npt.NDArray[np.int16]) -> tuple[list[TurnSignal], int]:
    """The gateway's path: `VoiceInput` with the silence floor, 20 ms appends."""
    made: list[Counted] = []
    factory = opm_speech_detectors()

    def counted(params: VadParams) -> SpeechDetector:
        made.append(Counted(factory(params)))
        return made[-1]

    async def run() -> list[TurnSignal]:
        with ThreadPoolExecutor(1) as executor:
            voice = VoiceInput(
                {"type": "audio/pcm", "rate": 24000}, PARAMS, VadBackend(counted, executor), 0.0
            )
            signals: list[TurnSignal] = []
            for start in range(0, pcm.size, 320):
                signals += await voice.feed(pcm[start : start + 320])
            return signals

    signals = asyncio.run(run())
    return signals, sum(detector.calls for detector in made)


def gated(pcm: npt.NDArray[np.int16], mode: int, warm_up: int, hangover: int) -> tuple[list[TurnSignal], int]:
    webrtcvad: Any = importlib.import_module("webrtcvad")
    gate = webrtcvad.Vad(mode)
    detector = Counted(opm_speech_detectors()(PARAMS))
    turns = TurnDetector(PARAMS, 32)
    frames = pcm[: pcm.size // FRAME * FRAME].reshape(-1, FRAME)
    loudness = (frames.astype(np.float64) ** 2).mean(axis=1)
    since_hit = hangover + 1
    signals: list[TurnSignal] = []
    for index, frame in enumerate(frames):
        hit = loudness[index] >= FLOOR and any(
            gate.is_speech(frame[part * 160 : (part + 1) * 160].tobytes(), 16000) for part in range(3)
        )
        if hit and since_hit > hangover:  # the gate opens: silero catches up on what came before
            for earlier in frames[max(0, index - warm_up) : index]:
                detector.is_speech(earlier)
        since_hit = 0 if hit else since_hit + 1
        signal = turns.push(detector.is_speech(frame) if since_hit <= hangover else False)
        if signal is not None:
            signals.append(signal)
    return signals, detector.calls


def shift(signals: list[TurnSignal], reference: list[TurnSignal]) -> int:
    """The largest move of a turn edge, in frames (99: a turn more or less)."""
    if [type(s) for s in signals] != [type(s) for s in reference]:
        return 99

    def at(signal: TurnSignal) -> int:
        return signal.audio_start_ms if isinstance(signal, SpeechStarted) else signal.audio_end_ms

    return max([abs(at(a) - at(b)) // 32 for a, b in zip(signals, reference, strict=True)] + [0])


def main() -> None:
    rows: dict[str, dict[str, list[tuple[float, int]]]] = {}
    for background, (noise, snr) in BACKGROUNDS.items():
        for voice in VOICES:
            pcm = conversation(voice, noise, snr)
            frames = pcm.size // FRAME
            reference, calls = as_it_is(pcm)
            rows.setdefault("as it is: silence floor", {}).setdefault(background, []).append(
                (calls / frames, 0)
            )
            for mode, warm_up, hangover in GATES:
                signals, calls = gated(pcm, mode, warm_up, hangover)
                name = f"webrtcvad mode {mode}, warm-up {warm_up}, hangover {hangover}"
                rows.setdefault(name, {}).setdefault(background, []).append(
                    (calls / frames, shift(signals, reference))
                )
    print("share of 32 ms frames silero ran on / largest turn-edge move in frames, over", ", ".join(VOICES))
    print(f"{'first stage':<44}" + "".join(f"{name[:26]:>30}" for name in BACKGROUNDS))
    for name, by_background in rows.items():
        cells = "".join(
            f"{np.mean([share for share, _ in runs]) * 100:>20.0f}% /{max(moved for _, moved in runs):>3}"
            + " " * 5
            for runs in by_background.values()
        )
        print(f"{name:<44}{cells}")


if __name__ == "__main__":
    main()
