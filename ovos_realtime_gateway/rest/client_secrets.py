"""`POST /v1/realtime/client_secrets`: the GA way to mint an ephemeral `ek_` key."""

from __future__ import annotations

from aiohttp import web

from ..protocol.session_config import render_session
from ..protocol.session_models import ClientSecretCreateBody
from ..services import SERVICES
from .access import audit_success, authenticate, authorize
from .bodies import read_json
from .minting import mint_client_secret, minting_resource


async def create_client_secret(request: web.Request) -> web.Response:
    services = request.app[SERVICES]
    principal = await authenticate(request, "client_secrets.create")
    body = await read_json(request, ClientSecretCreateBody)
    target = minting_resource(services, principal, body.session)
    await authorize(request, principal, "client_secrets.create", target)
    ttl = body.expires_after.seconds if body.expires_after else services.settings.client_secret_ttl_seconds
    minted = await mint_client_secret(
        services, principal, body.session, ttl, max_session_seconds=body.max_session_seconds
    )
    audit_success(request, "client_secrets.create", {"id": minted.session.id})
    return web.json_response(
        {
            "value": minted.value,
            "expires_at": minted.expires_at,
            "session": render_session(minted.session.config, minted.session.id, expires_at=0),
        }
    )
