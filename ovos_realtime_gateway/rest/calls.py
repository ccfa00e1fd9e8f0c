"""`POST /v1/realtime/calls` (a WebRTC offer in, the SDP answer out) and call control."""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

from aiohttp import BodyPartReader, web
from aiohttp.http_exceptions import HttpProcessingError
from pydantic import BaseModel

from ..calls.call import Call
from ..calls.sdp import check_offer
from ..calls.sip.call import SipCall
from ..calls.webrtc import WebRtcCall
from ..cluster.forward import OwnerUnreachable, check_gone, owner_elsewhere, path_of
from ..engine.responder import Responder, UnavailableResponder
from ..protocol import errors, ids, json_text
from ..protocol.session_config import Config, initial_session
from ..protocol.session_models import CallReferBody, CallRejectBody, RealtimeSessionRequest
from ..protocol.validation import validate
from ..security.auth import Principal
from ..security.gate import HOP_CLIENT
from ..security.policy_input import call_resource, resource
from ..services import SERVICES, GatewayServices
from ..store import SessionRecord
from ..transports.session_store import secret_session
from .access import audit_success, authenticate, authorize
from .bodies import read_json
from .minting import check_models

log = logging.getLogger("ovos_realtime.calls")


class CallSession(BaseModel):
    """The `session` part of a multipart call offer: a GA realtime session object."""

    session: RealtimeSessionRequest


async def _read_offer(request: web.Request) -> tuple[str, RealtimeSessionRequest | None]:
    limit = request.client_max_size
    if request.content_length is not None and request.content_length > limit:
        raise errors.body_too_large(limit)
    if request.content_type == "application/sdp":
        return (await request.read()).decode("utf-8", errors="replace"), None
    if request.content_type != "multipart/form-data":
        raise errors.unsupported_content_type(
            request.headers.get("Content-Type", "(none)"), "application/sdp or multipart/form-data"
        )
    sdp: str | None = None
    session: RealtimeSessionRequest | None = None
    try:
        reader = await request.multipart()
        async for part in reader:
            if not isinstance(part, BodyPartReader):
                continue
            text = await part.text()
            if part.name == "sdp":
                sdp = text
            elif part.name == "session":
                try:
                    data = json_text.loads(text)
                except ValueError as exc:
                    raise errors.invalid_json(f"the session part: {str(exc).split(':')[0]}") from None
                session = validate(CallSession, {"session": data}).session
    except (ValueError, AssertionError, HttpProcessingError) as exc:  # a malformed part
        if isinstance(exc, errors.ApiError):
            raise
        raise errors.ApiError(
            400, f"The multipart body could not be read ({exc}).", code="invalid_body"
        ) from None
    if sdp is None:
        raise errors.ApiError(
            400, "Missing required parameter: 'sdp'.", code="missing_required_parameter", param="sdp"
        )
    return sdp, session


async def _call_record(
    services: GatewayServices, principal: Principal, session: RealtimeSessionRequest | None, model: str | None
) -> SessionRecord:
    """The call's session: the ek_ secret's stored one, else the request's, else the defaults."""
    now = int(time.time())
    stored, lifetime = await secret_session(services, principal)
    config: Config | None = None
    record_id = ids.session_id()
    if stored is not None and session is None and stored.type == "realtime":
        config = stored.config
        if stored.status == "pending":
            record_id = stored.id
    if config is None:
        config = initial_session(session, services.settings.session_defaults())
    if model is not None:
        config["model"] = model
    check_models(services, config)
    return SessionRecord(
        id=record_id,
        project_id=principal.project_id,
        type="realtime",
        config=config,
        status="active",
        created_at=now,
        updated_at=now,
        expires_at=now + lifetime,
        replica_id=services.cluster.replica.id,
    )


async def create_call(request: web.Request) -> web.Response:
    services = request.app[SERVICES]
    services.drain.refuse_new_work()  # draining: 503, another replica takes the call
    principal = await authenticate(request, "calls.create")
    if "realtime=v1" in request.headers.get("OpenAI-Beta", "").replace(" ", ""):
        raise errors.ApiError(
            400,
            "The Realtime Beta API is not supported for WebRTC calls. Please use /v1/realtime/calls.",
            code="beta_api_shape_disabled",
        )
    sdp, session = await _read_offer(request)
    check_offer(sdp)
    record = await _call_record(services, principal, session, request.query.get("model"))
    call_id = ids.call_id()
    target = call_resource(
        call_id, principal.project_id, "webrtc", principal.key_id, config=record.config, session_id=record.id
    )
    await authorize(request, principal, "calls.create", target, transport="webrtc")
    slot_full = await services.session_slots.try_acquire(principal.project_id, principal.owning_key)
    if slot_full is not None:
        raise errors.ApiError(
            429,
            f"Too many concurrent realtime sessions for this {slot_full}. End one and try again.",
            code="session_limit_reached",
        )
    responder: Responder = services.responder or UnavailableResponder()
    call = WebRtcCall(call_id, services, principal, record, responder)
    try:
        answer = await call.answer(sdp)
    except Exception as exc:  # aiortc refuses what check_offer could not foresee
        log.info("call offer refused: %s", exc)
        call.end("offer_refused")
        await call.ended.wait()
        services.session_slots.release(principal.project_id, principal.owning_key)
        raise errors.ApiError(
            400,
            f"The SDP offer could not be answered ({exc}).",
            code="invalid_offer",
            param="sdp",
        ) from None
    await services.store.save_session(record)
    call.go_live()
    await services.cluster.claim(
        "call", call.id
    )  # before its id is out: control may come through any replica
    call.start()
    audit_success(request, "calls.create", {"id": call.id}, 201)
    return web.Response(
        status=201,
        body=answer.encode(),
        content_type="application/sdp",
        headers={"Location": f"/v1/realtime/calls/{call.id}"},
    )


