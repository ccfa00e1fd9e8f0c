"""The one route table: what every route is (method, path, handler) and what the OpenAPI document
says of it (operation id, body model, replies, errors). `add_routes` feeds it to aiohttp's router
and `openapi.py` renders the document from it, so the two cannot drift apart."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web
from pydantic import BaseModel

from ..protocol.dialect import BetaSessionBody, BetaTranscriptionSessionBody
from ..protocol.session_models import (
    CallReferBody,
    CallRejectBody,
    ClientSecretCreateBody,
    RealtimeSessionRequest,
)
from ..transports.microphone import microphone_listener
from ..transports.websocket import realtime_websocket
from . import beta_sessions, calls, client_secrets, health, models, schemas, sessions, talk_page

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
BodyDoc = Callable[[Callable[[type[BaseModel]], dict[str, Any]]], dict[str, Any]]
"""A request body the document cannot state as one JSON model: given `ref(model)` (a model's
validation schema), the operation's `requestBody`."""

BODY_ERRORS = ("400", "401", "403", "413", "415", "429", "500", "503")
READ_ERRORS = ("401", "403", "404", "429", "500", "503")


@dataclass(frozen=True)
class Param:
    name: str
    description: str
    where: str = "path"  # or "query" (never required)


@dataclass(frozen=True)
class Reply:
    """A documented response: a JSON `model`, or a body of `media` type (a string), or none."""

    status: str
    description: str
    model: type[BaseModel] | None = None
    media: str | None = None
    rated: bool = False  # carries the x-ratelimit-* headers
    headers: dict[str, Any] = field(default_factory=dict)  # beyond the common ones


@dataclass(frozen=True)
class Route:
    method: str
    path: str
    handler: Handler
    operation_id: str | None = None  # None: a WebSocket, documented in docs/protocol.md instead
    summary: str = ""
    tag: str = ""
    description: str | None = None
    secured: bool = True  # a bearer key (or client secret) is asked for
    params: tuple[Param, ...] = ()
    body: type[BaseModel] | BodyDoc | None = None  # a JSON model, or the document's own words
    body_required: bool = False
    replies: tuple[Reply, ...] = ()
    errors: tuple[str, ...] = ()  # statuses answered with OpenAI's error envelope


def _ok(model: type[BaseModel], rated: bool = True) -> tuple[Reply, ...]:
    return (Reply("200", "OK", model, rated=rated),)


def _sdp_offer(ref: Callable[[type[BaseModel]], dict[str, Any]]) -> dict[str, Any]:
    return {
        "required": True,
        "content": {
            "application/sdp": {"schema": {"type": "string", "description": "The SDP offer."}},
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": ["sdp"],
                    "properties": {
                        "sdp": {"type": "string", "description": "The SDP offer."},
                        "session": ref(RealtimeSessionRequest),
                    },
                },
                "encoding": {
                    "sdp": {"contentType": "application/sdp"},
                    "session": {"contentType": "application/json"},
                },
            },
        },
    }


CALL_ID = Param("call_id", "An `rtc_…` id (from the incoming-call webhook).")
CALL_LOCATION = {
    "location": {
        "description": "`/v1/realtime/calls/rtc_…`",
        "schema": {"type": "string", "pattern": "^/v1/realtime/calls/rtc_[0-9a-f]{32}$"},
    }
}

