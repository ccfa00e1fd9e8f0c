"""`GET /v1/realtime/sessions/{session_id}` (an ovos-realtime extension): a stored session.

Sessions of another project answer 404, exactly like ids that never existed: the policy sees the
session's project and refuses it, and this module refuses it again whatever a policy says.
"""

from __future__ import annotations

from aiohttp import web

from ..protocol import errors
from ..protocol.session_config import render_session
from ..security.policy_input import resource, session_resource
from ..services import SERVICES
from .access import authenticate, authorize


async def retrieve_session(request: web.Request) -> web.Response:
    services = request.app[SERVICES]
    principal = await authenticate(request, "sessions.read")
    session_id = request.match_info["session_id"]
    not_found = errors.not_found(f"No session found with id '{session_id}'.")
    record = await services.store.get_session(session_id)
    target = resource("session", session_id)
    if record is not None:
        secret = record.client_secret_id and await services.store.get_client_secret(record.client_secret_id)
        owner_key = secret.key_id if secret else None  # the key that minted its ek_, if it had one
        target = session_resource(record.config, record.project_id, record.id, owner_key)
    await authorize(request, principal, "sessions.read", target, hidden=not_found)
    if record is None or record.project_id != principal.project_id:  # the second line
        raise not_found
    body = render_session(record.config, record.id, expires_at=record.expires_at or 0)
    body["status"] = record.status
    body["created_at"] = record.created_at
    return web.json_response(body)
