"""`GET /v1/realtime`: the WebSocket OpenAI's clients talk to.

Like OpenAI, the upgrade always completes; problems (credentials, model, limits) are reported
in-band as one `error` event followed by OpenAI's close code (3000 auth, 4000 request, 1013
try again later). Then: `session.created`, a reader loop (frames → engine) and a writer task
(outbox → socket), until either side ends, the session expires, or the client stops reading.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from dataclasses import dataclass, replace
from typing import Any

from aiohttp import WSCloseCode, WSMsgType, web

from ..calls.call import Call
from ..engine.responder import Responder, UnavailableResponder
from ..engine.session import RealtimeSession, SessionHooks, SessionOptions
from ..log import log_context
from ..observability.tracing import current_span
from ..observability.turn_latency import TurnLatency
from ..ovos.microphone import MICROPHONE_MODEL, MicrophoneFeed, guard_microphone, microphone_in_use
from ..protocol import dialect, errors, ids
from ..protocol.server_events import error_event
from ..protocol.session_config import default_transcription_session, initial_session
from ..rest.guard import audit_success, authenticate, authorize
from ..security.auth import Principal, bearer_token
from ..security.policy_input import session_resource
from ..services import SERVICES, GatewayServices
from ..store import SessionRecord
from .client_frames import BETA_EVENT_TYPES, WS_EVENT_TYPES, apply_frame
from .outbox import Outbox
from .session_store import StoreHooks, record_fields, secret_session

log = logging.getLogger("ovos_realtime.transport")
MAX_FRAME_BYTES = 32 * 1024 * 1024  # a 15 MiB append is ~20 MiB of base64
OUTBOX_EVENTS = 2048
CLOSE_AUTH = 3000
CLOSE_REQUEST = 4000
BETA_SUBPROTOCOL = "openai-beta.realtime-v1"
KEY_SUBPROTOCOL = "openai-insecure-api-key."
RESPONDER = web.AppKey("responder", Responder)


@dataclass(frozen=True)
class Handshake:
    token: str | None
    beta: bool
    offered: tuple[str, ...]


def read_handshake(request: web.Request) -> Handshake:
    offered = tuple(
        p.strip() for p in request.headers.get("Sec-WebSocket-Protocol", "").split(",") if p.strip()
    )
    token = bearer_token(request.headers.get("Authorization"))
    if token is None:
        token = (
            next((p[len(KEY_SUBPROTOCOL) :] for p in offered if p.startswith(KEY_SUBPROTOCOL)), None) or None
        )
    beta = (
        "realtime=v1" in request.headers.get("OpenAI-Beta", "").replace(" ", "")
        or BETA_SUBPROTOCOL in offered
    )
    return Handshake(token, beta, offered)


class Refused(Exception):
    def __init__(self, error: errors.ApiError, close_code: int) -> None:
        super().__init__(error.message)
        self.error = error
        self.close_code = close_code


async def realtime_websocket(request: web.Request) -> web.StreamResponse:
    services = request.app[SERVICES]
    handshake = read_handshake(request)
    ws = web.WebSocketResponse(
        protocols=("realtime",) if handshake.offered else (),
        heartbeat=20.0,
        max_msg_size=MAX_FRAME_BYTES,
        compress=True,
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
            await _sideband(request, ws, services, handshake, outbox)
        return ws
    try:
        principal, record = await _admit(request, services, handshake)
    except Refused as refused:
        await _refuse(ws, refused, translate)
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
    translate: Any,
    principal: Principal,
    record: SessionRecord,
) -> None:
    """Take a session slot (and the device microphone, for its feeder) and serve the session; a
    session refused here is stored closed."""
    refusal: errors.ApiError | None = None
    if record.config.get("model") == MICROPHONE_MODEL and not services.microphone.claim(record.id):
        refusal = microphone_in_use()
    elif slot_full := services.session_slots.try_acquire(principal.project_id, principal.owning_key):
        refusal = errors.ApiError(
            429,
            f"Too many concurrent realtime sessions for this {slot_full}. Close one and try again.",
            type="invalid_request_error",
            code="session_limit_reached",
        )
    if refusal is not None:
        closed = replace(record, status="closed", updated_at=int(time.time()))
        await services.store.save_session(closed)
        await _refuse(ws, Refused(refusal, WSCloseCode.TRY_AGAIN_LATER), translate)
        return
    services.metrics.realtime_sessions.inc()
    services.events.session_opened(record.id, principal.project_id, record.config.get("model"), "websocket")
    audit_success(request, "realtime.connect", {"id": record.id}, 101)
    log.info("session %s opened (%s, model %s)", record.id, record.type, record.config.get("model"))
    try:
        await _serve(request, ws, services, principal, record, handshake, outbox)
    finally:
        services.session_slots.release(principal.project_id, principal.owning_key)
        services.metrics.realtime_sessions.dec()
        services.events.session_closed(record.id, ws.close_code)
        log.info("session %s closed", record.id)


async def _refuse(ws: web.WebSocketResponse, refused: Refused, translate: Any) -> None:
    event = error_event(refused.error, None)
    if translate is not None:
        event = translate(event) or event
    with contextlib.suppress(ConnectionError, RuntimeError):
        import json

        await ws.send_str(json.dumps(event))
        reason = f"{refused.error.type}.{refused.error.code}" if refused.error.code else refused.error.type
        await ws.close(code=refused.close_code, message=reason.encode()[:120])


async def _admit(
    request: web.Request, services: GatewayServices, handshake: Handshake
) -> tuple[Principal, SessionRecord]:
    query = request.query
    model, intent = query.get("model"), query.get("intent")
    try:
        principal = await authenticate(request, "realtime.connect", token=handshake.token)
    except errors.ApiError as exc:
        raise Refused(exc, _close_code(exc)) from None
    if handshake.beta and not services.settings.allow_beta:
        raise Refused(
            errors.event_error(
                "beta_api_shape_disabled",
                "The Realtime Beta API is not enabled on this gateway. "
                "Please use /v1/realtime for the GA API.",
            ),
            CLOSE_REQUEST,
        )
    settings = services.settings
    now = int(time.time())
    record, lifetime = await secret_session(services, principal)
    expires_at = now + lifetime
    if record is None:
        defaults = settings.session_defaults()
        config = (
            default_transcription_session(defaults)
            if intent == "transcription"
            else initial_session(None, defaults)
        )
        record = SessionRecord(
            id=ids.session_id(),
            project_id=principal.project_id,
            type=config["type"],
            config=config,
            status="active",
            created_at=now,
            updated_at=now,
            expires_at=expires_at,
        )
    else:
        record = SessionRecord(
            **{
                **record_fields(record),
                "id": ids.session_id() if record.status != "pending" else record.id,
                "status": "active",
                "updated_at": now,
                "expires_at": expires_at,
            }
        )
    target = session_resource(
        {**record.config, "model": model or record.config.get("model")},
        record.project_id,
        record.id,
        principal.key_id,
    )
    try:
        await authorize(request, principal, "realtime.connect", target, transport="websocket")
    except errors.ApiError as exc:
        raise Refused(exc, _close_code(exc)) from None
    if record.type == "realtime":
        if model is None and principal.kind != "client_secret":
            if intent != "transcription":
                raise Refused(
                    errors.event_error(
                        "missing_model",
                        "You must provide a model parameter, for example wss://<host>/v1/realtime?model=gpt-realtime",
                    ),
                    CLOSE_REQUEST,
                )
        if model == MICROPHONE_MODEL:
            try:
                await guard_microphone(request, "microphone.feed", principal=principal, session_id=record.id)
            except errors.ApiError as exc:
                raise Refused(exc, _close_code(exc)) from None
            audio_in = record.config.setdefault("audio", {}).setdefault("input", {})
            audio_in["turn_detection"] = None  # the device's listener finds the turns
        elif model is not None:
            if model not in settings.models:
                raise Refused(
                    errors.event_error(
                        "invalid_model", f'Model "{model}" is not supported in realtime mode.'
                    ),
                    CLOSE_REQUEST,
                )
        if model is not None:
            record.config["model"] = model
    await services.store.save_session(record)
    return principal, record


def _close_code(exc: errors.ApiError) -> int:
    if exc.status in (401, 403):
        return CLOSE_AUTH
    if exc.status in (429, 503):
        return WSCloseCode.TRY_AGAIN_LATER
    return CLOSE_REQUEST


async def _sideband(
    request: web.Request,
    ws: web.WebSocketResponse,
    services: GatewayServices,
    handshake: Handshake,
    outbox: Outbox,
) -> None:
    """`?call_id=`: watch and steer a live call of the caller's project (a project key)."""
    call_id = request.query["call_id"]
    not_found = errors.event_error("call_not_found", f"No call found with id '{call_id}'.")
    target = services.calls.policy_resource(call_id, "attach")
    try:
        principal = await authenticate(request, "calls.manage", token=handshake.token)
        await authorize(request, principal, "calls.manage", target, transport="websocket", hidden=not_found)
    except errors.ApiError as exc:
        close = CLOSE_REQUEST if exc is not_found else _close_code(exc)
        await _refuse(ws, Refused(exc, close), None)
        return
    call = services.calls.find(call_id, principal.project_id)  # the second line
    if not isinstance(call, Call):
        await _refuse(ws, Refused(not_found, CLOSE_REQUEST), None)
        return
    if call.session is None:
        error = errors.event_error(
            "call_not_accepted", f"Call '{call_id}' is still ringing: accept it, then attach."
        )
        await _refuse(ws, Refused(error, CLOSE_REQUEST), None)
        return
    call.attach(outbox)
    audit_success(request, "calls.manage", {"id": call_id}, 101)
    loop = asyncio.get_running_loop()
    writer = loop.create_task(_write(ws, outbox), name=f"sideband-writer-{call_id}")
    reader = loop.create_task(_forward(ws, call), name=f"sideband-reader-{call_id}")
    ended = loop.create_task(call.ended.wait(), name=f"sideband-end-{call_id}")
    overflow = loop.create_task(outbox.overflowed.wait(), name=f"sideband-overflow-{call_id}")
    hold = services.live.hold(principal)
    revocation = loop.create_task(hold.revoked.wait(), name=f"sideband-revoked-{call_id}")
    code: int = WSCloseCode.OK
    reason = b""
    try:
        await asyncio.wait({reader, ended, overflow, revocation}, return_when=asyncio.FIRST_COMPLETED)
        if overflow.done():  # the monitor stopped reading: it goes, the call stays
            services.metrics.slow_consumers.inc()
            code, reason = WSCloseCode.POLICY_VIOLATION, b"send queue full: the client is not reading"
        elif revocation.done():  # the monitor's key went: it goes, the call stays
            outbox.put(error_event(errors.revoked_during_session(), None))
            code, reason = CLOSE_AUTH, b"the API key was revoked"
        elif call.ended.is_set():
            reason = b"call ended"
    finally:
        hold.release()
        call.detach(outbox)
        outbox.close()
        for task in (reader, ended, overflow, revocation):
            task.cancel()
        if not outbox.overflowed.is_set():  # as in _serve: a failed writer's error is kept, not raised
            await asyncio.wait({writer}, timeout=2.0)
        writer.cancel()
        await asyncio.gather(reader, ended, overflow, revocation, return_exceptions=True)
        await _end_writer(request, ws, writer, code, reason)


