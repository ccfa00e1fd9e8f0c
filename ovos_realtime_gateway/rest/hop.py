"""The receiving end of the signed hop between replicas (`cluster/hop.py`): a request with hop
headers is served only when their signature is right and fresh; then the gate takes the client's
address from the hop and does not count the request against the rate limit again. Hop headers
without a valid signature are refused (401), never believed."""

from __future__ import annotations

import logging

from aiohttp import web
from aiohttp.typedefs import Handler

from ..cluster.hop import HEADERS, HopRefused
from ..protocol import errors
from ..security.gate import HOP_CLIENT
from ..services import SERVICES

log = logging.getLogger("ovos_realtime.cluster")


@web.middleware
async def verify_hop(request: web.Request, handler: Handler) -> web.StreamResponse:
    if not any(name in request.headers for name in HEADERS):
        return await handler(request)
    body = await request.read() if request.body_exists else b""
    signer = request.app[SERVICES].forwarder.signer
    try:
        hop = signer.verify(request.method, request.raw_path, body, request.headers)
    except HopRefused as exc:
        log.warning("refused a request from %s with hop headers: %s", request.remote, exc)
        raise errors.ApiError(
            401, "This request carries replica hop headers that are not validly signed.", code="invalid_hop"
        ) from None
    assert hop is not None
    request[HOP_CLIENT] = hop.client
    return await handler(request)
