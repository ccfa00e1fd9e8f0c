"""Liveness, readiness, metrics and the OpenAPI document: operational routes, open but for /metrics
when `metrics_token` is set."""

from __future__ import annotations

import asyncio
from importlib import resources
from typing import Any

import yaml
from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST

from ..security.gate import Caller
from ..services import SERVICES, GatewayServices
from ..version import __version__

STORE_PING_S = 2.0  # /healthz says "unreachable" after this long rather than wait for the store


async def healthz(request: web.Request) -> web.Response:
    """Alive (200) while the process serves, whatever the store does (a restart would not bring
    PostgreSQL back); `store` says whether it answers now."""
    services = request.app[SERVICES]
    try:
        store = "ok" if await asyncio.wait_for(services.store.ping(), STORE_PING_S) else "unreachable"
    except Exception:  # StoreUnavailable, a time-out: said, not raised
        store = "unreachable"
    return web.json_response({"status": "ok", "version": __version__, "store": store})


async def readyz(request: web.Request) -> web.Response:
    services = request.app[SERVICES]
    checks: dict[str, Any] = {}
    try:
        checks["store"] = await asyncio.wait_for(_store_check(services), STORE_PING_S)
    except asyncio.TimeoutError:  # (not the builtin TimeoutError on Python 3.10)
        checks["store"] = {
            "ok": False,
            "error": f"the store {services.store.where} is unreachable: no answer within {STORE_PING_S:g}s",
        }
    except Exception as exc:  # reported, not raised: this route says what is wrong
        checks["store"] = {"ok": False, "error": str(exc)}
    if services.pending_writes:
        checks["store"]["pending_writes"] = len(services.pending_writes)
    policy_ok, detail = await services.policy.ready()
    checks["policy"] = {"ok": policy_ok, "source": detail}
    if services.bus is not None:
        bus = services.bus
        checks["messagebus"] = {"ok": bus.connected, "url": str(bus.address)}
        if not bus.connected:
            checks["messagebus"]["error"] = bus.last_error or "connecting"
        checks["skills"] = {"ok": bus.skills_ready}
        if not bus.skills_ready:
            checks["skills"]["error"] = "ovos-core has not reported its skills ready"
    if services.vad is not None and services.vad.unavailable is not None:
        checks["vad"] = {
            "ok": False,
            "error": f"vad_plugin {services.settings.vad_plugin!r}: {services.vad.unavailable}",
        }
    if services.speech_status:
        failed = {name: state for name, state in services.speech_status.items() if state != "ready"}
        checks["speech"] = {"ok": not failed, **({"pending": failed} if failed else {})}
    if services.drain.draining:  # the balancer stops sending new sessions here
        checks["drain"] = {
            "ok": False,
            "error": "the gateway is shutting down: it takes no new sessions or calls",
            "live": services.drain.live,
            "remaining_seconds": round(services.drain.remaining_seconds(), 1),
        }
    ready = all(check["ok"] for check in checks.values())
    return web.json_response(
        {"status": "ready" if ready else "unready", "checks": checks}, status=200 if ready else 503
    )


async def _store_check(services: GatewayServices) -> dict[str, Any]:
    version = await services.store.schema_version()
    return {"ok": await services.store.ping(), "schema_version": version}


def export_readiness(services: GatewayServices) -> None:
    """What /readyz checks without I/O, as `ovos_realtime_ready{check}` for alerts."""
    ready = services.metrics.ready
    if services.bus is not None:
        ready.labels(check="messagebus").set(int(services.bus.connected))
        ready.labels(check="skills").set(int(services.bus.skills_ready))
    if services.speech_status:
        ready.labels(check="speech").set(int(all(s == "ready" for s in services.speech_status.values())))
    ready.labels(check="vad").set(int(services.vad is None or services.vad.unavailable is None))


async def metrics(request: web.Request) -> web.Response:
    """The Prometheus exposition; with `metrics_token` set, only for `Authorization: Bearer <it>`."""
    services = request.app[SERVICES]
    token = services.secrets.metrics_token
    if token is not None:
        await services.gate.check_token(Caller.of(request), "metrics.read", token.value)
    export_readiness(services)
    body = services.metrics.render()
    response = web.Response(body=body)
    response.headers["Content-Type"] = CONTENT_TYPE_LATEST
    return response


def openapi_text() -> str:
    """The shipped document (the default settings)."""
    return resources.files(__package__).joinpath("openapi.yaml").read_text()


SHIPPED_SERVER = "- url: http://127.0.0.1:8080\n"


async def openapi(request: web.Request) -> web.Response:
    """This gateway's document: the shipped one, with the configured model names and, as its
    server, the origin the request came to (so a generated client calls this gateway)."""
    services = request.app[SERVICES]
    if services.openapi_text is None:
        from .openapi import render

        services.openapi_text = render(services.settings)
    server = yaml.safe_dump([{"url": f"{request.scheme}://{request.host}"}])
    text = services.openapi_text.replace(SHIPPED_SERVER, server, 1)
    return web.Response(text=text, content_type="application/yaml")
