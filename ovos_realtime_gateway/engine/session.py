"""RealtimeSession: the state machine behind one realtime connection, whatever the transport.

`handle(event)` applies one parsed client event; everything the client should see leaves
through `emit` (the transport's outbox). Client mistakes become `error` events and the session
goes on; only `session.close` ends it from the inside.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from ..observability.tracing import Span, current_span
from ..protocol import client_events as ce
from ..protocol import ids
from ..protocol.errors import ApiError, event_error, quote_list
from ..protocol.server_events import Event, error_event, event
from ..protocol.session_config import Config, apply_update, render_session
from ..protocol.session_models import RealtimeSessionRequest
from .audio_out import AudioOut
from .conversation import Conversation
from .input_buffer import InputAudioBuffer
from .item_audio import DEFAULT_BUDGET_BYTES, ItemAudio
from .live_transcript import LiveTranscript
from .responder import Responder, Turn, needs_user_text
from .response import ResponseRun, ResponseSpec
from .transcription import SttBackend, TranscriptionFailed, transcribe
from .turns import SpeechStarted, TurnSignal, VadParams
from .usage import input_audio_tokens, text_tokens
from .voice_input import VadBackend, VadUnavailable, VoiceInput

log = logging.getLogger("ovos_realtime.engine")
MAX_APPEND_BYTES = 15 * 1024 * 1024
TRUNCATE_TOLERANCE_MS = 1000


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
        emit: Callable[[Event], None],
        options: SessionOptions | None = None,
        hooks: SessionHooks | None = None,
        vad: VadBackend | None = None,
        stt: SttBackend | None = None,
    ) -> None:
        self.id = session_id
        self.project_id = project_id
        self.config = config
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
        self._configure_voice()
        self._handlers: dict[str, Callable[[Any], Awaitable[None]]] = {
            "session.update": self._session_update,
            "session.close": self._session_close,
            "input_audio_buffer.append": self._append,
            "input_audio_buffer.commit": self._commit,
            "input_audio_buffer.clear": self._clear,
            "output_audio_buffer.clear": self._output_clear,
            "conversation.item.create": self._item_create,
            "conversation.item.retrieve": self._item_retrieve,
            "conversation.item.truncate": self._item_truncate,
            "conversation.item.delete": self._item_delete,
            "response.create": self._response_create,
            "response.cancel": self._response_cancel,
        }

    # -- plumbing --------------------------------------------------------------------------

    @property
    def kind(self) -> str:
        return str(self.config.get("type", "realtime"))

    @property
    def input_format(self) -> dict[str, Any]:
        return dict(
            ((self.config.get("audio") or {}).get("input") or {}).get("format") or {"type": "audio/pcm"}
        )

    @property
    def output_format(self) -> dict[str, Any]:
        return dict(
            ((self.config.get("audio") or {}).get("output") or {}).get("format") or {"type": "audio/pcm"}
        )

    def rendered(self) -> Config:
        return render_session(self.config, self.id, self.expires_at)

    def start(self) -> None:
        self.emit(event("session.created", session=self.rendered()))

    async def handle(self, parsed: ce.ClientEvent) -> ApiError | None:
        """Apply one client event; a client mistake becomes an `error` event (and is returned)."""
        try:
            await self._handlers[parsed.type](parsed)
        except ApiError as exc:
            self.emit(error_event(exc, parsed.event_id))
            return exc
        return None

    def fail(self, error: ApiError, client_event_id: str | None = None) -> None:
        self.emit(error_event(error, client_event_id))

    async def close(self) -> None:
        """End every running response (cancelled) before the transport goes away."""
        self.closed = True
        self.queued.clear()
        self._cancel_idle_timer()
        self._drop_live()
        for run in [self.active, *self.out_of_band]:
            if run is not None:
                await run.cancel("client_cancelled")
        self._end_turn()
        await asyncio.gather(*self._persisting, return_exceptions=True)

    def _begin_turn(self, item_id: str) -> Span:
        """The span of a new turn (a previous one that was never answered ends)."""
        self._end_turn()
        self._turn = self._span.child("realtime.turn", ovos_realtime__item_id=item_id)
        return self._turn

    def _end_turn(self) -> None:
        if self._vad_span is not None:
            self._vad_span.end()
            self._vad_span = None
        if self._turn is not None:
            self._turn.end()
            self._turn = None

    # -- session ----------------------------------------------------------------------------

    async def _session_update(self, ev: ce.SessionUpdate) -> None:
        request = ev.session
        if request.type != self.kind:
            raise event_error(
                "invalid_value",
                f"Passing a {request.type} session update event to a {self.kind} session is not allowed.",
                param="session.type",
            )
        if isinstance(request, RealtimeSessionRequest):
            self._check_realtime_update(request)
        self.config = apply_update(self.config, request)
        self.input.set_format(self.input_format)
        self._configure_voice()
        await self.hooks.config_changed(self.config)
        self.emit(event("session.updated", session=self.rendered()))

    def _check_realtime_update(self, request: RealtimeSessionRequest) -> None:
        current, served = self.config.get("model"), self.options.served_models
        if request.model is not None and request.model != current:
            # every model this gateway serves is the same OVOS assistant: a client may name any of
            # them (the agents SDKs send their own default model with every update)
            if current not in served or request.model not in served:
                raise event_error(
                    "invalid_value",
                    f"Cannot update a session's model to '{request.model}' (it is '{current}'"
                    + (f"; this gateway serves {quote_list(served)}" if served else "")
                    + ").",
                    param="session.model",
                )
        output = request.audio.output if request.audio is not None else None
        if output is not None and "voice" in output.model_fields_set and self.audio_sent_once:
            current = ((self.config.get("audio") or {}).get("output") or {}).get("voice")
            wanted = output.voice if isinstance(output.voice, str) else output.voice.model_dump()
            if wanted != current:
                raise event_error(
                    "cannot_update_voice",
                    "Cannot update a conversation's voice if assistant audio is present.",
                    param="session.audio.output.voice",
                )
        if self.active is not None and request.audio is not None and request.audio.output is not None:
            if "speed" in request.audio.output.model_fields_set:
                raise event_error(
                    "invalid_value",
                    "The output speed can only change between responses.",
                    param="session.audio.output.speed",
                )

    async def _session_close(self, ev: ce.SessionClose) -> None:
        await self.close()

    # -- input audio ------------------------------------------------------------------------

    async def _append(self, ev: ce.InputAudioBufferAppend) -> None:
        try:
            audio = base64.b64decode(ev.audio, validate=True)
        except (binascii.Error, ValueError):
            raise event_error(
                "invalid_value", "Invalid 'audio': expected base64-encoded audio bytes.", param="audio"
            ) from None
        if len(audio) > MAX_APPEND_BYTES:
            raise event_error(
                "audio_too_large",
                f"Invalid 'audio': {len(audio)} bytes exceeds the maximum of "
                f"{MAX_APPEND_BYTES} bytes per append.",
                param="audio",
            )
        await self.append_audio(audio)

    async def append_audio(self, audio: bytes) -> None:
        """Audio in the session's input format, from an append event or a call's media track."""
        if self.hooks.input_audio(audio):
            return
        limit_ms = self.options.max_input_buffer_ms
        if self.input.duration_ms + self.input.format.duration_ms(len(audio)) > limit_ms:
            raise event_error(
                "input_audio_buffer_full",
                f"The input audio buffer holds {self.input.duration_ms / 1000:.0f} s; it takes at most "
                f"{limit_ms / 1000:.0f} s. Commit or clear it; this audio was not added.",
            )
        samples = self.input.append(audio)  # the session's one 16 kHz copy, for VAD and STT
        if self._live is not None:
            self._live.feed(samples.astype("<i2", copy=False).tobytes())
        if self.voice is None:
            return
        try:
            signals = await self.voice.feed(samples)
        except VadUnavailable as exc:
            self.voice = None
            raise event_error(
                "vad_unavailable",
                f"Server VAD is unavailable ({exc}); set turn_detection to null and commit manually.",
                param="session.audio.input.turn_detection",
            ) from None
        for signal in signals:
            await self._on_turn_signal(signal)
        if self.voice is not None and not self.voice.turns.in_speech:
            self.input.drop_before(self.voice.keep_from_ms)

    # -- turn detection ---------------------------------------------------------------------

    @property
    def vad_params(self) -> VadParams | None:
        audio_in = (self.config.get("audio") or {}).get("input") or {}
        return VadParams.from_config(audio_in.get("turn_detection"))

    def _configure_voice(self) -> None:
        """(Re)build server VAD after the session's input format or turn detection changed."""
        params = self.vad_params
        if params is None or self._vad is None:
            self.voice = None
            self._drop_live()
            return
        if self.voice is not None and self.voice.params == params and self.voice.format == self.input.format:
            return
        self._drop_live()
        self.voice = VoiceInput(self.input_format, params, self._vad, self.input.total_ms)

    async def _on_turn_signal(self, signal: TurnSignal) -> None:
        assert self.voice is not None
        params = self.voice.params
        if isinstance(signal, SpeechStarted):
            self._cancel_idle_timer()
            self.input.drop_before(signal.audio_start_ms)  # the turn's item starts at its prefix
            self._turn_item_id = ids.item_id()
            log.debug("session %s: speech started at %d ms", self.id, signal.audio_start_ms)
            turn = self._begin_turn(self._turn_item_id)
            self._vad_span = turn.child("vad", ovos_realtime__audio_start_ms=signal.audio_start_ms)
            self._start_live()
            self.emit(
                event(
                    "input_audio_buffer.speech_started",
                    audio_start_ms=signal.audio_start_ms,
                    item_id=self._turn_item_id,
                )
            )
            if self.kind == "realtime" and params.interrupt_response and self.active is not None:
                # barge-in: the response ends where its audio stopped, `turn_detected`
                await self.active.cancel("turn_detected")
            return
        item_id = self._turn_item_id or ids.item_id()
        self._turn_item_id = None
        log.debug("session %s: speech stopped at %d ms", self.id, signal.audio_end_ms)
        if self._vad_span is not None:  # the VAD's end of speech: the turn goes on to STT
            self._vad_span.set(ovos_realtime__audio_end_ms=signal.audio_end_ms)
            self._vad_span.end()
            self._vad_span = None
        self.emit(
            event("input_audio_buffer.speech_stopped", audio_end_ms=signal.audio_end_ms, item_id=item_id)
        )
        live, self._live = self._live, None
        self.commit_audio(*self.input.take_until(signal.audio_end_ms), item_id, live)
        if self.kind == "realtime" and params.create_response:
            self._auto_response()

    def _auto_response(self) -> None:
        if self.closed:
            return
        if self.active is not None:
            self.queued.append(ce.ResponseCreate(type="response.create"))
            return
        self.start_response(ce.ResponseParams())

    def _cancel_idle_timer(self) -> None:
        if self._idle_timer is not None:
            self._idle_timer.cancel()
            self._idle_timer = None

    def _arm_idle_timer(self, run: ResponseRun) -> None:
        """`idle_timeout_ms`: counted from when the response's audio has finished playing."""
        params = self.vad_params
        if params is None or params.idle_timeout_ms is None or self.closed or self.voice is None:
            return
        if self.voice.turns.in_speech:
            return
        playout = run.audio_out.remaining_playout_s() if run.audio_out is not None else 0.0
        self._cancel_idle_timer()
        self._idle_timer = asyncio.get_running_loop().call_later(
            playout + params.idle_timeout_ms / 1000.0, self._idle_timeout
        )

    def _idle_timeout(self) -> None:
        self._idle_timer = None
        if self.closed or self.active is not None or (self.voice is not None and self.voice.turns.in_speech):
            return
        item_id = ids.item_id()
        self.emit(
            event(
                "input_audio_buffer.timeout_triggered",
                audio_start_ms=round(self.input.start_ms),
                audio_end_ms=round(self.input.total_ms),
                item_id=item_id,
            )
        )
        self.commit_audio(*self.input.take(), item_id)
        if self.kind == "realtime":
            self._auto_response()

    async def _commit(self, ev: ce.InputAudioBufferCommit) -> None:
        duration = self.input.duration_ms
        if duration < 100:
            raise event_error(
                "input_audio_buffer_commit_empty",
                "Error committing input audio buffer: buffer too small. Expected at least 100ms of audio, "
                f"but buffer only has {duration:.2f}ms of audio.",
            )
        item_id = self._turn_item_id or ids.item_id()
        live, self._live = self._live, None
        self.commit_audio(*self.input.take(), item_id, live)
        if self._turn_item_id is not None:  # a manual commit during speech splits the turn
            self._turn_item_id = ids.item_id()
            self._start_live()

    def _start_live(self) -> None:
        """Stream the turn's audio so far to a streaming STT plugin, if the session has one."""
        self._drop_live()
        if self._stt is not None and self._stt.transcriber.streams and self.transcripts_needed:
            self._live = LiveTranscript(self._stt, _language(self.config), self.input.peek_pcm())

    def _drop_live(self) -> None:
        if self._live is not None:
            self._live.abort()
            self._live = None

    def commit_audio(
        self, audio: bytes, pcm16k: bytes, item_id: str, live: LiveTranscript | None = None
    ) -> dict[str, Any]:
        """Turn committed input audio (and its 16 kHz copy) into a user item (also used by turn
        detection); `live` is the turn's transcription already under way, if any."""
        item = {
            "id": item_id,
            "object": "realtime.item",
            "type": "message",
            "status": "completed",
            "role": "user",
            "content": [{"type": "input_audio", "transcript": None}],
        }
        previous = self.conversation.insert(item, None)
        self.conversation.audio.put((item_id, 0), audio)
        self.emit(event("input_audio_buffer.committed", previous_item_id=previous, item_id=item_id))
        self._item_added(item, previous)
        self.persist_items()
        turn = self._turn or self._begin_turn(item_id)
        if self.kind != "realtime":  # nothing answers: the turn ends with its transcript
            self._turn = None
        if self._stt is not None and self.transcripts_needed:
            task = asyncio.get_running_loop().create_task(
                self._transcribe(item, audio, pcm16k, self._stt, live, turn)
            )
            self._transcriptions[item_id] = task
            task.add_done_callback(lambda _: self._transcriptions.pop(item_id, None))
        else:
            if live is not None:
                live.abort()
            if self._turn is not turn:
                turn.end()
        return item

    @property
    def transcripts_needed(self) -> bool:
        """Committed audio is transcribed when the session asked for it or the responder answers
        from text (OVOS does); with nothing to answer, unrequested turns cost no STT."""
        return self.transcription_requested or needs_user_text(self.responder)

    @property
    def transcription_requested(self) -> bool:
        """OpenAI sends transcription events only when `audio.input.transcription` is set."""
        return isinstance(((self.config.get("audio") or {}).get("input") or {}).get("transcription"), dict)

    async def _transcribe(
        self,
        item: dict[str, Any],
        audio: bytes,
        pcm16k: bytes,
        stt: SttBackend,
        live: LiveTranscript | None,
        turn: Span,
    ) -> None:
        item_id = item["id"]
        span = turn.child("stt", ovos_realtime__item_id=item_id, ovos_realtime__streamed=live is not None)
        try:
            if live is not None:
                text = await live.finish(pcm16k)
            else:
                text = await transcribe(stt, pcm16k, _language(self.config))
        except TranscriptionFailed as exc:
            span.fail(exc.code)
            log.warning("session %s: transcription of %s failed: %s", self.id, item_id, exc)
            if self.transcription_requested and not self.closed:
                error = {"type": "transcription_error", "code": exc.code, "message": str(exc), "param": None}
                self.emit(
                    event(
                        "conversation.item.input_audio_transcription.failed",
                        item_id=item_id,
                        content_index=0,
                        error=error,
                    )
                )
            return
        finally:
            span.end()
            if self._turn is not turn and self.kind != "realtime":
                turn.end()
        log.debug("session %s: %s transcribed (%d characters)", self.id, item_id, len(text))
        item["content"][0]["transcript"] = text
        if self.transcription_requested and not self.closed:
            self.emit(
                event(
                    "conversation.item.input_audio_transcription.delta",
                    item_id=item_id,
                    content_index=0,
                    delta=text,
                )
            )
            seconds = round(self.input.format.duration_ms(len(audio)) / 1000, 3)
            self.emit(
                event(
                    "conversation.item.input_audio_transcription.completed",
                    item_id=item_id,
                    content_index=0,
                    transcript=text,
                    usage={"type": "duration", "seconds": seconds},
                )
            )
        self.persist_items()

    async def _await_transcripts(self, turn: Turn) -> None:
        """Before answering: the transcripts of the turn's audio items (OVOS answers text)."""
        pending = [self._transcriptions[i["id"]] for i in turn.items if i.get("id") in self._transcriptions]
        if pending:
            timeout = (self._stt.timeout_s if self._stt is not None else 30.0) + 5
            await asyncio.wait([asyncio.shield(t) for t in pending], timeout=timeout)
        for public in turn.items:
            try:
                stored = self.conversation.get(public["id"])
            except ApiError:
                continue
            for part, source in zip(public.get("content") or [], stored.get("content") or [], strict=False):
                if "transcript" in source:
                    part["transcript"] = source["transcript"]

    def persist_items(self) -> None:
        """Store the conversation as it is now, in the background, in order of the changes."""

        async def write() -> None:
            async with self._persist_lock:
                try:
                    await self.hooks.items_changed(self.conversation)
                except Exception:  # the store failing must not end the conversation
                    log.exception("session %s: storing the conversation failed", self.id)

        task = asyncio.get_running_loop().create_task(write())
        self._persisting.add(task)
        task.add_done_callback(self._persisting.discard)

    async def _clear(self, ev: ce.InputAudioBufferClear) -> None:
        self.input.clear()
        if self._live is not None:  # the turn goes on, from here
            self._start_live()
        self.emit(event("input_audio_buffer.cleared"))

    async def _output_clear(self, ev: ce.OutputAudioBufferClear) -> None:
        if self.active is not None:
            await self.active.cancel("client_cancelled")
        self.emit(event("output_audio_buffer.cleared", response_id=self.active.id if self.active else None))

    # -- conversation -----------------------------------------------------------------------

    def _item_added(self, item: dict[str, Any], previous: str | None) -> None:
        public = _public(item)
        self.emit(event("conversation.item.added", previous_item_id=previous, item=public))
        self.emit(event("conversation.item.done", previous_item_id=previous, item=public))

    async def _item_create(self, ev: ce.ConversationItemCreate) -> None:
        item, audio = _server_item(ev.item)
        previous = self.conversation.insert(item, ev.previous_item_id)
        for index, data in audio.items():
            self.conversation.audio.put((item["id"], index), data)
        await self.hooks.items_changed(self.conversation)
        self._item_added(item, previous)

    async def _item_retrieve(self, ev: ce.ConversationItemRetrieve) -> None:
        item = self.conversation.get(ev.item_id)
        full = _public(item)
        for index, part in enumerate(full.get("content", [])):
            data = self.conversation.audio.get((item["id"], index))
            if data is not None and part.get("type") in ("input_audio", "output_audio"):
                part["audio"] = base64.b64encode(bytes(data)).decode("ascii")
        self.emit(event("conversation.item.retrieved", item=full))

    async def _item_truncate(self, ev: ce.ConversationItemTruncate) -> None:
        item = self.conversation.get(ev.item_id)
        content = item.get("content") or []
        if (
            item.get("role") != "assistant"
            or ev.content_index >= len(content)
            or content[ev.content_index].get("type") != "output_audio"
        ):
            raise event_error(
                "unsupported_content_type", "Only model output audio messages can be truncated."
            )
        part = (item["id"], ev.content_index)
        fmt = AudioOut(self.output_format).format
        length_ms = fmt.duration_ms(self.conversation.audio.length(part))
        end_ms = ev.audio_end_ms
        if end_ms > length_ms + TRUNCATE_TOLERANCE_MS:
            raise event_error(
                "invalid_value",
                f"Audio content of {length_ms:.0f}ms is already shorter than {end_ms}ms",
                param="audio_end_ms",
            )
        self.conversation.audio.truncate(part, fmt.bytes_for_ms(min(end_ms, length_ms)))
        content[ev.content_index]["transcript"] = ""
        await self.hooks.items_changed(self.conversation)
        self.emit(
            event(
                "conversation.item.truncated",
                item_id=item["id"],
                content_index=ev.content_index,
                audio_end_ms=end_ms,
            )
        )

    async def _item_delete(self, ev: ce.ConversationItemDelete) -> None:
        self.conversation.delete(ev.item_id)
        await self.hooks.items_changed(self.conversation)
        self.emit(event("conversation.item.deleted", item_id=ev.item_id))

    # -- responses ----------------------------------------------------------------------------

    async def _response_create(self, ev: ce.ResponseCreate) -> None:
        if self.kind != "realtime":
            raise event_error(
                "invalid_value", "Transcription sessions do not create responses.", param="type"
            )
        params = ev.response or ce.ResponseParams()
        in_conversation = params.conversation in (None, "auto") and params.input is None
        if in_conversation and self.active is not None:
            if self.options.queue_responses:
                self.queued.append(ev)
                return
            raise event_error(
                "conversation_already_has_active_response",
                f"Conversation already has an active response in progress: {self.active.id}. "
                "Wait until the response is finished before creating a new one.",
            )
        self.start_response(params, in_conversation)

    def start_response(self, params: ce.ResponseParams, in_conversation: bool = True) -> ResponseRun:
        """Start a response (from `response.create` or from turn detection)."""
        cfg = self.config
        audio_cfg = (cfg.get("audio") or {}).get("output") or {}
        fmt = dict(audio_cfg.get("format") or {"type": "audio/pcm", "rate": 24000})
        voice = audio_cfg.get("voice", "alloy")
        if params.audio is not None and params.audio.output is not None:
            if params.audio.output.format is not None:
                fmt = params.audio.output.format.model_dump()
            if params.audio.output.voice is not None:
                voice = params.audio.output.voice
        voice_name = voice if isinstance(voice, str) else getattr(voice, "id", str(voice))
        modalities = params.output_modalities or cfg.get("output_modalities") or ["audio"]
        items = (
            self.conversation.items
            if params.input is None
            else [_input_item(i, self.conversation) for i in params.input]
        )
        turn = Turn(
            session_id=self.id,
            project_id=self.project_id,
            items=[_public(i) for i in items],
            instructions=params.instructions
            if params.instructions is not None
            else str(cfg.get("instructions", "")),
            output_modalities=list(modalities),
            voice=voice_name,
            language=_language(cfg),
            metadata=dict(params.metadata or {}),
            prompt_id=_prompt_id(
                params.prompt.model_dump() if params.prompt is not None else cfg.get("prompt")
            ),
        )
        spec = ResponseSpec(
            output_modalities=list(modalities),
            audio_format=fmt,
            voice=voice_name,
            max_output_tokens=params.max_output_tokens or cfg.get("max_output_tokens", "inf"),
            metadata=params.metadata,
            in_conversation=in_conversation,
            input_tokens=self._input_tokens(items),
        )
        run = ResponseRun(
            spec=spec,
            turn=turn,
            responder=self.responder,
            emit=self.emit,
            conversation=self.conversation,
            conversation_id=self.conversation.id if in_conversation else None,
            audio_out=AudioOut(fmt, self.options.audio_chunk_ms, self.options.audio_lead_ms)
            if modalities == ["audio"]
            else None,
            prepare=lambda: self._await_transcripts(turn),
            span=self._turn_span(in_conversation),
        )
        if in_conversation:
            self._cancel_idle_timer()
            self.active = run
        else:
            self.out_of_band.add(run)
        task = run.start()
        task.add_done_callback(lambda _: self._response_finished(run))
        return run

    def _turn_span(self, in_conversation: bool) -> Span:
        """A response answers the turn spoken or committed before it, else it is a turn of its own."""
        if in_conversation and self._turn is not None:
            turn, self._turn = self._turn, None
            return turn
        return self._span.child("realtime.turn")

    def _input_tokens(self, items: list[dict[str, Any]]) -> tuple[int, int]:
        text, audio_ms = 0, 0.0
        fmt = self.input.format
        for item in items:
            for index, part in enumerate(item.get("content") or []):
                text += text_tokens(str(part.get("text") or part.get("transcript") or ""))
                if part.get("type") == "input_audio":
                    audio_ms += fmt.duration_ms(self.conversation.audio.length((item["id"], index)))
        return text, input_audio_tokens(audio_ms)

    def _response_finished(self, run: ResponseRun) -> None:
        if self.active is run:
            self.active = None
            if run.audio_out is not None and run.audio_out.sent_bytes:
                self.audio_sent_once = True
        self.out_of_band.discard(run)
        status, reason = run.outcome
        log.debug("session %s: response %s %s%s", self.id, run.id, status, f" ({reason})" if reason else "")
        self.hooks.response_finished(run)
        if run.spec.in_conversation:
            self.persist_items()
            self._arm_idle_timer(run)
        limits = self.hooks.rate_limits()
        if limits:
            self.emit(event("rate_limits.updated", rate_limits=limits))
        if self.queued and self.active is None and not self.closed:
            queued = self.queued.pop(0)
            self.start_response(queued.response or ce.ResponseParams())

    async def _response_cancel(self, ev: ce.ResponseCancel) -> None:
        target: ResponseRun | None = None
        if ev.response_id is None:
            target = self.active
        else:
            target = next(
                (r for r in [self.active, *self.out_of_band] if r is not None and r.id == ev.response_id),
                None,
            )
        if target is None:
            raise event_error("response_cancel_not_active", "Cancellation failed: no active response found")
        await target.cancel("client_cancelled")