CLOSE_TIMEOUT_S = 10.0
"""How long a closing socket gets for the close handshake before its connection is dropped."""


async def close_bounded(request: web.Request, ws: web.WebSocketResponse, code: int, message: bytes) -> None:
    """Close with `code`, and make sure the TCP connection goes within CLOSE_TIMEOUT_S. A client
    that stopped reading has megabytes queued in front of the close frame: it never answers the
    close, and a graceful close of the transport waits to flush a buffer that never drains (a
    soak saw such a connection held ESTABLISHED for 12 minutes). So whatever is still unsent at
    the deadline is dropped with the connection. A client that reads in that time gets the close
    frame and its code (1008 for a full send queue). `asyncio.wait`, not `wait_for`: aiohttp's
    close does not give way to cancellation."""
    deadline = asyncio.get_running_loop().time() + CLOSE_TIMEOUT_S
    if not ws.closed:
        closing = asyncio.ensure_future(ws.close(code=code, message=message))
        closing.add_done_callback(_ignore_outcome)
        await asyncio.wait({closing}, timeout=CLOSE_TIMEOUT_S)
        if not closing.done():
            _drop(request)
            await asyncio.wait({closing}, timeout=1.0)  # a close on a dead transport ends at once
            closing.cancel()
            return
    transport = request.transport
    while transport is not None and transport.get_write_buffer_size() > 0:
        if asyncio.get_running_loop().time() >= deadline:
            _drop(request)
            return
        await asyncio.sleep(0.1)


