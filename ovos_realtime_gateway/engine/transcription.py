"""Input audio transcription: committed user audio → text, on worker threads.

The text is what OVOS answers (skills take utterances), so committed audio is always transcribed
when an STT backend is configured; the `conversation.item.input_audio_transcription.*` events are
sent only when the session asked for transcription (`audio.input.transcription`), as OpenAI does.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Callable
from concurrent.futures import Executor
from dataclasses import dataclass
from typing import Protocol


class TranscriptStream(Protocol):
    """One utterance streamed to a streaming STT plugin while the user speaks."""

    def feed(self, pcm16k: bytes) -> None:
        """Queue 16 kHz mono 16-bit PCM for decoding. Must not block (called on the event loop)."""
        ...

    def finish(self) -> str:
        """The transcript, once everything fed is decoded. Blocking; may raise."""
        ...

    def abort(self) -> None:
        """Drop the utterance. Blocking."""
        ...


class Transcriber(Protocol):
    def warm(self) -> None:
        """Load the plugin and its model if not loaded yet. Blocking; may raise."""
        ...

    @property
    def loaded(self) -> bool:
        """Whether `warm` has loaded what a transcription needs (then it has nothing to do)."""
        ...

    def transcribe(self, pcm16k: bytes, lang: str) -> str:
        """16 kHz mono 16-bit PCM → text. Blocking; may raise."""
        ...

    @property
    def streams(self) -> bool:
        """Whether `open_stream` can decode an utterance while it is spoken."""
        ...

    def open_stream(self, lang: str) -> TranscriptStream | None:
        """A stream for one utterance, or None (no streaming now: transcribe at commit). Blocking."""
        ...


@dataclass(frozen=True)
class SttBackend:
    transcriber: Transcriber
    executor: Executor
    default_lang: str = "en-US"
    timeout_s: float = 30.0
    failed: Callable[[str], None] = lambda kind: None  # told "error" or "timeout" (metrics)


class TranscriptionFailed(Exception):
    def __init__(self, message: str, code: str) -> None:
        super().__init__(message)
        self.code = code


async def recognise(backend: SttBackend, call: Callable[[], str]) -> str:
    """Run a blocking STT call on the backend's threads, bounded by its timeout; the text, trimmed
    (raises TranscriptionFailed). Loading the plugin and its model, the first time, is not part of
    the timeout: on a slow device that alone can take longer than a decode may."""
    loop = asyncio.get_running_loop()
    if not backend.transcriber.loaded:  # once: later turns go straight to the decode
        try:
            await loop.run_in_executor(backend.executor, backend.transcriber.warm)
        except Exception as exc:
            backend.failed("error")
            raise TranscriptionFailed(f"Speech recognition failed: {exc}", "transcription_failed") from exc
    try:
        text = await asyncio.wait_for(loop.run_in_executor(backend.executor, call), backend.timeout_s)
    except asyncio.TimeoutError:
        backend.failed("timeout")
        raise TranscriptionFailed(
            f"Speech recognition took longer than {backend.timeout_s:.0f} s.", "transcription_timeout"
        ) from None
    except Exception as exc:
        backend.failed("error")
        raise TranscriptionFailed(f"Speech recognition failed: {exc}", "transcription_failed") from exc
    return str(text or "").strip()


async def transcribe(backend: SttBackend, pcm: bytes, lang: str | None) -> str:
    """The transcript of one committed item's 16 kHz audio (raises TranscriptionFailed)."""
    return await recognise(
        backend, functools.partial(backend.transcriber.transcribe, pcm, lang or backend.default_lang)
    )
