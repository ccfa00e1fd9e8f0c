"""A realtime socket's sending side: the writer (outbox → socket) and a close that is bounded in
time, whatever the client does."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

from aiohttp import web

from ..tasks import TaskSupervisor
from .outbox import Outbox

log = logging.getLogger("ovos_realtime.transport")

CLOSE_TIMEOUT_S = 10.0
"""How long a closing socket gets for the close handshake before its connection is dropped."""


async def write(ws: web.WebSocketResponse, outbox: Outbox) -> None:
    """Send the outbox's messages until it is closed (or the client has gone: not an error)."""
    with contextlib.suppress(ConnectionError):
        while True:
            message = await outbox.get()
            if message is None:
                return
            await ws.send_str(message)


async def close_bounded(
    request: web.Request, ws: web.WebSocketResponse, code: int, message: bytes, tasks: TaskSupervisor
) -> None:
    """Close with `code`, and make sure the TCP connection goes within CLOSE_TIMEOUT_S. A client
    that stopped reading has megabytes queued in front of the close frame: it never answers the
    close, and a graceful close of the transport waits to flush a buffer that never drains (a
    soak saw such a connection held ESTABLISHED for 12 minutes). So whatever is still unsent at
    the deadline is dropped with the connection. A client that reads in that time gets the close
    frame and its code (1008 for a full send queue). `asyncio.wait`, not `wait_for`: aiohttp's
    close does not give way to cancellation. The close runs as a task of `tasks`, the socket's."""
    deadline = asyncio.get_running_loop().time() + CLOSE_TIMEOUT_S
    if not ws.closed:
        closing = tasks.spawn("close", _close(ws, code, message))
        closing.add_done_callback(_ignore_outcome)
        await asyncio.wait({closing}, timeout=CLOSE_TIMEOUT_S)
        if not closing.done():
            _drop(request)
            await asyncio.wait({closing}, timeout=1.0)  # a close on a dead transport ends at once
            closing.cancel()
            return
    transport = request.transport
    while transport is not None and transport.get_write_buffer_size() > 0:
        if asyncio.get_running_loop().time() >= deadline:
            _drop(request)
            return
        await asyncio.sleep(0.1)


async def _close(ws: web.WebSocketResponse, code: int, message: bytes) -> None:
    with contextlib.suppress(ConnectionError):  # a close on a dropped connection is expected to fail
        await ws.close(code=code, message=message)


def _drop(request: web.Request) -> None:
    transport = request.transport
    if transport is not None:
        log.info(
            "%s: the client took nothing for %.0f s; dropping its connection", request.path, CLOSE_TIMEOUT_S
        )
        transport.abort()


async def end_writer(
    request: web.Request,
    ws: web.WebSocketResponse,
    writer: asyncio.Task[None],
    code: int,
    message: bytes,
    tasks: TaskSupervisor,
) -> None:
    """The writer was cancelled; one blocked in aiohttp's drain (a client that stopped reading)
    does not give way to cancellation, so it is given a moment, then the socket is closed (and
    dropped if need be), which ends it."""
    await asyncio.wait({writer}, timeout=1.0)
    await close_bounded(request, ws, code, message, tasks)
    await asyncio.wait({writer}, timeout=1.0)
    writer.add_done_callback(_ignore_outcome)


def _ignore_outcome(task: asyncio.Future[Any]) -> None:
    if not task.cancelled():
        task.exception()  # retrieved: a close that failed on a dropped connection is expected
