"""`GET /v1/realtime`: the WebSocket OpenAI's clients talk to.

Like OpenAI, the upgrade always completes; problems (credentials, model, limits) are reported
in-band (`ws_admission.py`). Then: `session.created`, a reader loop (frames → engine) and a writer
task (outbox → socket, `ws_sending.py`), until either side ends, the session expires, or the
client stops reading. `?call_id=` attaches a call's sideband instead (`calls/sideband.py`).
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import replace

from aiohttp import WSCloseCode, WSMsgType, web

from ..calls.sideband import sideband
from ..engine.responder import UnavailableResponder
from ..engine.session import RealtimeSession, SessionHooks, SessionOptions
from ..log import log_context
from ..observability.tracing import current_span
from ..observability.turn_latency import TurnLatency
from ..ovos.microphone import MICROPHONE_MODEL, MicrophoneFeed, microphone_in_use
from ..protocol import dialect, errors
from ..protocol.server_events import error_event
from ..security.auth import Principal
from ..services import SERVICES, GatewayServices
from ..store import SessionRecord, StoreUnavailable
from ..tasks import TaskSupervisor
from .client_frames import BETA_EVENT_TYPES, WS_EVENT_TYPES, apply_frame
from .outbox import Outbox
from .session_store import StoreHooks, record_fields
from .ws_admission import CLOSE_AUTH, Handshake, Refused, Translate, admit, read_handshake, refuse
from .ws_sending import end_writer, write

log = logging.getLogger("ovos_realtime.transport")
MAX_FRAME_BYTES = 32 * 1024 * 1024  # a 15 MiB append is ~20 MiB of base64
OUTBOX_EVENTS = 2048


async def realtime_websocket(request: web.Request) -> web.StreamResponse:
    services = request.app[SERVICES]
    if "call_id" in request.query:  # a sideband: the call it joins is the live work
        return await _upgrade(request, services)
    services.drain.refuse_new_work()  # draining: 503 before the upgrade, another replica takes it
    with services.drain.session():  # live from here: a drain that begins while it is admitted waits
        return await _upgrade(request, services)


async def _upgrade(request: web.Request, services: GatewayServices) -> web.StreamResponse:
    handshake = read_handshake(request)
    ws = web.WebSocketResponse(
        protocols=("realtime",) if handshake.offered else (),
        heartbeat=20.0,
        max_msg_size=MAX_FRAME_BYTES,
        compress=services.settings.websocket_compression,  # off: appends are not inflated
    )
    if not ws.can_prepare(request).ok:
        raise errors.ApiError(
            400,
            "This endpoint speaks WebSocket: open it with an `Upgrade: websocket` request "
            "(for example `client.realtime.connect(...)` in the openai SDK).",
            type="invalid_request_error",
        )
    await ws.prepare(request)
    translate = dialect.ga_event_to_beta if handshake.beta else None
    outbox = Outbox(OUTBOX_EVENTS, translate)
    if "call_id" in request.query:
        with log_context(call_id=request.query["call_id"]):
            await sideband(request, ws, services, handshake, outbox)
        return ws
    try:
        principal, record = await admit(request, services, handshake)
    except Refused as refused:
        await refuse(ws, refused, translate)
        return ws
    except StoreUnavailable as exc:  # no session opens while the store is away; live ones go on
        log.warning("session refused: %s", exc)
        await refuse(ws, Refused(errors.store_unavailable(), WSCloseCode.TRY_AGAIN_LATER), translate)
        return ws
    span = current_span.get().child(
        "realtime.session", ovos_realtime__session_id=record.id, ovos_realtime__project=principal.project_id
    )
    try:
        with log_context(session_id=record.id), span.activated():
            await _open(request, ws, services, handshake, outbox, translate, principal, record)
    finally:
        span.end()
        services.microphone.release(record.id)  # if this session held it
    return ws


async def _open(
    request: web.Request,
    ws: web.WebSocketResponse,
    services: GatewayServices,
    handshake: Handshake,
    outbox: Outbox,
    translate: Translate | None,
    principal: Principal,
    record: SessionRecord,
) -> None:
    """Take a session slot (and the device microphone, for its feeder) and serve the session; a
    session refused here is stored closed."""
    refusal: errors.ApiError | None = None
    if record.config.get("model") == MICROPHONE_MODEL and not services.microphone.claim(record.id):
        refusal = microphone_in_use()
    elif slot_full := await services.session_slots.try_acquire(principal.project_id, principal.owning_key):
        refusal = errors.ApiError(
            429,
            f"Too many concurrent realtime sessions for this {slot_full}. Close one and try again.",
            type="invalid_request_error",
            code="session_limit_reached",
        )
    if refusal is not None:
        closed = replace(record, status="closed", updated_at=int(time.time()))
        await services.store.save_session(closed)
        await refuse(ws, Refused(refusal, WSCloseCode.TRY_AGAIN_LATER), translate)
        return
    services.metrics.realtime_sessions.inc()
    services.events.session_opened(record.id, principal.project_id, record.config.get("model"), "websocket")
    services.gate.allowed(principal, "realtime.connect", {"id": record.id}, 101)
    log.info("session %s opened (%s, model %s)", record.id, record.type, record.config.get("model"))
    try:
        await services.cluster.claim("session", record.id)
        await _serve(request, ws, services, principal, record, handshake, outbox)
    finally:
        await services.cluster.release("session", record.id)
        services.session_slots.release(principal.project_id, principal.owning_key)
        services.metrics.realtime_sessions.dec()
        services.events.session_closed(record.id, ws.close_code)
        log.info("session %s closed", record.id)


async def _serve(
    request: web.Request,
    ws: web.WebSocketResponse,
    services: GatewayServices,
    principal: Principal,
    record: SessionRecord,
    handshake: Handshake,
    outbox: Outbox,
) -> None:
    responder = services.responder or UnavailableResponder()
    store_hooks = StoreHooks(services, record, principal)
    hooks: SessionHooks = store_hooks
    if record.config.get("model") == MICROPHONE_MODEL:
        fmt = dict(
            ((record.config.get("audio") or {}).get("input") or {}).get("format") or {"type": "audio/pcm"}
        )
        hooks = MicrophoneFeed(services.microphone, record.id, hooks, fmt)
        responder = UnavailableResponder(
            "This session is the device's microphone: the device hears it and answers aloud."
        )
    session = RealtimeSession(
        session_id=record.id,
        project_id=principal.project_id,
        config=record.config,
        expires_at=record.expires_at or 0,
        responder=responder,
        emit=TurnLatency(outbox.put, services.metrics.observe_turn),
        options=SessionOptions(
            queue_responses=services.settings.queue_responses,
            audio_memory_bytes=services.settings.session_audio_memory_bytes,
            max_input_buffer_ms=services.settings.max_input_buffer_seconds * 1000,
            served_models=services.settings.models,
        ),
        hooks=hooks,
        vad=services.vad,
        stt=services.stt,
    )
    session.start()
    tasks = TaskSupervisor(f"ws-{record.id}")
    writer = tasks.spawn("writer", write(ws, outbox))
    reader = tasks.spawn("reader", _read(ws, session, handshake.beta, services))
    expiry = tasks.spawn("expiry", asyncio.sleep(max(0.0, (record.expires_at or 0) - time.time())))
    overflow = tasks.spawn("overflow", outbox.overflowed.wait())
    hold = services.live.hold(principal)
    revocation = tasks.spawn("revoked", hold.revoked.wait())
    stopping = tasks.spawn("stopping", services.stopping.wait())
    close_code: int = WSCloseCode.OK
    close_message = b""
    try:
        done, _ = await asyncio.wait(
            {reader, expiry, overflow, writer, revocation, stopping}, return_when=asyncio.FIRST_COMPLETED
        )
        if stopping in done:
            log.info("session %s: the gateway is stopping; closing", record.id)
            await session.close()
            message = "The server is shutting down; reconnect to continue."
            outbox.put(
                error_event(
                    errors.event_error("server_shutting_down", message, type=errors.SERVER_ERROR), None
                )
            )
            close_code, close_message = WSCloseCode.GOING_AWAY, b"the server is shutting down"
        elif revocation in done:
            log.info("session %s: its key was revoked; closing", record.id)
            await session.close()
            outbox.put(error_event(errors.revoked_during_session(), None))
            close_code, close_message = CLOSE_AUTH, b"the API key was revoked"
        elif expiry in done:
            lifetime = _duration((record.expires_at or 0) - record.updated_at)
            message = f"Your session hit the maximum duration of {lifetime}."
            await session.close()
            outbox.put(error_event(errors.event_error("session_expired", message), None))
            close_code, close_message = WSCloseCode.GOING_AWAY, message.encode()
        elif overflow in done:
            services.metrics.slow_consumers.inc()
            log.warning("session %s: client stopped reading; closing", record.id)
            close_code, close_message = (
                WSCloseCode.POLICY_VIOLATION,
                b"send queue full: the client is not reading",
            )
        else:
            await session.close()
    finally:
        hold.release()
        try:
            for task in (reader, expiry, overflow, revocation, stopping):
                task.cancel()
            await asyncio.gather(reader, expiry, overflow, revocation, stopping, return_exceptions=True)
            await session.close()
            outbox.close()
            if not outbox.overflowed.is_set():
                # the queued events get 5 s to go out; a writer that failed (the client vanished
                # mid-answer: connection reset) has its error kept, not raised here
                await asyncio.wait({writer}, timeout=5.0)
            writer.cancel()
            await end_writer(request, ws, writer, close_code, close_message[:120], tasks)
        finally:
            try:
                await tasks.close()
            finally:
                await _save_closed(services, store_hooks, session, hooks)


async def _save_closed(
    services: GatewayServices,
    store_hooks: StoreHooks,
    session: RealtimeSession,
    hooks: SessionHooks,
) -> None:
    """However the socket ended, the session is stored closed with its conversation (the
    conversation first: retention may delete a closed session, never an active one)."""
    try:
        await hooks.items_changed(session.conversation)
    finally:
        fields = {**record_fields(store_hooks.record), "config": session.config, "status": "closed"}
        await store_hooks.save(SessionRecord(**{**fields, "updated_at": int(time.time())}))


async def _read(
    ws: web.WebSocketResponse, session: RealtimeSession, beta: bool, services: GatewayServices
) -> None:
    accepted = BETA_EVENT_TYPES if beta else WS_EVENT_TYPES
    async for message in ws:
        if message.type in (WSMsgType.TEXT, WSMsgType.BINARY):
            await apply_frame(session, message.data, accepted, services.metrics, beta)
        elif message.type == WSMsgType.ERROR:
            log.info("session %s: websocket error %s", session.id, ws.exception())
            return
        if session.closed:
            return


def _duration(seconds: int) -> str:
    """OpenAI says "60 minutes"; a cap under a minute reads in seconds."""
    if seconds % 60 == 0:
        return f"{seconds // 60} minutes"
    return f"{seconds} seconds"
