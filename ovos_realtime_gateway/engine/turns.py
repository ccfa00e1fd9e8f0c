"""Server-side turn detection: per-frame speech flags in, `speech started` / `speech stopped` out.

The speech flags come from a VAD plugin (see `voice_input.py`); this module only keeps time and
applies the session's `turn_detection` parameters, so it is exact and cheap to test.

`semantic_vad` has no semantic model here: it runs the same VAD, with the silence a turn needs
taken from `eagerness` (docs/protocol.md says so to clients).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

MIN_SPEECH_MS = 64
"""Speech shorter than this (a click, a cough) does not start a turn."""

SEMANTIC_SILENCE_MS = {"low": 1500, "medium": 800, "auto": 800, "high": 400}
"""`semantic_vad.eagerness` → the silence that ends a turn (OpenAI's max waits: 8 s / 4 s / 2 s)."""
SEMANTIC_THRESHOLD = 0.5
SEMANTIC_PREFIX_MS = 300


@dataclass(frozen=True)
class VadParams:
    """The effective `audio.input.turn_detection` of a session, resolved for the detector."""

    kind: str
    threshold: float
    prefix_padding_ms: int
    silence_duration_ms: int
    idle_timeout_ms: int | None
    create_response: bool
    interrupt_response: bool

    @classmethod
    def from_config(cls, turn_detection: dict[str, Any] | None) -> VadParams | None:
        """None when turns are manual (`turn_detection: null`)."""
        if not turn_detection:
            return None
        kind = str(turn_detection.get("type", "server_vad"))
        flags = {
            "create_response": bool(turn_detection.get("create_response", True)),
            "interrupt_response": bool(turn_detection.get("interrupt_response", True)),
        }
        if kind == "semantic_vad":
            eagerness = str(turn_detection.get("eagerness") or "auto")
            return cls(
                kind,
                SEMANTIC_THRESHOLD,
                SEMANTIC_PREFIX_MS,
                SEMANTIC_SILENCE_MS.get(eagerness, SEMANTIC_SILENCE_MS["auto"]),
                None,
                **flags,
            )
        return cls(
            kind,
            float(turn_detection.get("threshold", 0.5)),
            int(turn_detection.get("prefix_padding_ms", 300)),
            int(turn_detection.get("silence_duration_ms", 500)),
            turn_detection.get("idle_timeout_ms"),
            **flags,
        )


@dataclass(frozen=True)
class SpeechStarted:
    audio_start_ms: int  # includes the prefix padding


@dataclass(frozen=True)
class SpeechStopped:
    audio_end_ms: int  # includes the trailing silence


TurnSignal = SpeechStarted | SpeechStopped


class TurnDetector:
    """Turns a stream of fixed-length frames' speech flags into speech start/stop signals.

    Positions are milliseconds of input audio since the session started (`audio_start_ms` and
    `audio_end_ms` in the events), counted from the frames themselves, never from the clock.
    """

    def __init__(self, params: VadParams, frame_ms: float, start_ms: float = 0.0) -> None:
        self.params = params
        self.frame_ms = frame_ms
        self.position_ms = start_ms
        self.in_speech = False
        self._speech_run_ms = 0.0
        self._speech_run_start = 0.0
        self._silence_run_ms = 0.0

    @property
    def earliest_start_ms(self) -> float:
        """Where the next turn could start: a speech run under way, or now."""
        if not self.in_speech and self._speech_run_ms > 0:
            return self._speech_run_start
        return self.position_ms

    def push(self, is_speech: bool) -> TurnSignal | None:
        frame_start = self.position_ms
        self.position_ms += self.frame_ms
        if not self.in_speech:
            if not is_speech:
                self._speech_run_ms = 0.0
                return None
            if self._speech_run_ms == 0.0:
                self._speech_run_start = frame_start
            self._speech_run_ms += self.frame_ms
            if self._speech_run_ms < MIN_SPEECH_MS:
                return None
            self.in_speech = True
            self._silence_run_ms = 0.0
            start = max(0.0, self._speech_run_start - self.params.prefix_padding_ms)
            return SpeechStarted(round(start))
        if is_speech:
            self._silence_run_ms = 0.0
            return None
        self._silence_run_ms += self.frame_ms
        if self._silence_run_ms < self.params.silence_duration_ms:
            return None
        self.in_speech = False
        self._speech_run_ms = 0.0
        return SpeechStopped(round(self.position_ms))
