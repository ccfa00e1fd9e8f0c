"""The beta REST shapes OpenAI retired but old SDKs still send (`client.beta.realtime`).

`POST /v1/realtime/sessions` and `POST /v1/realtime/transcription_sessions` take the flat beta
session, store its GA equivalent, and answer with the beta session plus `client_secret`.
"""

from __future__ import annotations

from aiohttp import web

from ..protocol.dialect import (
    BETA_DEFAULT_TEMPERATURE,
    BetaClientSecret,
    BetaSessionBody,
    BetaTranscriptionSessionBody,
    beta_session_to_ga,
    ga_session_to_beta,
)
from ..protocol.session_models import RealtimeSessionRequest, TranscriptionSessionRequest
from ..protocol.validation import validate
from ..services import SERVICES
from .access import audit_success, authenticate, authorize
from .bodies import read_json
from .minting import mint_client_secret, minting_resource

# OpenAI's documented default key lifetimes for the beta endpoints.
BETA_SESSION_TTL = 60
BETA_TRANSCRIPTION_TTL = 600


def _ttl(body: BetaSessionBody | BetaTranscriptionSessionBody, default: int) -> int:
    secret = body.client_secret
    if secret is None:
        return default
    expiry = secret.expires_after if isinstance(secret, BetaClientSecret) else secret.expires_at
    return expiry.seconds if expiry is not None else default


async def create_session(request: web.Request) -> web.Response:
    return await _create(request, BetaSessionBody, "sessions.create", BETA_SESSION_TTL)


async def create_transcription_session(request: web.Request) -> web.Response:
    return await _create(
        request, BetaTranscriptionSessionBody, "transcription_sessions.create", BETA_TRANSCRIPTION_TTL
    )


async def _create(
    request: web.Request,
    model: type[BetaSessionBody] | type[BetaTranscriptionSessionBody],
    action: str,
    default_ttl: int,
) -> web.Response:
    services = request.app[SERVICES]
    principal = await authenticate(request, action)
    body = await read_json(request, model)
    ga = beta_session_to_ga(body)
    ga_request: RealtimeSessionRequest | TranscriptionSessionRequest
    if ga["type"] == "realtime":
        ga_request = validate(RealtimeSessionRequest, ga)
    else:
        ga_request = validate(TranscriptionSessionRequest, ga)
    await authorize(request, principal, action, minting_resource(services, principal, ga_request))
    minted = await mint_client_secret(
        services, principal, ga_request, _ttl(body, default_ttl), param_prefix=""
    )
    temperature = getattr(body, "temperature", None) or BETA_DEFAULT_TEMPERATURE
    rendered = ga_session_to_beta(minted.session.config, minted.session.id, 0, temperature)
    rendered["client_secret"] = {"value": minted.value, "expires_at": minted.expires_at}
    audit_success(request, action, {"id": minted.session.id})
    return web.json_response(rendered)