def _drop(request: web.Request) -> None:
    transport = request.transport
    if transport is not None:
        log.info(
            "%s: the client took nothing for %.0f s; dropping its connection", request.path, CLOSE_TIMEOUT_S
        )
        transport.abort()


async def _end_writer(
    request: web.Request, ws: web.WebSocketResponse, writer: asyncio.Task[None], code: int, message: bytes
) -> None:
    """The writer was cancelled; one blocked in aiohttp's drain (a client that stopped reading)
    does not give way to cancellation, so it is given a moment, then the socket is closed (and
    dropped if need be), which ends it."""
    await asyncio.wait({writer}, timeout=1.0)
    await close_bounded(request, ws, code, message)
    await asyncio.wait({writer}, timeout=1.0)
    writer.add_done_callback(_ignore_outcome)


def _ignore_outcome(task: asyncio.Future[Any]) -> None:
    if not task.cancelled():
        task.exception()  # retrieved: a close that failed on a dropped connection is expected


async def _forward(ws: web.WebSocketResponse, call: Call) -> None:
    """A sideband's client events go to the call's engine, in order with the data channel's."""
    async for message in ws:
        if message.type in (WSMsgType.TEXT, WSMsgType.BINARY):
            call.submit(message.data)
        elif message.type == WSMsgType.ERROR:
            return


