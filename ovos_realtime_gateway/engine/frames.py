"""Frames: the unit of flow between the engine and the transports.

The engine emits `Frame`s through its `emit`: a server event the engine has already built as
wire data (`Event`, a dict), or a typed frame the transport turns into wire data at the edge —
`OutputAudio`, the assistant's audio as PCM plus the same audio in the session's output format.
The WebSocket and data-channel edge encodes an `OutputAudio` to `response.output_audio.delta`
(base64 of the session-format bytes); a call plays the PCM and never decodes the wire bytes.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import numpy.typing as npt

from ..protocol.server_events import Event, output_audio_delta


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

    type: ClassVar[str] = "response.output_audio.delta"
    event_id: str
    response_id: str
    item_id: str
    pcm: PcmFrame  # at the session's output rate: what a call plays
    data: bytes  # the same audio in the session's output format: what items keep and the wire carries
    output_index: int = 0
    content_index: int = 0

    def event(self) -> Event:
        """The wire event (base64 of `data`), built at the transport's edge."""
        return output_audio_delta(
            self.event_id, self.response_id, self.item_id, self.output_index, self.content_index, self.data
        )


Frame = Event | OutputAudio
Emit = Callable[[Frame], None]


def frame_type(frame: Frame) -> str:
    """The server event type a frame stands for."""
    return frame.type if isinstance(frame, OutputAudio) else str(frame.get("type"))


def wire_event(frame: Frame) -> Event:
    """A frame as the server event a WebSocket or data channel sends."""
    return frame.event() if isinstance(frame, OutputAudio) else frame
