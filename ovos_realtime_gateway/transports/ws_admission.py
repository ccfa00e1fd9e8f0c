"""The realtime WebSocket's handshake and admission: credentials from the header or the
subprotocol, the beta dialect, the session row a connection opens (from a client secret or the
defaults), the gate, and refusals sent in-band as one `error` event and OpenAI's close code
(3000 auth, 4000 request, 1013 try again later)."""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from aiohttp import WSCloseCode, web

from ..ovos.microphone import MICROPHONE_MODEL, admit_microphone
from ..protocol import errors, ids
from ..protocol.server_events import error_event
from ..protocol.session_config import default_transcription_session, initial_session
from ..security.auth import Principal, bearer_token
from ..security.gate import Caller
from ..security.policy_input import session_resource
from ..services import GatewayServices
from ..store import SessionRecord
from .session_store import record_fields, secret_session

CLOSE_AUTH = 3000
CLOSE_REQUEST = 4000
BETA_SUBPROTOCOL = "openai-beta.realtime-v1"
KEY_SUBPROTOCOL = "openai-insecure-api-key."
Translate = Callable[[dict[str, Any]], Any]


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


async def refuse(ws: web.WebSocketResponse, refused: Refused, translate: Translate | None) -> None:
    """Send the refusal as one `error` event, then close with its code."""
    event = error_event(refused.error, None)
    if translate is not None:
        event = translate(event) or event
    with contextlib.suppress(ConnectionError, RuntimeError):
        await ws.send_str(json.dumps(event))
        reason = f"{refused.error.type}.{refused.error.code}" if refused.error.code else refused.error.type
        await ws.close(code=refused.close_code, message=reason.encode()[:120])


def close_code(exc: errors.ApiError) -> int:
    if exc.status in (401, 403):
        return CLOSE_AUTH
    if exc.status in (429, 503):
        return WSCloseCode.TRY_AGAIN_LATER
    return CLOSE_REQUEST


async def admit(
    request: web.Request, services: GatewayServices, handshake: Handshake
) -> tuple[Principal, SessionRecord]:
    """Authenticate, build the session the connection opens, authorize it, store it active."""
    query = request.query
    model, intent = query.get("model"), query.get("intent")
    caller = Caller.of(request)
    try:
        principal = await services.gate.authenticate(caller, "realtime.connect", token=handshake.token)
    except errors.ApiError as exc:
        raise Refused(exc, close_code(exc)) from None
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
            replica_id=services.cluster.replica.id,
        )
    else:
        record = SessionRecord(
            **{
                **record_fields(record),
                "id": ids.session_id() if record.status != "pending" else record.id,
                "status": "active",
                "updated_at": now,
                "expires_at": expires_at,
                "replica_id": services.cluster.replica.id,
            }
        )
    target = session_resource(
        {**record.config, "model": model or record.config.get("model")},
        record.project_id,
        record.id,
        principal.key_id,
    )
    try:
        await services.gate.authorize(caller, principal, "realtime.connect", target, transport="websocket")
    except errors.ApiError as exc:
        raise Refused(exc, close_code(exc)) from None
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
                await admit_microphone(services, caller, "microphone.feed", principal, record.id)
            except errors.ApiError as exc:
                raise Refused(exc, close_code(exc)) from None
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
