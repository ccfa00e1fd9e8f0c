"""Plugin calls timed into `ovos_realtime_turn_stage_seconds` (the per-call latency of a turn)."""

from __future__ import annotations

import time
from collections.abc import Callable, Generator
from typing import Any

from ..engine.transcription import Transcriber, TranscriptStream
from .tts import Synthesize


class TimedTranscriber:
    """Times each transcription; `count` is told whether it was "streamed" or "batch"."""

    def __init__(
        self, inner: Any, observe: Callable[[float], None], count: Callable[[str], None] = lambda _: None
    ) -> None:
        self.inner = inner
        self._observe = observe
        self._count = count

    def warm(self) -> None:
        self.inner.warm()

    @property
    def loaded(self) -> bool:
        return bool(self.inner.loaded)

    def transcribe(self, pcm16k: bytes, lang: str) -> str:
        start = time.perf_counter()
        self._count("batch")
        try:
            return str(self.inner.transcribe(pcm16k, lang))
        finally:
            self._observe(time.perf_counter() - start)

    @property
    def streams(self) -> bool:
        return bool(self.inner.streams)

    def open_stream(self, lang: str) -> TranscriptStream | None:
        stream = self.inner.open_stream(lang)
        return None if stream is None else TimedStream(stream, self._observe, self._count)


class TimedStream:
    """Times a streamed utterance from its commit to its transcript (what the turn waits for)."""

    def __init__(
        self, inner: TranscriptStream, observe: Callable[[float], None], count: Callable[[str], None]
    ) -> None:
        self.inner = inner
        self._observe = observe
        self._count = count

    def feed(self, pcm16k: bytes) -> None:
        self.inner.feed(pcm16k)

    def finish(self) -> str:
        start = time.perf_counter()
        self._count("streamed")
        try:
            return self.inner.finish()
        finally:
            self._observe(time.perf_counter() - start)

    def abort(self) -> None:
        self.inner.abort()


def timed_synthesis(synthesize: Synthesize, observe: Callable[[float], None]) -> Synthesize:
    """Times each sentence until its first audio (the whole synthesis, for a batch plugin)."""

    def synthesize_timed(
        sentence: str, lang: str, voice: str | None
    ) -> Generator[tuple[bytes, int], None, None]:
        start = time.perf_counter()
        pieces = synthesize(sentence, lang, voice)
        timed = False
        try:
            for piece in pieces:
                if not timed:
                    observe(time.perf_counter() - start)
                    timed = True
                yield piece
        finally:
            if not timed:
                observe(time.perf_counter() - start)
            pieces.close()

    return synthesize_timed


_: type[Transcriber] = TimedTranscriber  # it is one
