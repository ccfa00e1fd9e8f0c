"""The talk page (`GET /talk`) and the secret it calls with (`POST /talk/client_secret`).

Both exist only when `talk_page` is on. The page has no key: the gateway mints a short-lived
`ek_` secret for `talk_page_project`, through the same rate limit, policy and audit as any request.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import json
import re
from importlib import resources

from aiohttp import web

from ..protocol import errors
from ..protocol.session_config import render_session
from ..protocol.session_models import RealtimeSessionRequest
from ..security.auth import Principal
from ..services import SERVICES
from .access import audit_success, guard
from .minting import mint_client_secret, minting_resource
from .security_headers import NOTHING_ALLOWED

SECRET_TTL_SECONDS = 60
ACTION = "talk_page.client_secret"


@functools.cache
def _template() -> str:
    return resources.files("ovos_realtime_gateway.talk_page").joinpath("talk.html").read_text()


def _hashes(html: str, tag: str) -> str:
    """CSP source expressions allowing exactly the page's inline `<tag>` elements."""
    bodies = re.findall(rf"<{tag}>(.*?)</{tag}>", html, re.DOTALL)
    return " ".join(
        f"'sha256-{base64.b64encode(hashlib.sha256(b.encode()).digest()).decode()}'" for b in bodies
    )


@functools.cache
def _page(ice_servers: str) -> tuple[str, str]:
    """The page with its ICE servers, and its Content-Security-Policy: its own inline script and
    style (by hash), fetches to its own origin (secrets, calls); nothing else. WebRTC media is
    not a fetch: CSP does not govern it."""
    html = _template().replace("__ICE_SERVERS__", ice_servers)
    csp = (
        f"script-src {_hashes(html, 'script')}; style-src {_hashes(html, 'style')}; "
        f"connect-src 'self'; {NOTHING_ALLOWED}"
    )
    return html, csp


def _enabled(request: web.Request) -> None:
    if not request.app[SERVICES].settings.talk_page:
        raise errors.not_found("The talk page is not enabled on this gateway (setting `talk_page`).")


async def talk_page(request: web.Request) -> web.Response:
    _enabled(request)
    servers = [
        {k: v for k, v in s.model_dump().items() if v is not None}
        for s in request.app[SERVICES].secrets.ice_servers()
    ]
    # `<` escaped: a configured value cannot close the script element it is written into
    html, csp = _page(json.dumps(servers).replace("<", "\\u003c"))
    headers = {"Cache-Control": "no-store", "Content-Security-Policy": csp}
    return web.Response(text=html, content_type="text/html", headers=headers)


async def talk_client_secret(request: web.Request) -> web.Response:
    _enabled(request)
    services = request.app[SERVICES]
    project, _ = await services.store.ensure_project(services.settings.talk_page_project)
    principal = Principal("talk_page", project.id, "talk_page")
    session = RealtimeSessionRequest.model_validate(
        {
            "type": "realtime",
            "audio": {
                "input": {
                    "transcription": {"model": services.settings.transcription_models[0]},
                    "turn_detection": {"type": "server_vad", "silence_duration_ms": 500},
                }
            },
        }
    )
    await guard(request, ACTION, minting_resource(services, principal, session), principal=principal)
    minted = await mint_client_secret(services, principal, session, SECRET_TTL_SECONDS)
    audit_success(request, ACTION, {"id": minted.session.id})
    return web.json_response(
        {
            "value": minted.value,
            "expires_at": minted.expires_at,
            "session": render_session(minted.session.config, minted.session.id, expires_at=0),
        }
    )
