"""A call, whatever carries it (WebRTC or SIP): the session engine fed by a media stream.

The caller's decoded audio goes to the engine as PCM (`append_pcm`, in 100 ms pieces, as a
client's appends would); the engine's output audio frames go to the playout queue as PCM (the
transport pulls frames from it at its own clock and encodes them once, to its codec): a call's
audio is never encoded to the session's wire format and back. Every other event goes to the
transport's event channel, if it has one, and to any sideband WebSocket attached with `?call_id=`.
Subclasses connect the media and end the transport.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from typing import Any

import numpy as np
import numpy.typing as npt

from ..engine.frames import Frame, OutputAudio, PcmFrame
from ..engine.responder import Responder
from ..engine.session import RealtimeSession, SessionOptions
from ..log import log_context
from ..observability.metrics import call_outcome
from ..observability.tracing import NO_SPAN, Span, current_span
from ..observability.turn_latency import TurnLatency
from ..protocol import errors
from ..protocol.server_events import error_event, event
from ..security.auth import Principal
from ..security.live_credentials import Hold
from ..security.policy_input import Resource, call_resource
from ..services import GatewayServices
from ..store import SessionRecord
from ..tasks import TaskSupervisor
from ..transports.client_frames import CALL_EVENT_TYPES, apply_frame
from ..transports.outbox import Outbox
from ..transports.session_store import StoreHooks, record_fields
from .call_audio import CallAudio
from .playout import Playout

log = logging.getLogger("ovos_realtime.calls")
OUTBOX_EVENTS = 2048
INBOX_ITEMS = 4096
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
        self._inbox: asyncio.Queue[str | bytes | PcmFrame] = asyncio.Queue(INBOX_ITEMS)
        self.tasks = TaskSupervisor(f"call-{call_id}")
        self.audio = CallAudio(self.playout)
        self.ended = asyncio.Event()
        self.end_reason: str | None = None
        self._ending: asyncio.Task[None] | None = None
        self._ender = TaskSupervisor(f"call-{call_id}-end")  # the end outlives the call's own tasks
        self._live = False
        self._holds: list[Hold] = []
        self._call_writes: set[asyncio.Task[None]] = set()
        self.created_at = int(time.time())
        self.span: Span = NO_SPAN  # the call's session span, from open_session until the call ends

    def go_live(self) -> None:
        """List the call and count it as an open session, both undone when it ends (its session
        slot, taken by whoever admitted it, is released then too)."""
        self._live = True
        self.services.calls.add(self)
        self.services.metrics.realtime_sessions.inc()
        self.services.events.call_started(self)
        self.services.metrics.calls_active.labels(transport=self.transport).inc()
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
            self.services.metrics.calls_active.labels(transport=self.transport).dec()

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
            emit=TurnLatency(self._emit, self.services.metrics.observe_turn),
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
        """A task of the call's, with its ids in the log lines; cancelled when the call ends."""
        return self.tasks.spawn(name, self._in_context(coro))

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
        """Decoded caller audio at `rate`: to the engine as PCM, in 100 ms pieces."""
        if self.session is None:
            return
        frame = self.audio.caller(samples, rate)
        if frame is not None:
            with contextlib.suppress(asyncio.QueueFull):  # the engine is far behind: drop audio
                self._inbox.put_nowait(frame)

    async def _work(self) -> None:
        session = self.session
        assert session is not None
        while True:
            item = await self._inbox.get()
            if isinstance(item, PcmFrame | bytes) and not session.closed:
                try:  # bytes: a binary message on the event channel, taken as input audio
                    await (
                        session.append_pcm(item) if isinstance(item, PcmFrame) else session.append_audio(item)
                    )
                except errors.ApiError as exc:
                    session.fail(exc)
            elif isinstance(item, str):
                await apply_frame(session, item, CALL_EVENT_TYPES, self.services.metrics)
            if session.closed:
                self.end("session_closed")
                return

    # -- engine → caller -----------------------------------------------------------------------

    def _emit(self, ev: Frame) -> None:
        if isinstance(ev, OutputAudio):
            self.audio.play(ev)
            return
        if isinstance(ev, dict) and ev["type"] == "output_audio_buffer.cleared":
            cut = self.playout.clear()
            if ev.get("response_id") is None and cut is not None:
                ev = dict(ev, response_id=cut)
        self.publish(ev)
        if isinstance(ev, dict) and ev["type"] == "response.done":
            self._response_done(ev["response"])

    def publish(self, ev: Frame) -> None:
        """An event for the caller's event channel and every sideband (each encodes it)."""
        if self.outbox is not None:
            self.outbox.put(ev)
        for sideband in list(self.sidebands):
            sideband.put(ev)

    def _response_done(self, response: dict[str, Any]) -> None:
        response_id = str(response["id"])
        self.audio.response_done(response_id)
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
            "replica_id": self.services.cluster.replica.id,
        }

    def _write_call(self, status: str) -> None:
        """Queue the row's new state; the store writes in order, and `_end` waits for them."""
        row = self._call_row(status)  # kept while the store is away, like the session's writes
        save = self.services.pending_writes.write(
            f"call:{self.id}", lambda: self.services.store.save_call(row)
        )
        write = self._ender.spawn(f"save-{status}", save)
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
            self._ending = self._ender.spawn("end", self._in_context(self._end()))
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
        await self.tasks.close()
        try:
            await self.close_transport()
        except Exception:  # a half-set-up transport may fail to close; it is gone either way
            log.debug("call %s: closing the transport failed", self.id, exc_info=True)
        reason = self.end_reason or "ended"
        self.services.metrics.calls.labels(
            transport=self.transport, reason=reason, outcome=call_outcome(reason)
        ).inc()
        self.services.events.call_ended(self)
        if self.session is not None and self._store_hooks is not None:
            try:  # the conversation first: retention may delete a closed session, never an active one
                await self._store_hooks.items_changed(self.session.conversation)
            finally:
                await self._store_hooks.save(
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
                row = self._call_row("ended")
                await self.services.pending_writes.write(
                    f"call:{self.id}", lambda: self.services.store.save_call(row)
                )
            except Exception:  # the call is over either way; the row says so at the next start
                log.exception("call %s: could not store its end", self.id)
        if self._live:
            await self.services.cluster.release("call", self.id)
        self._release()
        self.span.set(ovos_realtime__end_reason=self.end_reason)
        self.span.end()
        self.ended.set()
