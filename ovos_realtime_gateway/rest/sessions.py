"""`GET /v1/realtime/sessions/{session_id}` (an ovos-realtime extension): a stored session.

Sessions of another project answer 404, exactly like ids that never existed.
"""

from __future__ import annotations

from aiohttp import web

from ..protocol import errors
from ..protocol.session_config import render_session
from ..services import SERVICES
from .guard import guard


async def retrieve_session(request: web.Request) -> web.Response:
    services = request.app[SERVICES]
    principal = await guard(request, "sessions.read")
    session_id = request.match_info["session_id"]
    record = await services.store.get_session(session_id)
    if record is None or record.project_id != principal.project_id:
        raise errors.not_found(f"No session found with id '{session_id}'.")
    body = render_session(record.config, record.id, expires_at=record.expires_at or 0)
    body["status"] = record.status
    body["created_at"] = record.created_at
    return web.json_response(body)
