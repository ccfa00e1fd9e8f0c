"""Turn latency by stage, read off the events a session sends (`ovos_realtime_turn_latency_seconds`).

A turn ends when its audio is committed (server VAD or the client) or, for a typed turn, when the
response starts; from there the watcher times the transcript, the response's first text and its
first audio. It only looks at each event's type: one dict lookup per event on the hot path.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Generic, TypeVar

Observe = Callable[[str, float], None]
F = TypeVar("F")  # a server event dict, or one of the engine's typed frames (fields as attributes)
_ANSWER = frozenset({"response.output_text.delta", "response.output_audio_transcript.delta"})


class TurnLatency(Generic[F]):
    """Wraps a session's `emit`: passes every event on, timing the stages of each turn."""

    def __init__(
        self, emit: Callable[[F], None], observe: Observe, clock: Callable[[], float] = time.perf_counter
    ) -> None:
        self._emit = emit
        self._observe = observe
        self._clock = clock
        self._committed: dict[str, float] = {}  # item id → when committed, until transcribed
        self._turn_end: float | None = None
        self._answered = False
        self._heard = False

    def __call__(self, frame: F) -> None:
        kind = _field(frame, "type")
        if kind == "input_audio_buffer.committed":
            self._turn_end = now = self._clock()
            self._committed[str(_field(frame, "item_id"))] = now
            self._answered = self._heard = False
        elif kind == "conversation.item.input_audio_transcription.completed":
            self._stage("transcript", self._committed.pop(str(_field(frame, "item_id")), None))
        elif kind == "conversation.item.input_audio_transcription.failed":
            self._committed.pop(str(_field(frame, "item_id")), None)
        elif kind == "response.created":
            if self._turn_end is None:
                self._turn_end = self._clock()
            self._answered = self._heard = False
        elif kind in _ANSWER and not self._answered:
            self._answered = True
            self._stage("first_answer", self._turn_end)
        elif kind == "response.output_audio.delta" and not self._heard:
            self._heard = True
            self._stage("first_audio", self._turn_end)
        elif kind == "response.done":
            self._turn_end = None
        self._emit(frame)

    def _stage(self, stage: str, since: float | None) -> None:
        if since is not None:
            self._observe(stage, self._clock() - since)


def _field(frame: object, name: str) -> object:
    """A field of a server event (a dict) or of a typed frame (an attribute)."""
    return frame.get(name) if isinstance(frame, dict) else getattr(frame, name, None)
