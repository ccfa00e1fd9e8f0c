"""Request context for every REST response: request id, timing and rate-limit headers, metrics,
and the translation of every failure into OpenAI's error envelope (never a traceback)."""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable

from aiohttp import web

from ..log import access_log, current_request_id
from ..protocol import errors, ids
from ..services import SERVICES
from .guard import PRINCIPAL, RATE_STATUS

log = logging.getLogger("ovos_realtime.rest")
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
OPENAI_VERSION = "2020-10-01"


def error_response(exc: errors.ApiError) -> web.Response:
    response = web.json_response(exc.body(), status=exc.status)
    response.headers.update(exc.headers)
    if exc.status < 500 and exc.status not in (408, 409, 429):
        # deterministic failures: tell the SDKs not to retry them
        response.headers["x-should-retry"] = "false"
    return response


def _from_http_exception(request: web.Request, exc: web.HTTPException) -> errors.ApiError:
    if isinstance(exc, web.HTTPNotFound):
        return errors.invalid_url(request.method, request.path)
    if isinstance(exc, web.HTTPMethodNotAllowed):
        return errors.method_not_allowed(request.method, request.path, exc.allowed_methods)
    if isinstance(exc, web.HTTPRequestEntityTooLarge):
        return errors.body_too_large(request.client_max_size)
    return errors.ApiError(exc.status, exc.reason or "Request failed.")


def _route_name(request: web.Request) -> str:
    resource = request.match_info.route.resource
    return resource.canonical if resource is not None else "unmatched"


@web.middleware
async def request_context(request: web.Request, handler: Handler) -> web.StreamResponse:
    request_id = ids.request_id()
    token = current_request_id.set(request_id)
    started = time.perf_counter()
    try:
        try:
            response = await handler(request)
        except errors.ApiError as exc:
            response = error_response(exc)
        except web.HTTPException as exc:
            if exc.status < 400:
                raise
            response = error_response(_from_http_exception(request, exc))
        except Exception:
            log.exception("unhandled error in %s %s", request.method, request.path)
            response = error_response(errors.internal_error())
        elapsed = time.perf_counter() - started
        if not response.prepared:
            _decorate(request, response, request_id, elapsed)
        route = _route_name(request)
        metrics = request.app[SERVICES].metrics
        metrics.http_requests.labels(route=route, method=request.method, status=str(response.status)).inc()
        metrics.http_latency.labels(route=route, method=request.method).observe(elapsed)
        access_log.info(
            "%s %s %s %s %.1fms",
            request.remote,
            request.method,
            request.path_qs,
            response.status,
            elapsed * 1000,
        )
        return response
    finally:
        current_request_id.reset(token)


def _decorate(request: web.Request, response: web.StreamResponse, request_id: str, elapsed: float) -> None:
    headers = response.headers
    headers["x-request-id"] = request_id
    headers["openai-processing-ms"] = str(max(1, round(elapsed * 1000)))
    headers["openai-version"] = OPENAI_VERSION
    principal = request.get(PRINCIPAL)
    if principal is not None:
        headers["openai-project"] = principal.project_id
    status = request.get(RATE_STATUS)
    if status is not None:
        headers.update(status.headers())
