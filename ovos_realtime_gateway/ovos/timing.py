"""Plugin calls timed into `ovos_realtime_turn_stage_seconds` (the per-call latency of a turn)."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from ..engine.transcription import Transcriber


class TimedTranscriber:
    def __init__(self, inner: Any, observe: Callable[[float], None]) -> None:
        self.inner = inner
        self._observe = observe

    def warm(self) -> None:
        self.inner.warm()

    def transcribe(self, pcm16k: bytes, lang: str) -> str:
        start = time.perf_counter()
        try:
            return str(self.inner.transcribe(pcm16k, lang))
        finally:
            self._observe(time.perf_counter() - start)


Synthesize = Callable[[str, str, str | None], tuple[bytes, int]]


def timed_synthesis(synthesize: Synthesize, observe: Callable[[float], None]) -> Synthesize:
    def synthesize_timed(sentence: str, lang: str, voice: str | None) -> tuple[bytes, int]:
        start = time.perf_counter()
        try:
            return synthesize(sentence, lang, voice)
        finally:
            observe(time.perf_counter() - start)

    return synthesize_timed


_: type[Transcriber] = TimedTranscriber  # it is one
