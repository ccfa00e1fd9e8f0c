"""Waiting on a condition with a generous deadline, never on the clock alone.

A check is polled every `every` seconds until it holds or the deadline passes; on time-out the
failure names what was awaited (and, if given, what was seen last).
"""

from __future__ import annotations

import asyncio
import inspect
import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def wait_until(check: Callable[[], T], what: str, timeout: float = 60.0, every: float = 0.1) -> T:
    """Poll `check` (off any event loop) until it returns something truthy; returns that."""
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(every)


async def wait_until_async(
    check: Callable[[], object], what: str, timeout: float = 60.0, every: float = 0.1
) -> None:
    """Poll `check` (a function, or one returning an awaitable) on the loop until it is truthy."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        result = check()
        if inspect.isawaitable(result):
            result = await result
        if result:
            return
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        await asyncio.sleep(every)
