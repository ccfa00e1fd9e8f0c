"""Frames: the unit of flow between the engine and the transports.

The engine emits `Frame`s through its `emit`: typed frames for what flows most and what
transports act on — the assistant's audio (`OutputAudio`: PCM plus the same audio in the
session's output format), text and transcript deltas, turn signals, errors — and, for the rest,
a server event already built as wire data (`Event`, a dict). Each typed frame's `event()` is its
wire event (built by `protocol/`), taken at the transport's edge: the WebSocket and data-channel
`Outbox` encodes frames there (output audio base64-encoded), while a call plays the PCM of
`OutputAudio` and never reads its wire bytes.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from ..protocol import ids
from ..protocol import server_events as wire
from ..protocol.errors import ApiError
from ..protocol.server_events import Event


@dataclass(frozen=True, slots=True)
class PcmFrame:
    """Mono 16-bit PCM at `rate` Hz."""

    samples: npt.NDArray[np.int16]
    rate: int

    @property
    def duration_ms(self) -> float:
        return len(self.samples) * 1000.0 / self.rate


@dataclass(frozen=True, slots=True)
class OutputAudio:
    """A piece of a response's audio (`response.output_audio.delta` on the wire)."""

    event_id: str
    response_id: str
    item_id: str
    pcm: PcmFrame  # at the session's output rate: what a call plays
    data: bytes  # the same audio in the session's output format: what items keep and the wire carries
    output_index: int = 0
    content_index: int = 0
    type: str = field(default="response.output_audio.delta", init=False)

    def event(self) -> Event:
        """The wire event (base64 of `data`), built at the transport's edge."""
        return wire.output_audio_delta(
            self.event_id, self.response_id, self.item_id, self.output_index, self.content_index, self.data
        )


@dataclass(frozen=True, slots=True)
class TextDelta:
    """A piece of a response's text, or of its audio's transcript (`transcript=True`)."""

    response_id: str
    item_id: str
    delta: str
    transcript: bool
    output_index: int = 0
    content_index: int = 0
    event_id: str = field(default_factory=ids.event_id)

    @property
    def type(self) -> str:
        return "response.output_audio_transcript.delta" if self.transcript else "response.output_text.delta"

    def event(self) -> Event:
        return wire.part_delta(
            self.type,
            self.event_id,
            self.response_id,
            self.item_id,
            self.output_index,
            self.content_index,
            self.delta,
        )


@dataclass(frozen=True, slots=True)
class SpeechStarted:
    """Server VAD heard a turn begin (`audio_start_ms` includes the prefix padding)."""

    audio_start_ms: int
    item_id: str
    event_id: str = field(default_factory=ids.event_id)
    type: str = field(default="input_audio_buffer.speech_started", init=False)

    def event(self) -> Event:
        return wire.speech_started(self.event_id, self.audio_start_ms, self.item_id)


@dataclass(frozen=True, slots=True)
class SpeechStopped:
    """Server VAD heard the turn end (`audio_end_ms` includes the trailing silence)."""

    audio_end_ms: int
    item_id: str
    event_id: str = field(default_factory=ids.event_id)
    type: str = field(default="input_audio_buffer.speech_stopped", init=False)

    def event(self) -> Event:
        return wire.speech_stopped(self.event_id, self.audio_end_ms, self.item_id)


@dataclass(frozen=True, slots=True)
class ErrorFrame:
    """A client mistake (or a server failure) the session goes on after; `client_event_id` is
    the failed event's id, if it had one."""

    error: ApiError
    client_event_id: str | None = None
    event_id: str = field(default_factory=ids.event_id)
    type: str = field(default="error", init=False)

    def event(self) -> Event:
        return wire.error_event(self.error, self.client_event_id, self.event_id)


TypedFrame = OutputAudio | TextDelta | SpeechStarted | SpeechStopped | ErrorFrame
Frame = Event | TypedFrame
Emit = Callable[[Frame], None]


def frame_type(frame: Frame) -> str:
    """The server event type a frame stands for."""
    return str(frame.get("type")) if isinstance(frame, dict) else frame.type


def wire_event(frame: Frame) -> Event:
    """A frame as the server event a WebSocket or data channel sends."""
    return frame if isinstance(frame, dict) else frame.event()
