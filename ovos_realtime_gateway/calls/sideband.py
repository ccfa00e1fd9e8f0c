"""`GET /v1/realtime?call_id=`: a sideband socket that watches and steers a live call of the
caller's project (a project key). The call's engine events go out to it; its client events go to
the call's engine, in order with the data channel's. It ends with the call, when the monitor stops
reading or when its key is revoked; the call stays."""

from __future__ import annotations

import asyncio
import logging

from aiohttp import WSCloseCode, WSMsgType, web

from ..cluster.forward import OwnerUnreachable, check_gone, owner_elsewhere, path_of
from ..protocol import errors
from ..protocol.server_events import error_event
from ..security.gate import Caller
from ..services import GatewayServices
from ..tasks import TaskSupervisor
from ..transports.outbox import Outbox
from ..transports.ws_admission import CLOSE_AUTH, CLOSE_REQUEST, Handshake, Refused, close_code, refuse
from ..transports.ws_sending import end_writer, write
from .call import Call

log = logging.getLogger("ovos_realtime.calls")


async def sideband(
    request: web.Request,
    ws: web.WebSocketResponse,
    services: GatewayServices,
    handshake: Handshake,
    outbox: Outbox,
) -> None:
    """Admit the monitor for the call `?call_id=`, then relay until one side ends."""
    call_id = request.query["call_id"]
    not_found = errors.event_error("call_not_found", f"No call found with id '{call_id}'.")
    target = services.calls.policy_resource(call_id, "attach")
    caller = Caller.of(request)
    try:
        principal = await services.gate.authenticate(caller, "calls.manage", token=handshake.token)
        await services.gate.authorize(
            caller, principal, "calls.manage", target, transport="websocket", hidden=not_found
        )
    except errors.ApiError as exc:
        close = CLOSE_REQUEST if exc is not_found else close_code(exc)
        await refuse(ws, Refused(exc, close), None)
        return
    call = services.calls.find(call_id, principal.project_id)  # the second line
    if not isinstance(call, Call):
        if not services.calls.holds(call_id) and not caller.hopped:
            try:
                if await _relayed(request, ws, services, handshake, call_id):
                    return
            except errors.ApiError as exc:
                await refuse(ws, Refused(exc, close_code(exc)), None)
                return
        await refuse(ws, Refused(not_found, CLOSE_REQUEST), None)
        return
    if call.session is None:
        error = errors.event_error(
            "call_not_accepted", f"Call '{call_id}' is still ringing: accept it, then attach."
        )
        await refuse(ws, Refused(error, CLOSE_REQUEST), None)
        return
    call.attach(outbox)
    services.gate.allowed(principal, "calls.manage", {"id": call_id}, 101)
    tasks = TaskSupervisor(f"sideband-{call_id}")
    writer = tasks.spawn("writer", write(ws, outbox))
    reader = tasks.spawn("reader", _forward(ws, call))
    ended = tasks.spawn("end", call.ended.wait())
    overflow = tasks.spawn("overflow", outbox.overflowed.wait())
    hold = services.live.hold(principal)
    revocation = tasks.spawn("revoked", hold.revoked.wait())
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
        elif reader.done() and reader.exception() is None:
            log.info("sideband of call %s: the monitor left (%s)", call_id, reader.result())
    finally:
        hold.release()
        call.detach(outbox)
        outbox.close()
        for task in (reader, ended, overflow, revocation):
            task.cancel()
        if not outbox.overflowed.is_set():  # as for a session: a failed writer's error is kept, not raised
            await asyncio.wait({writer}, timeout=2.0)
        writer.cancel()
        await asyncio.gather(reader, ended, overflow, revocation, return_exceptions=True)
        try:
            await end_writer(request, ws, writer, code, reason, tasks)
        finally:
            await tasks.close()


async def _relayed(
    request: web.Request,
    ws: web.WebSocketResponse,
    services: GatewayServices,
    handshake: Handshake,
    call_id: str,
) -> bool:
    """When another live replica holds the call, relay this socket to its sideband (over the signed
    hop; it authorizes the monitor again) until either side closes; False when none does."""
    owner = await owner_elsewhere(services.cluster, "call", call_id)
    if owner is None:
        return False
    headers = {"Authorization": f"Bearer {handshake.token}"}
    if handshake.beta:
        headers["OpenAI-Beta"] = "realtime=v1"
    client = request.remote or "unknown"
    forwards = services.metrics.cluster_forwards
    try:
        await services.forwarder.relay(ws, owner, path_of(request), headers, client)
    except OwnerUnreachable as exc:
        log.warning("sideband of call %s: its replica could not be reached: %s", call_id, exc)
        await check_gone(services.cluster, "call", call_id, forwards, "sideband")
        return False  # it was gone, and its call with it
    forwards.labels(kind="sideband", result="answered").inc()
    return True


async def _forward(ws: web.WebSocketResponse, call: Call) -> str:
    """A sideband's client events go to the call's engine, in order with the data channel's,
    until the monitor leaves: how it closed (its code and reason, through a relay as well)."""
    while True:
        message = await ws.receive()
        if message.type in (WSMsgType.TEXT, WSMsgType.BINARY):
            call.submit(message.data)
        elif message.type == WSMsgType.CLOSE:
            return f"close {message.data} {message.extra or ''}".strip()
        elif message.type in (WSMsgType.CLOSING, WSMsgType.CLOSED, WSMsgType.ERROR):
            return f"connection ended ({message.type.name})"
