"""A call, whatever carries it (WebRTC or SIP): the session engine fed by a media stream.

The caller's decoded audio is transcoded to the session's input format and appended like
`input_audio_buffer.append`; the engine's `response.output_audio.delta` events become the
playout queue (the transport pulls frames from it at its own clock) instead of events; every
other event goes to the transport's event channel, if it has one, and to any sideband WebSocket
attached with `?call_id=`. Subclasses connect the media and end the transport.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import logging
import time
from typing import Any

import numpy as np
import numpy.typing as npt

from ..audio import InputTranscoder, OutputTranscoder
from ..engine.responder import Responder
from ..engine.session import RealtimeSession, SessionOptions
from ..log import log_context
from ..observability.tracing import NO_SPAN, Span, current_span
from ..protocol import errors
from ..protocol.server_events import Event, error_event, event
from ..security.auth import Principal
from ..security.live_credentials import Hold
from ..security.policy_input import Resource, call_resource
from ..services import GatewayServices
from ..store import SessionRecord
from ..transports.client_frames import CALL_EVENT_TYPES, apply_frame
from ..transports.outbox import Outbox
from ..transports.session_store import StoreHooks, record_fields
from .playout import Playout

log = logging.getLogger("ovos_realtime.calls")
OUTBOX_EVENTS = 2048
INBOX_ITEMS = 4096
APPEND_MS = 100  # caller audio reaches the engine in 100 ms appends, like a typical client
PLAYOUT_LEAD_MS = 200.0  # the engine runs this far ahead of what the caller hears


class Call:
    transport = "call"

    def __init__(
        self,
        call_id: str,
        services: GatewayServices,
        principal: Principal,
        playout_rate: int,
        playout_frame: int,
    ) -> None:
        self.id = call_id
        self.services = services
        self.principal = principal
        self.project_id = principal.project_id
        self.outbox: Outbox | None = None  # the transport's own event channel, if it has one
        self.sidebands: set[Outbox] = set()
        self.playout = Playout(playout_rate, playout_frame, self._on_playout)
        self.session: RealtimeSession | None = None
        self._store_hooks: StoreHooks | None = None
        self._inbox: asyncio.Queue[str | bytes] = asyncio.Queue(INBOX_ITEMS)
        self._tasks: set[asyncio.Task[Any]] = set()
        self._out_decoders: dict[str, InputTranscoder] = {}
        self._in_encoder: tuple[int, dict[str, Any], OutputTranscoder] | None = None
        self._in_pending = bytearray()
        self.ended = asyncio.Event()
        self.end_reason: str | None = None
        self._ending: asyncio.Task[None] | None = None
        self._live = False
        self._holds: list[Hold] = []
        self._call_writes: set[asyncio.Future[None]] = set()
        self.created_at = int(time.time())
        self.span: Span = NO_SPAN  # the call's session span, from open_session until the call ends

    def go_live(self) -> None:
        """List the call and count it as an open session, both undone when it ends (its session
        slot, taken by whoever admitted it, is released then too)."""
        self._live = True
        self.services.calls.add(self)
        self.services.metrics.realtime_sessions.inc()
        self.services.events.call_started(self)
        self.hold_for(self.principal)
        self.created_at = int(time.time())
        waiting = "ringing" if self.transport == "sip" else "connecting"
        self._write_call("active" if self.session is not None else waiting)

    def policy_resource(self, config: dict[str, Any] | None = None, **attributes: Any) -> Resource:
        """This call as the policy sees it: its project, the key that placed it (and with `config`,
        the model and voice of the session it would run)."""
        key = self.principal.key_id
        return call_resource(self.id, self.project_id, self.transport, key, config=config, **attributes)

    def hold_for(self, principal: Principal) -> None:
        """The call stands on `principal`'s key (who placed or accepted it): revoking it ends the call."""
        self._holds.append(self.services.live.hold(principal, self._key_revoked))

    def _key_revoked(self, credential_id: str) -> None:
        log.info("call %s: key %s was revoked; ending the call", self.id, credential_id)
        self.publish(error_event(errors.revoked_during_session(), None))
        self.end("key_revoked")

    def _release(self) -> None:
        for hold in self._holds:
            hold.release()
        self._holds.clear()
        if self._live:
            self._live = False
            self.services.calls.remove(self)
            self.services.session_slots.release(self.project_id, self.principal.owning_key)
            self.services.metrics.realtime_sessions.dec()

    # -- the session ---------------------------------------------------------------------------

    def open_session(self, record: SessionRecord, responder: Responder) -> RealtimeSession:
        """Create the engine for `record` and start it (`session.created` goes out)."""
        self._store_hooks = StoreHooks(self.services, record, self.principal)
        parent = current_span.get()  # the request that accepted or placed it; a SIP call starts a trace
        attributes = {"ovos_realtime__call_id": self.id, "ovos_realtime__session_id": record.id}
        self.span = (
            parent.child("realtime.call", **attributes)
            if parent.recording
            else self.services.tracing.root_span("realtime.call", **attributes)
        )
        with self.span.activated():
            return self._open_session(record, responder)

    def _open_session(self, record: SessionRecord, responder: Responder) -> RealtimeSession:
        self.session = RealtimeSession(
            session_id=record.id,
            project_id=self.project_id,
            config=record.config,
            expires_at=record.expires_at or 0,
            responder=responder,
            emit=self._emit,
            options=SessionOptions(
                queue_responses=self.services.settings.queue_responses,
                is_call=True,
                audio_lead_ms=PLAYOUT_LEAD_MS,
                audio_memory_bytes=self.services.settings.session_audio_memory_bytes,
                max_input_buffer_ms=self.services.settings.max_input_buffer_seconds * 1000,
                served_models=self.services.settings.models,
            ),
            hooks=self._store_hooks,
            vad=self.services.vad,
            stt=self.services.stt,
        )
        self.session.start()
        self.services.events.session_opened(
            record.id, self.project_id, record.config.get("model"), self.transport
        )
        if self._live:
            self._write_call("active")
        self.spawn(self._work(), "worker")
        self.spawn(self._watch_expiry(), "expiry")
        return self.session

    def spawn(self, coro: Any, name: str) -> asyncio.Task[Any]:
        task = asyncio.get_running_loop().create_task(self._in_context(coro), name=f"call-{name}-{self.id}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    # -- caller → engine -----------------------------------------------------------------------

    def submit(self, frame: str | bytes) -> None:
        """A client event (event channel or sideband), handled in arrival order with the audio."""
        try:
            self._inbox.put_nowait(frame)
        except asyncio.QueueFull:
            if self.session is not None:
                self.session.fail(
                    errors.event_error(
                        "rate_limit_exceeded", "Too many events queued on this call; this one was dropped."
                    )
                )

    def caller_audio(self, samples: npt.NDArray[np.int16], rate: int) -> None:
        """Decoded caller audio at `rate`: transcoded, then appended in 100 ms pieces."""
        if self.session is None:
            return
        fmt = self.session.input_format
        if self._in_encoder is None or self._in_encoder[:2] != (rate, fmt):
            self._in_encoder = (rate, fmt, OutputTranscoder(rate, fmt))
            self._in_pending.clear()
        encoder = self._in_encoder[2]
        self._in_pending += encoder.feed(samples)
        if encoder.format.duration_ms(len(self._in_pending)) >= APPEND_MS:
            chunk = bytes(self._in_pending)
            self._in_pending.clear()
            with contextlib.suppress(asyncio.QueueFull):  # the engine is far behind: drop audio
                self._inbox.put_nowait(chunk)

    async def _work(self) -> None:
        session = self.session
        assert session is not None
        while True:
            item = await self._inbox.get()
            if isinstance(item, bytes) and not session.closed:
                try:
                    await session.append_audio(item)
                except errors.ApiError as exc:
                    session.fail(exc)
            elif isinstance(item, str):
                await apply_frame(session, item, CALL_EVENT_TYPES, self.services.metrics)
            if session.closed:
                self.end("session_closed")
                return

    # -- engine → caller -----------------------------------------------------------------------

    def _emit(self, ev: Event) -> None:
        kind = ev.get("type")
        if kind == "response.output_audio.delta":
            self._play(ev)
            return
        if kind == "output_audio_buffer.cleared":
            cut = self.playout.clear()
            if ev.get("response_id") is None and cut is not None:
                ev = dict(ev, response_id=cut)
        self.publish(ev)
        if kind == "response.done":
            self._response_done(ev["response"])

    def publish(self, ev: Event) -> None:
        if self.outbox is not None:
            self.outbox.put(ev)
        for sideband in list(self.sidebands):
            sideband.put(ev)

    def _play(self, ev: Event) -> None:
        assert self.session is not None
        response_id = str(ev["response_id"])
        decoder = self._out_decoders.get(response_id)
        if decoder is None:
            decoder = self._out_decoders[response_id] = InputTranscoder(
                self.session.output_format, self.playout.rate
            )
        self.playout.push(response_id, decoder.feed(base64.b64decode(ev["delta"])))

    def _response_done(self, response: dict[str, Any]) -> None:
        response_id = str(response["id"])
        decoder = self._out_decoders.pop(response_id, None)
        if decoder is not None:
            self.playout.push(response_id, decoder.flush())
        details = response.get("status_details") or {}
        if response.get("status") == "cancelled" and details.get("reason") == "turn_detected":
            cut = self.playout.clear()
            if cut is not None:
                self.publish(event("output_audio_buffer.cleared", response_id=cut))
        self.playout.finish(response_id)

    def _on_playout(self, what: str, response_id: str) -> None:
        self.publish(event(f"output_audio_buffer.{what}", response_id=response_id))

    # -- sideband ------------------------------------------------------------------------------

    def attach(self, outbox: Outbox) -> None:
        """A sideband socket: it sees every event from now on, starting with the session."""
        if self.session is not None:
            outbox.put(event("session.created", session=self.session.rendered()))
        self.sidebands.add(outbox)

    def detach(self, outbox: Outbox) -> None:
        self.sidebands.discard(outbox)

    # -- the call's row in the store -------------------------------------------------------------

    def _call_row(self, status: str) -> dict[str, Any]:
        return {
            "id": self.id,
            "project_id": self.project_id,
            "session_id": self.session.id if self.session is not None else None,
            "transport": self.transport,
            "status": status,
            "created_at": self.created_at,
            "ended_at": int(time.time()) if status == "ended" else None,
            "end_reason": self.end_reason if status == "ended" else None,
        }

    def _write_call(self, status: str) -> None:
        """Queue the row's new state; the store writes in order, and `_end` waits for them."""
        write = asyncio.ensure_future(self.services.store.save_call(self._call_row(status)))
        self._call_writes.add(write)
        write.add_done_callback(self._call_writes.discard)

    # -- ending --------------------------------------------------------------------------------

    async def _watch_expiry(self) -> None:
        assert self.session is not None
        await asyncio.sleep(max(0.0, self.session.expires_at - time.time()))
        self.publish(
            error_event(errors.event_error("session_expired", "Your session hit its maximum duration."), None)
        )
        self.end("session_expired")

    async def _in_context(self, coro: Any) -> Any:
        """Run a call's task with its ids in the log lines and its span current."""
        session_id = self.session.id if self.session is not None else None
        ids = log_context(call_id=self.id, session_id=session_id, project=self.project_id)
        with ids, self.span.activated():
            return await coro

    def end(self, reason: str) -> asyncio.Task[None]:
        """End the call once (idempotent); the task completes when everything is released."""
        if self._ending is None:
            self.end_reason = reason
            self._ending = asyncio.get_running_loop().create_task(
                self._in_context(self._end()), name=f"call-end-{self.id}"
            )
        return self._ending

    async def drain_events(self) -> None:
        """Before the transport closes: let its event channel send what is queued (subclasses)."""

    async def close_transport(self) -> None:
        """Release the media and signalling (subclasses)."""

    async def _end(self) -> None:
        if self.session is not None:
            await self.session.close()
        if self.outbox is not None:
            self.outbox.close()
        for sideband in list(self.sidebands):
            sideband.close()
        self.sidebands.clear()
        await self.drain_events()
        current = asyncio.current_task()
        others = [t for t in self._tasks if t is not current]
        for task in others:
            task.cancel()
        await asyncio.gather(*others, return_exceptions=True)
        try:
            await self.close_transport()
        except Exception:  # a half-set-up transport may fail to close; it is gone either way
            log.debug("call %s: closing the transport failed", self.id, exc_info=True)
        self.services.metrics.calls.labels(transport=self.transport, reason=self.end_reason or "ended").inc()
        self.services.events.call_ended(self)
        if self.session is not None and self._store_hooks is not None:
            try:  # the conversation first: retention may delete a closed session, never an active one
                await self._store_hooks.items_changed(self.session.conversation)
            finally:
                await self.services.store.save_session(
                    SessionRecord(
                        **{
                            **record_fields(self._store_hooks.record),
                            "config": self.session.config,
                            "status": "closed",
                            "updated_at": int(time.time()),
                        }
                    )
                )
        if self._live:
            await asyncio.gather(*self._call_writes, return_exceptions=True)
            try:
                await self.services.store.save_call(self._call_row("ended"))
            except Exception:  # the call is over either way; the row says so at the next start
                log.exception("call %s: could not store its end", self.id)
        self._release()
        self.span.set(ovos_realtime__end_reason=self.end_reason)
        self.span.end()
        self.ended.set()
