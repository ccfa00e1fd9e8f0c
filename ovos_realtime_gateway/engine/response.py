"""One response: a responder's stream turned into OpenAI's ordered response events.

Order (contract §12): response.created → output_item.added → conversation.item.added →
content_part.added → deltas → *.done for the part → conversation.item.done → output_item.done →
response.done. A cancel or a failure still closes every open part and item (status
`incomplete`) before `response.done`. The stored assistant audio is exactly the sum of the
deltas sent, so a client's byte-derived `audio_end_ms` always truncates cleanly.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from ..observability.tracing import NO_SPAN, Span
from ..protocol import ids
from ..protocol.server_events import Event, event
from ..tasks import TaskSupervisor
from .audio_out import AudioOut
from .conversation import Conversation
from .frames import Emit, OutputAudio, PcmFrame, TextDelta
from .responder import AudioDelta, Responder, ResponderError, Turn
from .responder import TextDelta as TextChunk
from .usage import output_audio_tokens, response_usage, text_tokens

log = logging.getLogger("ovos_realtime.engine")
Status = Literal["completed", "cancelled", "failed", "incomplete"]


@dataclass
class ResponseSpec:
    """Everything a response needs, resolved from the session config and the client's overrides."""

    output_modalities: list[str]
    audio_format: dict[str, Any]
    voice: str
    max_output_tokens: int | str
    metadata: dict[str, str] | None
    in_conversation: bool
    input_tokens: tuple[int, int] = (0, 0)  # (text, audio) tokens of the input