async def _serve(
    request: web.Request,
    ws: web.WebSocketResponse,
    services: GatewayServices,
    principal: Principal,
    record: SessionRecord,
    handshake: Handshake,
    outbox: Outbox,
) -> None:
    responder = request.app.get(RESPONDER) or UnavailableResponder()
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
    writer = asyncio.get_running_loop().create_task(_write(ws, outbox), name=f"ws-writer-{record.id}")
    reader = asyncio.get_running_loop().create_task(
        _read(ws, session, handshake.beta, services), name=f"ws-reader-{record.id}"
    )
    expiry = asyncio.get_running_loop().create_task(
        asyncio.sleep(max(0.0, (record.expires_at or 0) - time.time())), name=f"ws-expiry-{record.id}"
    )
    overflow = asyncio.get_running_loop().create_task(
        outbox.overflowed.wait(), name=f"ws-overflow-{record.id}"
    )
    hold = services.live.hold(principal)
    revocation = asyncio.get_running_loop().create_task(hold.revoked.wait(), name=f"ws-revoked-{record.id}")
    stopping = asyncio.get_running_loop().create_task(
        services.stopping.wait(), name=f"ws-stopping-{record.id}"
    )
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
            await _end_writer(request, ws, writer, close_code, close_message[:120])
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
        await services.store.save_session(SessionRecord(**{**fields, "updated_at": int(time.time())}))


async def _write(ws: web.WebSocketResponse, outbox: Outbox) -> None:
    while True:
        message = await outbox.get()
        if message is None:
            return
        await ws.send_str(message)


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
