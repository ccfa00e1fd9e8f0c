"""The loop guards every async test runs under (test/loop_guards.py) catch what they are for: a
task left running, a blocking call on the loop (raised where it is made, or reported when a task
swallowed it), and nothing when the work goes to a thread.

These tests run a guarded body themselves, so the outer guard's blocking check is off for them
(`loop_may_block`); its leak check still runs.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

import pytest
from blockbuster import BlockingError

from .loop_guards import guarded_loop

pytestmark = pytest.mark.loop_may_block("each test runs a guarded body of its own")


async def guarded(body: Callable[[], Awaitable[None]]) -> str | None:
    """Run `body` under the guards; what they reported at its end (None: nothing)."""
    guard = guarded_loop()
    await anext(guard)
    await body()
    try:
        await anext(guard)
    except StopAsyncIteration:
        return None
    except AssertionError as failure:
        return str(failure)
    raise AssertionError("the guard yielded twice")


async def test_a_task_left_running_fails_the_test_by_name() -> None:
    async def leaves_a_task() -> None:
        asyncio.get_running_loop().create_task(asyncio.Event().wait(), name="forgotten-reader")

    report = await guarded(leaves_a_task)
    assert report is not None and "task left running after the test: forgotten-reader" in report


async def test_a_blocking_sleep_on_the_loop_raises_where_it_is_made() -> None:
    async def sleeps_on_the_loop() -> None:
        with pytest.raises(BlockingError, match="time.sleep"):
            time.sleep(0.01)  # noqa: ASYNC251 - the fault under test

    assert await guarded(sleeps_on_the_loop) is None


async def test_a_blocking_call_a_task_swallowed_is_still_reported() -> None:
    async def blocks_in_a_task() -> None:
        async def worker() -> None:
            time.sleep(0.01)  # noqa: ASYNC251 - the fault under test

        task = asyncio.get_running_loop().create_task(worker(), name="blocking-worker")
        await asyncio.wait([task])
        task.get_loop().call_exception_handler({"message": "unretrieved", "exception": task.exception()})

    report = await guarded(blocks_in_a_task)
    assert report is not None and "blocking call on the event loop: Blocking call to time.sleep" in report


async def test_the_same_work_on_a_thread_passes() -> None:
    async def sleeps_on_a_thread() -> None:
        await asyncio.to_thread(time.sleep, 0.01)

    assert await guarded(sleeps_on_a_thread) is None