ROUTES: tuple[Route, ...] = (
    Route(
        "POST",
        "/v1/realtime/client_secrets",
        client_secrets.create_client_secret,
        "createClientSecret",
        "Create a client secret (ek_) bound to a realtime or transcription session",
        "realtime",
        body=ClientSecretCreateBody,
        replies=_ok(schemas.ClientSecretResponse),
        errors=BODY_ERRORS,
    ),
    Route(
        "POST",
        "/v1/realtime/sessions",
        beta_sessions.create_session,
        "createBetaSession",
        "Create a session and client secret (beta shape, kept for older SDKs)",
        "beta",
        body=BetaSessionBody,
        replies=_ok(schemas.BetaSessionResponse),
        errors=BODY_ERRORS,
    ),
    Route(
        "POST",
        "/v1/realtime/transcription_sessions",
        beta_sessions.create_transcription_session,
        "createBetaTranscriptionSession",
        "Create a transcription session and client secret (beta shape)",
        "beta",
        body=BetaTranscriptionSessionBody,
        replies=_ok(schemas.BetaTranscriptionSessionResponse),
        errors=BODY_ERRORS,
    ),
    Route(
        "GET",
        "/v1/realtime/sessions/{session_id}",
        sessions.retrieve_session,
        "retrieveSession",
        "Retrieve a stored session of the caller's project (ovos-realtime extension)",
        "realtime",
        params=(Param("session_id", "A `sess_…` id."),),
        replies=_ok(schemas.StoredSession),
        errors=READ_ERRORS,
    ),
    Route("GET", "/v1/realtime", realtime_websocket),
    Route(
        "POST",
        "/v1/realtime/calls",
        calls.create_call,
        "createCall",
        "Start a WebRTC call: an SDP offer in, the SDP answer out",
        "calls",
        description="Either the raw offer (`application/sdp`; the session comes from the `ek_` "
        "secret or the defaults) or `multipart/form-data` with the offer in `sdp` and a GA session "
        "object in `session`. Events then travel on the `oai-events` data channel, audio on RTP.",
        params=(Param("model", "Model of the call's session (overrides the session's).", "query"),),
        body=_sdp_offer,
        replies=(
            Reply(
                "201",
                "The SDP answer; the call id is the last segment of `Location`.",
                media="application/sdp",
                rated=True,
                headers=CALL_LOCATION,
            ),
        ),
        errors=BODY_ERRORS,
    ),
    Route(
        "POST",
        "/v1/realtime/calls/{call_id}/accept",
        calls.accept_call,
        "acceptCall",
        "Accept an incoming SIP call with a session configuration",
        "calls",
        params=(CALL_ID,),
        body=RealtimeSessionRequest,
        body_required=True,
        replies=(Reply("200", "Done.", rated=True),),
        errors=(*BODY_ERRORS, "404", "409"),
    ),
    Route(
        "POST",
        "/v1/realtime/calls/{call_id}/reject",
        calls.reject_call,
        "rejectCall",
        "Reject an incoming SIP call (SIP status, default 603)",
        "calls",
        params=(CALL_ID,),
        body=CallRejectBody,
        replies=(Reply("200", "Done.", rated=True),),
        errors=(*BODY_ERRORS, "404", "409"),
    ),
    Route(
        "POST",
        "/v1/realtime/calls/{call_id}/refer",
        calls.refer_call,
        "referCall",
        "Transfer a connected SIP call (SIP REFER)",
        "calls",
        params=(CALL_ID,),
        body=CallReferBody,
        replies=(Reply("200", "Done.", rated=True),),
        errors=(*BODY_ERRORS, "404", "409"),
    ),
    Route(
        "POST",
        "/v1/realtime/calls/{call_id}/hangup",
        calls.hangup_call,
        "hangupCall",
        "End a call of the caller's project",
        "calls",
        params=(Param("call_id", "An `rtc_…` id (from the `Location` of the call)."),),
        replies=(Reply("200", "The call ended.", rated=True),),
        errors=READ_ERRORS,
    ),
    Route(
        "GET",
        "/v1/models",
        models.list_models,
        "listModels",
        "List the models this gateway answers to",
        "models",
        replies=_ok(schemas.ModelList),
        errors=("401", "403", "429", "500", "503"),
    ),
    Route(
        "GET",
        "/v1/models/{model}",
        models.retrieve_model,
        "retrieveModel",
        "Retrieve a model",
        "models",
        params=(Param("model", "A model name, e.g. `gpt-realtime`."),),
        replies=_ok(schemas.ModelObject),
        errors=READ_ERRORS,
    ),
    Route("GET", "/ovos/microphone", microphone_listener),
    Route(
        "GET",
        "/talk",
        talk_page.talk_page,
        "talkPage",
        "The talk page: talk to the assistant from a browser (when `talk_page` is on)",
        "talk page",
        secured=False,
        replies=(
            Reply("200", "The page", media="text/html"),
            Reply("404", "The talk page is not enabled.", schemas.ErrorBody),
        ),
    ),
    Route(
        "POST",
        "/talk/client_secret",
        talk_page.talk_client_secret,
        "talkPageClientSecret",
        "A 60-second client secret for the talk page's call (no key; policy-checked)",
        "talk page",
        secured=False,
        replies=_ok(schemas.ClientSecretResponse),
        errors=("403", "404", "429", "500", "503"),
    ),
    Route(
        "GET",
        "/healthz",
        health.healthz,
        "healthz",
        "Liveness",
        "operations",
        secured=False,
        replies=_ok(schemas.Health, rated=False),
    ),
    Route(
        "GET",
        "/readyz",
        health.readyz,
        "readyz",
        "Readiness of the gateway's dependencies",
        "operations",
        secured=False,
        replies=(
            Reply("200", "Ready", schemas.Readiness),
            Reply("503", "A dependency is not ready, or the gateway drains", schemas.Readiness),
        ),
    ),
    Route(
        "GET",
        "/metrics",
        health.metrics,
        "metrics",
        "Prometheus metrics",
        "operations",
        description="Open unless the gateway's `metrics_token` is set; then it needs "
        "`Authorization: Bearer <metrics_token>` (a 401 with `WWW-Authenticate: Bearer` otherwise).",
        secured=False,
        replies=(Reply("200", "Prometheus text format", media="text/plain"),),
        errors=("401", "429"),
    ),
    Route(
        "GET",
        "/openapi.yaml",
        health.openapi,
        "openapi",
        "This document",
        "operations",
        secured=False,
        replies=(Reply("200", "OpenAPI 3.1 YAML", media="application/yaml"),),
    ),
)


def add_routes(app: web.Application) -> None:
    for route in ROUTES:
        if route.method == "GET":
            app.router.add_get(route.path, route.handler)  # and HEAD
        else:
            app.router.add_route(route.method, route.path, route.handler)
