"""RealtimeSession: the state machine behind one realtime connection, whatever the transport.

`handle(event)` applies one parsed client event; everything the client should see leaves
through `emit` (the transport's outbox). Client mistakes become `error` events and the session
goes on; only `session.close` ends it from the inside.

The session keeps the state and the dispatch table; each family of client events has its own
module: `session_update` (session.update/close), `input_audio` (append, commit, clear, turn
detection, transcription), `conversation_events` (items) and `response_events` (responses).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from functools import partial
from typing import Any

from ..observability.tracing import Span, current_span
from ..protocol import client_events as ce
from ..protocol import ids
from ..protocol.errors import ApiError
from ..protocol.server_events import event
from ..protocol.session_config import Config, render_session
from ..tasks import TaskSupervisor
from . import conversation_events, input_audio, response_events, session_update
from .config_view import SessionView
from .conversation import Conversation
from .frames import Emit, ErrorFrame, PcmFrame
from .input_buffer import InputAudioBuffer
from .item_audio import DEFAULT_BUDGET_BYTES, ItemAudio
from .live_transcript import LiveTranscript
from .responder import Responder
from .response import ResponseRun
from .transcription import SttBackend
from .turns import VadParams
from .voice_input import VadBackend, VoiceInput

log = logging.getLogger("ovos_realtime.engine")


@dataclass(frozen=True)
class SessionOptions:
    """Gateway-side behaviour that is not part of OpenAI's session object."""

    queue_responses: bool = False
    audio_chunk_ms: int = 100
    audio_lead_ms: float = 1000.0
    is_call: bool = False  # WebRTC/SIP: output_audio_buffer.* events apply
    audio_memory_bytes: int = DEFAULT_BUDGET_BYTES  # items' raw audio kept (the newest)
    max_input_buffer_ms: float = 300_000.0  # an uncommitted turn's audio, at most
    served_models: tuple[str, ...] = ()  # names a session.update may switch between


class SessionHooks:
    """Persistence and accounting callbacks; the default does nothing (tests, benches)."""

    async def config_changed(self, config: Config) -> None:
        return None

    async def items_changed(self, conversation: Conversation) -> None:
        return None

    def rate_limits(self) -> list[dict[str, Any]]:
        return []

    def response_finished(self, run: ResponseRun) -> None:
        """A response ended (`run.outcome`: counted by the gateway's metrics, sent to the event bridge)."""
        return None

    def input_audio(self, audio: bytes) -> bool:
        """Appended audio, before buffering; True when the hook consumed it (device microphone)."""
        return False


