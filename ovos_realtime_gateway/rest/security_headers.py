"""Security headers on every response the application prepares (REST answers, errors, the talk
page, WebSocket handshakes): no MIME sniffing, no referrer, no framing, a Content-Security-Policy
that allows nothing (a page that needs more, the talk page, sets its own), and HSTS when the
gateway serves TLS."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from aiohttp import web

NOTHING_ALLOWED = "default-src 'none'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
ResponseHook = Callable[[web.Request, web.StreamResponse], Awaitable[None]]


def security_headers(hsts_max_age: int) -> ResponseHook:
    """An `on_response_prepare` hook; `hsts_max_age` 0 sends no Strict-Transport-Security."""
    fixed = {
        "X-Content-Type-Options": "nosniff",
        "Referrer-Policy": "no-referrer",
        "X-Frame-Options": "DENY",
        "Content-Security-Policy": NOTHING_ALLOWED,
    }
    if hsts_max_age > 0:
        fixed["Strict-Transport-Security"] = f"max-age={hsts_max_age}"

    async def add(request: web.Request, response: web.StreamResponse) -> None:
        for name, value in fixed.items():
            response.headers.setdefault(name, value)

    return add