@dataclass(eq=False)
class ResponseRun:
    """Runs one response on its own task; `cancel(reason)` ends it early, cleanly."""

    spec: ResponseSpec
    turn: Turn
    responder: Responder
    emit: Emit
    conversation: Conversation
    conversation_id: str | None
    audio_out: AudioOut | None = None
    prepare: Callable[[], Awaitable[None]] | None = None  # e.g. wait for the turn's transcripts
    span: Span = NO_SPAN  # the turn's span: the responder's spans are its children; ends with the response
    id: str = field(default_factory=ids.response_id)
    status: Status | None = None
    started: float = field(default_factory=time.monotonic)  # for the event bridge's latency
    _cancel_reason: str | None = None
    _error: dict[str, Any] | None = None
    _task: asyncio.Task[None] | None = None
    _running: bool = False  # its task has begun (a task cancelled before that never runs its body)
    _item: dict[str, Any] | None = None
    _text: list[str] = field(default_factory=list)
    _part_open: bool = False

    @property
    def text(self) -> str:
        """The answer's text (or transcript) so far."""
        return "".join(self._text)

    @property
    def is_audio(self) -> bool:
        return self.spec.output_modalities == ["audio"]

    def start(self, tasks: TaskSupervisor) -> asyncio.Task[None]:
        """Run it as a task of `tasks` (the session's)."""
        self._task = tasks.spawn(f"response-{self.id}", self._run())
        return self._task

    async def cancel(self, reason: str) -> None:
        """Stop producing; the terminal events are emitted before this returns."""
        if self._task is None or self._task.done():
            return
        self._cancel_reason = reason
        if self._running:
            self._task.cancel()
        # else: the task has not begun; it starts, announces the response and ends it as cancelled
        await asyncio.gather(self._task, return_exceptions=True)

    async def wait(self) -> None:
        if self._task is not None:
            await asyncio.gather(self._task, return_exceptions=True)

    def _response_object(self, status: str, details: dict[str, Any] | None = None) -> dict[str, Any]:
        output = [self._public_item()] if self._item is not None else []
        body: dict[str, Any] = {
            "object": "realtime.response",
            "id": self.id,
            "status": status,
            "status_details": details,
            "output": output,
            "conversation_id": self.conversation_id,
            "output_modalities": self.spec.output_modalities,
            "max_output_tokens": self.spec.max_output_tokens,
            "audio": {"output": {"format": self.spec.audio_format, "voice": self.spec.voice}},
            "usage": None,
            "metadata": self.spec.metadata,
        }
        return body

    def _public_item(self) -> dict[str, Any]:
        assert self._item is not None
        return {k: v for k, v in self._item.items()}

    async def _run(self) -> None:
        self._running = True
        with self.span.activated():
            await self._produce()

    async def _produce(self) -> None:
        self.emit(event("response.created", response=self._response_object("in_progress")))
        try:
            if self._cancel_reason is not None:  # cancelled before its task began
                raise asyncio.CancelledError
            if self.prepare is not None:
                await self.prepare()
            async for chunk in self.responder.respond(self.turn):
                if isinstance(chunk, TextChunk):
                    if chunk.text:
                        await self._on_text(chunk.text)
                elif isinstance(chunk, AudioDelta) and self.is_audio:
                    await self._on_audio(chunk)
            if self.audio_out is not None and self._item is not None:
                for frame in self.audio_out.flush():
                    self._send_audio(frame)
            self.status = "completed"
        except asyncio.CancelledError:
            self.status = "cancelled"
        except ResponderError as exc:
            self.status = "failed"
            self._error = {"type": "server_error", "code": exc.code, "message": str(exc)}
        except Exception as exc:  # a responder bug must not kill the session
            log.exception("response %s failed", self.id)
            self.status = "failed"
            self._error = {
                "type": "server_error",
                "code": "server_error",
                "message": f"The response failed: {exc}",
            }
        finally:
            self._finish()

    def _open_item(self) -> None:
        if self._item is not None:
            return
        self._item = {
            "id": ids.item_id(),
            "object": "realtime.item",
            "type": "message",
            "status": "in_progress",
            "role": "assistant",
            "content": [],
        }
        previous = self.conversation.last_id() if self.spec.in_conversation else None
        self.emit(
            event(
                "response.output_item.added",
                response_id=self.id,
                output_index=0,
                item=dict(self._item, content=[]),
            )
        )
        if self.spec.in_conversation:
            self.conversation.insert(self._item)
            self.emit(
                event("conversation.item.added", previous_item_id=previous, item=dict(self._item, content=[]))
            )
        part = {"type": "audio", "transcript": ""} if self.is_audio else {"type": "text", "text": ""}
        self._item["content"] = [
            {"type": "output_audio", "transcript": ""}
            if self.is_audio
            else {"type": "output_text", "text": ""}
        ]
        self._part_open = True
        self.emit(self._part_event("response.content_part.added", part=part))

    def _part_event(self, type_: str, **fields: Any) -> Event:
        assert self._item is not None
        return event(
            type_, response_id=self.id, item_id=self._item["id"], output_index=0, content_index=0, **fields
        )

    async def _on_text(self, text: str) -> None:
        self._open_item()
        self._text.append(text)
        assert self._item is not None
        self.emit(TextDelta(self.id, self._item["id"], text, transcript=self.is_audio))

    async def _on_audio(self, chunk: AudioDelta) -> None:
        self._open_item()
        assert self.audio_out is not None
        for frame in self.audio_out.feed(chunk.pcm, chunk.sample_rate):
            self._send_audio(frame)
            await self.audio_out.pace()

    def _send_audio(self, frame: PcmFrame) -> None:
        """A piece of audio out: kept in the item in the session's format, emitted as a frame (the
        transport's edge base64-encodes those bytes; a call plays the PCM)."""
        assert self._item is not None and self.audio_out is not None
        data = self.audio_out.encode(frame)
        self.conversation.audio.extend((self._item["id"], 0), data)
        self.audio_out.sent(data)
        self.emit(OutputAudio(ids.event_id(), self.id, self._item["id"], frame, data))

    @property
    def outcome(self) -> tuple[str, str]:
        """How it ended, for metrics: (status, reason); a failure's reason is its error code."""
        status = self.status or "failed"
        if status == "cancelled":
            return status, self._cancel_reason or "client_cancelled"
        if status == "failed":
            return status, str((self._error or {}).get("code") or "unknown")
        return status, ""

    def _finish(self) -> None:
        status = self.status or "failed"
        text = "".join(self._text)
        if self._item is not None:
            item_status = "completed" if status == "completed" else "incomplete"
            if self.is_audio:
                self.emit(self._part_event("response.output_audio.done"))
                self.emit(self._part_event("response.output_audio_transcript.done", transcript=text))
                part: dict[str, Any] = {"type": "audio", "transcript": text}
                self._item["content"] = [{"type": "output_audio", "transcript": text}]
            else:
                self.emit(self._part_event("response.output_text.done", text=text))
                part = {"type": "text", "text": text}
                self._item["content"] = [{"type": "output_text", "text": text}]
            self.emit(self._part_event("response.content_part.done", part=part))
            self._item["status"] = item_status
            if self.spec.in_conversation:
                self.emit(
                    event(
                        "conversation.item.done",
                        previous_item_id=self.conversation.previous_id(self._item["id"]),
                        item=self._public_item(),
                    )
                )
            self.emit(
                event(
                    "response.output_item.done", response_id=self.id, output_index=0, item=self._public_item()
                )
            )
        details: dict[str, Any] | None = None
        if status == "cancelled":
            details = {"type": "cancelled", "reason": self._cancel_reason or "client_cancelled"}
        elif status == "failed":
            details = {"type": "failed", "error": self._error}
        body = self._response_object(status, details)
        sent_ms = self.audio_out.sent_ms if self.audio_out is not None else 0.0
        body["usage"] = response_usage(
            self.spec.input_tokens[0],
            self.spec.input_tokens[1],
            text_tokens(text),
            output_audio_tokens(sent_ms),
        )
        self.status = status
        self.emit(event("response.done", response=body))
        outcome, reason = self.outcome
        self.span.set(ovos_realtime__response_id=self.id, ovos_realtime__status=outcome)
        if outcome == "failed":
            self.span.fail(reason)
        self.span.end()