class RealtimeSession:
    def __init__(
        self,
        *,
        session_id: str,
        project_id: str,
        config: Config,
        expires_at: int,
        responder: Responder,
        emit: Emit,
        options: SessionOptions | None = None,
        hooks: SessionHooks | None = None,
        vad: VadBackend | None = None,
        stt: SttBackend | None = None,
    ) -> None:
        self.id = session_id
        self.project_id = project_id
        self.config = config
        self.view = SessionView.of(config)  # the typed, read-only view; rebuilt on every update
        self.expires_at = expires_at
        self.responder = responder
        self.emit = emit
        self.options = options or SessionOptions()
        self.hooks = hooks or SessionHooks()
        self.conversation = Conversation(
            ids.conversation_id(), audio=ItemAudio(self.options.audio_memory_bytes)
        )
        self.input = InputAudioBuffer(self.input_format)
        self.active: ResponseRun | None = None
        self.out_of_band: set[ResponseRun] = set()
        self.queued: list[ce.ResponseCreate] = []
        self.closed = False
        self.audio_sent_once = False
        self._vad = vad
        self._stt = stt
        self.tasks = TaskSupervisor(f"session-{session_id}")  # responses, transcriptions, writes
        self._tasks_closed = False
        self._transcriptions: dict[str, asyncio.Task[None]] = {}
        self.voice: VoiceInput | None = None
        self._live: LiveTranscript | None = None  # the turn being transcribed as it is spoken
        self._turn_item_id: str | None = None
        self._idle_timer: asyncio.TimerHandle | None = None
        self._persisting: set[asyncio.Task[None]] = set()
        self._persist_lock = asyncio.Lock()
        self._span = current_span.get()  # the session's span (the transport's): turns are its children
        self._turn: Span | None = None  # the span of the turn being spoken or committed, not yet answered
        self._vad_span: Span | None = None
        input_audio.configure_voice(self)
        self._handlers: dict[str, Callable[[Any], Awaitable[None]]] = {
            "session.update": partial(session_update.session_update, self),
            "session.close": partial(session_update.session_close, self),
            "input_audio_buffer.append": partial(input_audio.append_event, self),
            "input_audio_buffer.commit": partial(input_audio.commit_event, self),
            "input_audio_buffer.clear": partial(input_audio.clear_event, self),
            "output_audio_buffer.clear": partial(response_events.output_clear, self),
            "conversation.item.create": partial(conversation_events.item_create, self),
            "conversation.item.retrieve": partial(conversation_events.item_retrieve, self),
            "conversation.item.truncate": partial(conversation_events.item_truncate, self),
            "conversation.item.delete": partial(conversation_events.item_delete, self),
            "response.create": partial(response_events.response_create, self),
            "response.cancel": partial(response_events.response_cancel, self),
        }

    # -- plumbing --------------------------------------------------------------------------

    @property
    def kind(self) -> str:
        return self.view.kind

    @property
    def input_format(self) -> dict[str, Any]:
        return dict(self.view.input.format)

    @property
    def output_format(self) -> dict[str, Any]:
        return dict(self.view.output.format)

    def set_config(self, config: Config) -> None:
        """The effective config changed (a session.update): its typed view is rebuilt once."""
        self.config = config
        self.view = SessionView.of(config)

    def rendered(self) -> Config:
        return render_session(self.config, self.id, self.expires_at)

    def start(self) -> None:
        self.emit(event("session.created", session=self.rendered()))

    async def handle(self, parsed: ce.ClientEvent) -> ApiError | None:
        """Apply one client event; a client mistake becomes an `error` event (and is returned)."""
        try:
            await self._handlers[parsed.type](parsed)
        except ApiError as exc:
            self.emit(ErrorFrame(exc, parsed.event_id))
            return exc
        return None

    async def handle_audio(self, audio: bytes) -> ApiError | None:
        """An `input_audio_buffer.append` with no event_id, its audio decoded (the transport's
        fast path for the plain appends SDKs send): applied as `handle` applies the event."""
        try:
            await input_audio.append_decoded(self, audio)
        except ApiError as exc:
            self.emit(ErrorFrame(exc, None))
            return exc
        return None

    def fail(self, error: ApiError, client_event_id: str | None = None) -> None:
        self.emit(ErrorFrame(error, client_event_id))

    async def close(self) -> None:
        """End every running response (cancelled) before the transport goes away; transcriptions
        of committed turns still running finish (bounded by the STT timeout) and are stored."""
        self.closed = True
        self.queued.clear()
        input_audio.cancel_idle_timer(self)
        input_audio.drop_live(self)
        for run in [self.active, *self.out_of_band]:
            if run is not None:
                await run.cancel("client_cancelled")
        self.end_turn()
        transcribing = list(self._transcriptions.values())
        if transcribing:  # a turn's transcript is stored even when the client left before it was ready
            await asyncio.wait(transcribing, timeout=(self._stt.timeout_s if self._stt else 30.0) + 5)
        await asyncio.gather(*self._persisting, return_exceptions=True)
        self._tasks_closed = True
        await self.tasks.close()

    def begin_turn(self, item_id: str) -> Span:
        """The span of a new turn (a previous one that was never answered ends)."""
        self.end_turn()
        self._turn = self._span.child("realtime.turn", ovos_realtime__item_id=item_id)
        return self._turn

    def end_turn(self) -> None:
        if self._vad_span is not None:
            self._vad_span.end()
            self._vad_span = None
        if self._turn is not None:
            self._turn.end()
            self._turn = None

    # -- what transports and other families call ---------------------------------------------

    async def append_audio(self, audio: bytes) -> None:
        """Audio in the session's input format, from an append event."""
        await input_audio.append_audio(self, audio)

    async def append_pcm(self, frame: PcmFrame) -> None:
        """Caller audio as PCM at its own rate (a call's media track): never encoded to the wire."""
        await input_audio.append_pcm(self, frame)

    def commit_audio(
        self, audio: bytes, pcm16k: bytes, item_id: str, live: LiveTranscript | None = None
    ) -> dict[str, Any]:
        return input_audio.commit_audio(self, audio, pcm16k, item_id, live)

    def start_response(self, params: ce.ResponseParams, in_conversation: bool = True) -> ResponseRun:
        return response_events.start_response(self, params, in_conversation)

    def persist_items(self) -> None:
        """Store the conversation as it is now, in the background, in order of the changes (once
        the session has closed, its transport stores the conversation as it ends)."""
        if self._tasks_closed:
            return

        async def write() -> None:
            async with self._persist_lock:
                try:
                    await self.hooks.items_changed(self.conversation)
                except Exception:  # the store failing must not end the conversation
                    log.exception("session %s: storing the conversation failed", self.id)

        task = self.tasks.spawn("persist", write())
        self._persisting.add(task)
        task.add_done_callback(self._persisting.discard)

    @property
    def vad_params(self) -> VadParams | None:
        return self.view.input.turn_detection

    @property
    def transcripts_needed(self) -> bool:
        return input_audio.transcripts_needed(self)

    @property
    def transcription_requested(self) -> bool:
        """OpenAI sends transcription events only when `audio.input.transcription` is set."""
        return self.view.input.transcription is not None


def now_s() -> int:
    return int(time.time())
