"""Request context for every REST response: request id, timing and rate-limit headers, metrics,
and the translation of every failure into OpenAI's error envelope (never a traceback)."""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable

from aiohttp import web

from ..log import access_log, current_project, current_request_id
from ..observability.tracing import NO_SPAN, Span, Tracing
from ..protocol import errors, ids
from ..services import SERVICES
from ..store import StoreUnavailable
from .access import PRINCIPAL, RATE_STATUS

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
    project_token = current_project.set(None)  # the guard names it once the caller is known
    services = request.app[SERVICES]
    span = _server_span(services.tracing, request, request_id)
    started = time.perf_counter()
    try:
        with span.activated():
            response = await _handle(request, handler)
        elapsed = time.perf_counter() - started
        if not response.prepared:
            _decorate(request, response, request_id, elapsed)
        route = _route_name(request)
        metrics = services.metrics
        metrics.http_requests.labels(route=route, method=request.method, status=str(response.status)).inc()
        metrics.http_latency.labels(route=route, method=request.method).observe(elapsed)
        span.set(http__response__status_code=response.status, ovos_realtime__project=current_project.get())
        if response.status >= 500:
            span.fail(f"HTTP {response.status}")
        access_log.info(
            "%s %s %s %s %.1fms",
            request.remote,
            request.method,
            request.path,
            response.status,
            elapsed * 1000,
        )
        return response
    finally:
        span.end()
        current_project.reset(project_token)
        current_request_id.reset(token)


async def _handle(request: web.Request, handler: Handler) -> web.StreamResponse:
    """The handler's response; every failure becomes OpenAI's error envelope."""
    try:
        return await handler(request)
    except errors.ApiError as exc:
        return error_response(exc)
    except web.HTTPException as exc:
        if exc.status < 400:
            raise
        return error_response(_from_http_exception(request, exc))
    except StoreUnavailable as exc:  # PostgreSQL down, sqlite locked: try again shortly, no traceback
        log.warning("%s %s: %s", request.method, request.path, exc)
        return error_response(errors.store_unavailable())
    except Exception:
        log.exception("unhandled error in %s %s", request.method, request.path)
        return error_response(errors.internal_error())


def _server_span(tracing: Tracing, request: web.Request, request_id: str) -> Span:
    """The request's span (nothing at all when tracing is off)."""
    if not tracing.enabled:
        return NO_SPAN
    route = _route_name(request)
    return tracing.server_span(
        f"{request.method} {route}",
        request.headers,
        http__request__method=request.method,
        http__route=route,
        ovos_realtime__request_id=request_id,
    )


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
