"""The session's 16 kHz audio → frames → a speech detector (in an executor) → turn signals.

The detector is a VAD plugin behind a one-method interface; its calls never run on the event
loop. Each append is classified before the next client event is handled, so signals keep the
order of the audio.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from concurrent.futures import Executor
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

import numpy as np
import numpy.typing as npt

from ..audio import PIPELINE, AudioFormat
from .turns import TurnDetector, TurnSignal, VadParams

FRAME_MS_CHOICES = (32, 64, 96)
"""The frame lengths silero classifies (512, 1024, 1536 samples at 16 kHz). One inference costs
about the same whatever its length (153 / 173 / 187 us here), so longer frames are cheaper per
second of audio; speech starts and stops are placed to a frame."""
DEFAULT_FRAME_MS = 32
QUIET_HANGOVER_MS = 500
"""Quiet frames this close after a loud one still go to the model: the floor saves CPU on long
silences, but skipping the soft frames between words broke silero's context (it works on a
stream) and turned band-limited speech (G.711 calls) into scattered, borderline frames."""
HANDOFF_MS = 96
"""Audio classified per executor call: a thread hand-off costs more CPU than an inference, so
frames go in batches; turn positions stay exact, only the signal may come up to a batch later
in wall time."""


class SpeechDetector(Protocol):
    """Classifies one frame of 16 kHz mono int16 audio (`VadBackend.frame_samples` long). May block."""

    def is_speech(self, frame: npt.NDArray[np.int16]) -> bool: ...


@runtime_checkable
class BatchingDetector(SpeechDetector, Protocol):
    """A detector that classifies a session's frames together with other sessions' (in one
    inference, off the event loop): awaited instead of run in the executor."""

    async def classify(self, frames: npt.NDArray[np.int16]) -> list[bool]: ...


class VadUnavailable(RuntimeError):
    """The configured VAD plugin cannot be loaded."""


SpeechDetectorFactory = Callable[[VadParams], SpeechDetector]


@dataclass(frozen=True)
class VadBackend:
    """Where sessions get their speech detectors, the threads that run them, the level under
    which a frame is silence without asking the model (None: every frame goes to the model), and
    the length of a frame."""

    factory: SpeechDetectorFactory
    executor: Executor
    silence_floor_dbfs: float | None = -50.0
    frame_ms: int = DEFAULT_FRAME_MS
    unavailable: str | None = None  # why the plugin could not be loaded (sessions get this error)

    @property
    def frame_samples(self) -> int:
        return PIPELINE.rate * self.frame_ms // 1000

    @property
    def batch_frames(self) -> int:
        return max(1, round(HANDOFF_MS / self.frame_ms))

    @property
    def floor_mean_square(self) -> float:
        if self.silence_floor_dbfs is None:
            return -1.0
        return float((32768.0 * 10 ** (self.silence_floor_dbfs / 20)) ** 2)


class VoiceInput:
    """One session's server-side VAD: feed it appended audio, get speech start/stop signals."""

    def __init__(
        self, session_format: dict[str, Any], params: VadParams, backend: VadBackend, start_ms: float
    ) -> None:
        self.params = params
        self.turns = TurnDetector(params, backend.frame_ms, start_ms)
        self._backend = backend
        self.format = AudioFormat.from_session(session_format)  # of the audio it was built for
        self._pending = np.zeros(0, dtype=np.int16)
        self._detector: SpeechDetector | None = None
        self._hangover_frames = max(1, QUIET_HANGOVER_MS // backend.frame_ms)
        self._since_loud = self._hangover_frames  # frames since the last loud one

    async def feed(self, samples: npt.NDArray[np.int16]) -> list[TurnSignal]:
        """16 kHz samples of the session's input (the input buffer made them) → turn signals."""
        if self._pending.size:
            samples = np.concatenate([self._pending, samples])
        size = self._backend.frame_samples
        whole = len(samples) - len(samples) % size
        if whole < self._backend.batch_frames * size:
            self._pending = samples
            return []
        self._pending = samples[whole:]
        frames = samples[:whole].reshape(-1, size)
        loud = self._near_sound(_mean_square(frames) >= self._backend.floor_mean_square)
        flags = [False] * len(frames)
        if loud.any():
            loop = asyncio.get_running_loop()
            if self._detector is None:
                self._detector = await loop.run_in_executor(
                    self._backend.executor, self._backend.factory, self.params
                )
            indices = np.flatnonzero(loud)
            if isinstance(self._detector, BatchingDetector):
                heard = await self._detector.classify(frames[indices])
            else:
                heard = await loop.run_in_executor(
                    self._backend.executor, _classify, self._detector, frames[indices]
                )
            for index, flag in zip(indices.tolist(), heard, strict=True):
                flags[index] = flag
        return [signal for flag in flags if (signal := self.turns.push(flag)) is not None]

    def _near_sound(self, loud: npt.NDArray[np.bool_]) -> npt.NDArray[np.bool_]:
        """Which frames the model hears: the loud ones and the quiet ones soon after a loud one."""
        heard = loud.copy()
        for index, is_loud in enumerate(loud.tolist()):
            self._since_loud = 0 if is_loud else self._since_loud + 1
            heard[index] = self._since_loud < self._hangover_frames
        return heard

    @property
    def keep_from_ms(self) -> float:
        """Input audio older than this can go: it can no longer be part of a turn's prefix."""
        return self.turns.earliest_start_ms - self.params.prefix_padding_ms - self._backend.frame_ms


def _mean_square(frames: npt.NDArray[np.int16]) -> npt.NDArray[np.float64]:
    as_float = frames.astype(np.float64)
    result: npt.NDArray[np.float64] = np.einsum("ij,ij->i", as_float, as_float) / frames.shape[1]
    return result


def _classify(detector: SpeechDetector, frames: npt.NDArray[np.int16]) -> list[bool]:
    return [detector.is_speech(frame) for frame in frames]