def _public(item: dict[str, Any]) -> dict[str, Any]:
    """A copy of an item as emitted: content parts copied, raw audio never inline."""
    out = dict(item)
    if "content" in out:
        out["content"] = [{k: v for k, v in part.items() if k != "audio"} for part in out["content"]]
    return out


def _server_item(item: Any) -> tuple[dict[str, Any], dict[int, bytes]]:
    """A client-created item in the server shape (id minted if absent), and its decoded audio."""
    data = item.model_dump(exclude_none=True)
    data.setdefault("id", ids.item_id())
    data["object"] = "realtime.item"
    data.setdefault("status", "completed")
    audio: dict[int, bytes] = {}
    if data.get("type") == "message":
        for index, part in enumerate(data.get("content", [])):
            if data.get("role") == "assistant" and part.get("type") == "output_audio":
                raise event_error(
                    "invalid_value",
                    "Clients cannot create assistant audio content; use output_text.",
                    param=f"item.content[{index}].type",
                )
            if "audio" in part:
                try:
                    audio[index] = base64.b64decode(part.pop("audio"), validate=True)
                except (binascii.Error, ValueError):
                    raise event_error(
                        "invalid_value",
                        "Invalid 'audio': expected base64.",
                        param=f"item.content[{index}].audio",
                    ) from None
            if part.get("type") == "input_audio":
                part.setdefault("transcript", None)
    return data, audio


def _input_item(entry: Any, conversation: Conversation) -> dict[str, Any]:
    if isinstance(entry, ce.ItemReference):
        return conversation.get(entry.id)
    return _server_item(entry)[0]


def _prompt_id(prompt: Any) -> str | None:
    return str(prompt["id"]) if isinstance(prompt, dict) and prompt.get("id") else None


def _language(config: Config) -> str | None:
    transcription = ((config.get("audio") or {}).get("input") or {}).get("transcription")
    if isinstance(transcription, dict):
        lang = transcription.get("language")
        return str(lang) if lang else None
    return None


def now_s() -> int:
    return int(time.time())