@dataclass(frozen=True)
class _Control:
    """A call-control request admitted here (the call is not another replica's): its caller and
    operation (hangup, accept, reject, refer)."""

    request: web.Request
    principal: Principal
    operation: str

    @property
    def services(self) -> GatewayServices:
        return self.request.app[SERVICES]

    async def call(self, config: Config | None = None) -> Call:
        """The caller's call, once the policy allowed `calls.manage` on it (`config`: the session an
        accept would run)."""
        call_id = self.request.match_info["call_id"]
        target = self.services.calls.policy_resource(call_id, self.operation, config)
        await authorize(self.request, self.principal, "calls.manage", target, hidden=call_not_found(call_id))
        call = self.services.calls.find(call_id, self.principal.project_id)  # the second line
        if not isinstance(call, Call):
            raise call_not_found(call_id)
        return call


async def _elsewhere(request: web.Request, operation: str, principal: Principal) -> web.Response | None:
    """When another live replica holds the call: the request is admitted here (rate limit, policy),
    then replayed to that replica over the signed hop, and its answer is the answer. None when the
    call is here, unknown, or the request is itself a hop (it goes no further)."""
    services = request.app[SERVICES]
    call_id = request.match_info["call_id"]
    if services.calls.holds(call_id) or request.get(HOP_CLIENT) is not None:
        return None
    owner = await owner_elsewhere(services.cluster, "call", call_id)
    if owner is None:
        return None
    target = resource("call", call_id, operation=operation)
    await authorize(request, principal, "calls.manage", target, hidden=call_not_found(call_id))
    body = await request.read() if request.body_exists else b""
    client = request.remote or "unknown"
    forwards = services.metrics.cluster_forwards
    try:
        answer = await services.forwarder.request(
            owner, request.method, path_of(request), request.headers, body, client
        )
    except OwnerUnreachable as exc:
        log.warning("call %s: its replica could not be reached: %s", call_id, exc)
        await check_gone(services.cluster, "call", call_id, forwards, "control")
        raise call_not_found(call_id) from None  # it was gone: its call with it
    forwards.labels(kind="control", result="answered").inc()
    return web.Response(status=answer.status, body=answer.body, headers=answer.headers)


Handler = Callable[[web.Request], Awaitable[web.Response]]
ControlWork = Callable[[_Control], Awaitable[Call]]


def _call_control(operation: str) -> Callable[[ControlWork], Handler]:
    """A call-control handler (`operation`: hangup, accept, reject, refer), all alike around the
    work: the caller authenticated (and rate-counted), the request forwarded when another replica
    holds the call, else the work done here on the call it returns, audited, 200."""

    def handler_for(work: ControlWork) -> Handler:
        @functools.wraps(work)
        async def handler(request: web.Request) -> web.Response:
            principal = await authenticate(request, "calls.manage")
            if (forwarded := await _elsewhere(request, operation, principal)) is not None:
                return forwarded
            call = await work(_Control(request, principal, operation))
            audit_success(request, f"calls.{operation}", {"id": call.id})
            return web.Response(status=200)

        return handler

    return handler_for


def _sip_call(call: Call) -> SipCall:
    if not isinstance(call, SipCall):
        raise errors.ApiError(
            400,
            f"Call '{call.id}' is a WebRTC call: accept, reject and refer are for SIP calls.",
            code="not_a_sip_call",
        )
    return call


@_call_control("hangup")
async def hangup_call(control: _Control) -> Call:
    call = await control.call()
    if isinstance(call, SipCall):
        await call.hangup()
    await call.end("hangup")
    return call


@_call_control("accept")
async def accept_call(control: _Control) -> Call:
    session = await read_json(control.request, RealtimeSessionRequest, allow_empty=False)
    services = control.services
    sip = _sip_call(await control.call(initial_session(session, services.settings.session_defaults())))
    record = await _call_record(services, control.principal, session, None)
    await sip.accept(record, services.responder or UnavailableResponder())
    sip.hold_for(control.principal)
    await services.store.save_session(record)
    return sip


@_call_control("reject")
async def reject_call(control: _Control) -> Call:
    call = await control.call()
    body = await read_json(control.request, CallRejectBody)
    await _sip_call(call).reject(body.status_code or 603)
    return call


@_call_control("refer")
async def refer_call(control: _Control) -> Call:
    call = await control.call()
    body = await read_json(control.request, CallReferBody, allow_empty=False)
    await _sip_call(call).refer(body.target_uri)
    return call


def call_not_found(call_id: str) -> errors.ApiError:
    return errors.ApiError(404, f"No call found with id '{call_id}'.", code="call_not_found", param="call_id")
