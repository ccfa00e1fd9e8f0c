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
from typing import Any, Protocol, cast, runtime_checkable

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
        self._frame = backend.frame_samples
        self._due = backend.batch_frames * self._frame  # samples held before a hand-off
        self._floor = backend.floor_mean_square
        self._held: list[npt.NDArray[np.int16]] = []  # appends since the last hand-off
        self._held_samples = 0
        self._detector: SpeechDetector | None = None
        self._batching = False  # the detector classifies with other sessions' frames
        self._hangover_frames = max(1, QUIET_HANGOVER_MS // backend.frame_ms)
        self._since_loud = self._hangover_frames  # frames since the last loud one

    @property
    def wanted_samples(self) -> int:
        """16 kHz samples still missing for the next hand-off (before it, `feed` only holds them)."""
        return self._due - self._held_samples

    async def feed(self, samples: npt.NDArray[np.int16]) -> list[TurnSignal]:
        """16 kHz samples of the session's input (the input buffer made them) → turn signals.

        Runs for every append (50 a second per session): until a hand-off's worth of audio is
        held it only keeps the samples; then one concatenation, one level check for all frames,
        and the model only for frames near sound."""
        self._held.append(samples)
        self._held_samples += len(samples)
        if self._held_samples < self._due:
            return []
        joined = self._held[0] if len(self._held) == 1 else np.concatenate(self._held)
        whole = self._held_samples - self._held_samples % self._frame
        rest = joined[whole:]
        self._held = [rest] if rest.size else []
        self._held_samples = rest.size
        frames = joined[:whole].reshape(-1, self._frame)
        heard = self._near_sound(_mean_square(frames) >= self._floor)
        if heard is None:  # all quiet, far from sound: silence, without the model
            flags = [False] * len(frames)
        else:
            flags = await self._classify(frames, heard)
        return [signal for flag in flags if (signal := self.turns.push(flag)) is not None]

    async def _classify(self, frames: npt.NDArray[np.int16], heard: npt.NDArray[np.bool_]) -> list[bool]:
        """Speech flags of `frames`: the model's for the `heard` ones, silence for the rest."""
        loop = asyncio.get_running_loop()
        if self._detector is None:
            self._detector = await loop.run_in_executor(
                self._backend.executor, self._backend.factory, self.params
            )
            self._batching = isinstance(self._detector, BatchingDetector)  # slow: once, not per call
        every = bool(heard.all())
        chosen = frames if every else frames[heard]
        if self._batching:
            verdicts = await cast(BatchingDetector, self._detector).classify(chosen)
        else:
            verdicts = await loop.run_in_executor(self._backend.executor, _classify, self._detector, chosen)
        if every:
            return verdicts
        flags = [False] * len(frames)
        for index, flag in zip(np.flatnonzero(heard).tolist(), verdicts, strict=True):
            flags[index] = flag
        return flags

    def _near_sound(self, loud: npt.NDArray[np.bool_]) -> npt.NDArray[np.bool_] | None:
        """Which frames the model hears: the loud ones and the quiet ones soon after a loud one;
        None when it hears none of them."""
        if not loud.any():
            first_quiet = self._since_loud
            self._since_loud += len(loud)
            if first_quiet + 1 >= self._hangover_frames:
                return None
            return np.arange(first_quiet + 1, first_quiet + 1 + len(loud)) < self._hangover_frames
        heard = np.empty(len(loud), dtype=np.bool_)
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
    result: npt.NDArray[np.float64] = np.einsum("ij,ij->i", as_float, as_float)
    result /= frames.shape[1]
    return result


def _classify(detector: SpeechDetector, frames: npt.NDArray[np.int16]) -> list[bool]:
    return [detector.is_speech(frame) for frame in frames]
