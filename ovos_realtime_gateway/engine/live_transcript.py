"""Transcription while the user speaks, for STT plugins that stream (OPM `StreamingSTT`).

Server VAD's `speech_started` opens a stream with the turn's audio so far (its prefix padding
included); every later append is fed as it arrives; the commit only waits for the plugin to
finish. A plugin that cannot stream just now (all its streams busy) or failed to open one is
not a lost turn: the committed audio is transcribed the usual way. Nor is a stream that heard
well past the turn's end (one long append can hold the next utterance too): its transcript would
carry words that belong to the next item, so the committed audio is transcribed instead.

Opening the stream is a task of the owner's `TaskSupervisor` (the session's, when it passes
one): closing the owner cancels it, and a stream the plugin opens after that is still aborted,
so its pooled plugin instance goes back to the pool.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

from ..audio import PIPELINE
from ..tasks import TaskSupervisor
from .transcription import SttBackend, TranscriptStream, recognise, transcribe

log = logging.getLogger("ovos_realtime.stt")
OVERRUN_MS = 300
"""Audio a stream may have heard past the committed turn (the VAD signals a batch after the
audio it classified, within the append that completed it); more → the turn is transcribed whole."""


class LiveTranscript:
    def __init__(
        self, backend: SttBackend, lang: str | None, pcm16k: bytes, tasks: TaskSupervisor | None = None
    ) -> None:
        self._backend = backend
        self._lang = lang or backend.default_lang
        self._fed = 0  # 16 kHz bytes heard so far
        self._queued: list[bytes] = []  # audio fed while the stream opens
        self._stream: TranscriptStream | None = None
        self._aborted = False
        self._tasks = tasks if tasks is not None else TaskSupervisor("live-transcript")
        self._opening = self._tasks.spawn("open-stream", self._open())
        self.feed(pcm16k)

    async def _open(self) -> TranscriptStream | None:
        loop = asyncio.get_running_loop()
        opening = loop.run_in_executor(
            self._backend.executor, self._backend.transcriber.open_stream, self._lang
        )
        try:
            stream = await asyncio.shield(opening)
        except asyncio.CancelledError:  # the owner closed: the plugin's call goes on in its thread
            opening.add_done_callback(self._abort_opened)
            raise
        except Exception:
            log.exception("opening a transcription stream failed; the turn is transcribed at commit")
            return None
        if stream is None:
            return None
        if self._aborted:
            self._abort_stream(stream)
            return None
        for pcm in self._queued:
            stream.feed(pcm)
        self._queued.clear()
        self._stream = stream
        return stream

    def feed(self, pcm: bytes) -> None:
        """16 kHz audio of the turn, as it is appended."""
        self._fed += len(pcm)
        if not pcm or self._aborted:
            return
        if self._stream is not None:
            self._stream.feed(pcm)
        elif not self._opening.done():
            self._queued.append(pcm)

    async def finish(self, committed: bytes) -> str:
        """The committed turn's transcript, from its 16 kHz audio (raises TranscriptionFailed)."""
        backend = self._backend
        try:
            stream = await asyncio.wait_for(asyncio.shield(self._opening), backend.timeout_s)
        except asyncio.TimeoutError:
            stream = None  # the plugin is stuck opening: the batch path reports it
        overrun_ms = PIPELINE.duration_ms(self._fed - len(committed))
        if stream is None or overrun_ms > OVERRUN_MS:
            self.abort()  # a stream that opens late, or heard too much, is dropped when it can be
            return await transcribe(backend, committed, self._lang)
        return await recognise(backend, stream.finish)

    def abort(self) -> None:
        """The turn's audio went away (cleared, format changed, session closed)."""
        self._aborted = True
        self._queued.clear()
        stream, self._stream = self._stream, None
        if stream is not None:
            self._abort_stream(stream)

    def _abort_opened(self, opening: asyncio.Future[TranscriptStream | None]) -> None:
        """A stream that opened after its owner closed is dropped (its instance back to the pool)."""
        self._aborted = True
        if not opening.cancelled() and opening.exception() is None and (stream := opening.result()):
            self._abort_stream(stream)

    def _abort_stream(self, stream: TranscriptStream) -> None:
        """`stream.abort` (blocking) on the backend's threads; the future is not awaited: nothing
        waits for a dropped utterance."""
        with contextlib.suppress(RuntimeError):  # the executor is already shut down
            asyncio.get_running_loop().run_in_executor(self._backend.executor, stream.abort)
