"""Guards around every async test: it fails if it leaves tasks running on its loop, or if a call
that waits on something else (a socket, a sleep, a lock, sqlite, the console) runs on the loop.

Blocking calls are caught by `blockbuster` (it patches the functions and raises `BlockingError`
when one is called from a thread whose event loop is running). Local file reads and metadata
(`open`, `os.stat`, ...) are left out: tests read small fixtures and logs inline, and the gateway's
rule is about I/O of size, which these guards cannot tell apart from a 1 KB read. sqlite is
watched in our packages' code only (the store has its own thread): a test reading the copy of a
store it made is not a call on the gateway's loop.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

from blockbuster import BlockBuster, BlockingError

# What blockbuster watches here: everything that waits on another party or on time ...
WATCHED_PREFIXES = ("time.", "socket.", "ssl.", "threading.", "builtins.")
# ... and sqlite, when our packages call it
OUR_PACKAGES = ["ovos_realtime_gateway", "ovos_realtime_listener_plugin", "ovos_realtime_tts_plugin"]

# Blocking allowed in these test helpers (file, function) -> why.
ALLOWED: dict[tuple[str, str], str] = {
    ("test/speech.py", "_espeak"): "makes a test's input audio (a local espeak-ng run) before it is sent",
    ("test/speech.py", "_flite"): "makes a test's input audio (a local flite run) before it is sent",
    # aiortc's own: a receiver that stops joins its decoder thread (already told to stop) on the loop
    ("aiortc/rtcrtpreceiver.py", "__stop_decoder"): "aiortc joins its decoder thread when a peer closes",
}

# Loop iterations a task is given to finish after its test (a task cancelled by a fixture's
# teardown, not yet run to its end); this counts iterations, it does not wait on the clock.
SETTLE_ITERATIONS = 5


# What tests made on the loop and did not close themselves (engine sessions of the harness): closed
# at the test's end, before the leak check, so only tasks that outlive their owner's close count.
_closers: list[Callable[[], Awaitable[None]]] = []


def close_at_test_end(close: Callable[[], Awaitable[None]]) -> None:
    """`close` is awaited when the running test ends (before its tasks are checked)."""
    _closers.append(close)


@functools.cache
def blockbuster() -> BlockBuster:
    """The BlockBuster watching the waiting calls only (built once: activated around each test)."""
    buster = BlockBuster()
    ours = BlockBuster(OUR_PACKAGES)
    buster.functions = {
        **{name: f for name, f in buster.functions.items() if name.startswith(WATCHED_PREFIXES)},
        **{name: f for name, f in ours.functions.items() if name.startswith("sqlite3.")},
    }
    for function in buster.functions.values():
        for filename, name in ALLOWED:
            function.can_block_in(filename, name)
    return buster


def describe(task: asyncio.Task[Any]) -> str:
    return f"{task.get_name()} ({task.get_coro()!r})"


async def guarded_loop(watch_blocking: bool = True) -> AsyncIterator[None]:
    """Run one test under both guards (the blocking one unless told not to); fails at teardown
    naming what it found."""
    loop = asyncio.get_running_loop()
    before = asyncio.all_tasks(loop)
    blocked: list[str] = []
    previous_handler = loop.get_exception_handler()

    def handler(event_loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        # a BlockingError raised inside a callback or an unawaited task lands here, not in the test
        if isinstance(context.get("exception"), BlockingError):
            blocked.append(f"{context['exception']} ({context.get('message', '')})")
            event_loop.default_exception_handler(context)  # logged; counted here, by this guard only
        elif previous_handler is None:
            event_loop.default_exception_handler(context)
        else:
            previous_handler(event_loop, context)

    loop.set_exception_handler(handler)
    buster = blockbuster()
    if watch_blocking:
        buster.activate()
    try:
        yield
    finally:
        if watch_blocking:
            buster.deactivate()
        closers = list(_closers)
        _closers.clear()
    for close in closers:
        await close()
    for _ in range(SETTLE_ITERATIONS):
        await asyncio.sleep(0)
    this = asyncio.current_task()
    leaked = [t for t in asyncio.all_tasks(loop) if t not in before and t is not this and not t.done()]
    for task in leaked:
        task.cancel()
    if leaked:
        await asyncio.wait(leaked, timeout=10)
    loop.set_exception_handler(previous_handler)
    problems = [f"blocking call on the event loop: {b}" for b in blocked]
    problems += [f"task left running after the test: {describe(t)}" for t in leaked]
    if problems:
        raise AssertionError("\n".join(problems))
