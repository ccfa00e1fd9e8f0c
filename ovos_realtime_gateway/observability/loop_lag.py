"""Event-loop lag: how late a timer fires, sampled forever (`ovos_realtime_event_loop_lag_seconds`).

Work that blocks the loop (a plugin call or file I/O left on it) delays every session's audio and
events alike; this is how an operator sees it without a profiler.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

INTERVAL_S = 0.5


async def watch_loop_lag(observe: Callable[[float], None], interval_s: float = INTERVAL_S) -> None:
    """Sleep `interval_s`, then observe how much later than asked the loop woke us; until cancelled."""
    loop = asyncio.get_running_loop()
    while True:
        due = loop.time() + interval_s
        await asyncio.sleep(interval_s)
        observe(max(0.0, loop.time() - due))
