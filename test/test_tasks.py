"""`TaskSupervisor`: what an owner starts ends with it, and a task that fails is logged by name."""

from __future__ import annotations

import asyncio
import logging

import pytest

from ovos_realtime_gateway.tasks import TaskSupervisor


async def test_close_cancels_and_awaits_every_running_task() -> None:
    supervisor = TaskSupervisor("session-1")
    cleaned = asyncio.Event()

    async def waits_forever() -> None:
        try:
            await asyncio.Event().wait()
        finally:
            cleaned.set()

    task = supervisor.spawn("writer", waits_forever())
    await asyncio.sleep(0)  # let it start
    assert supervisor.running == ["session-1:writer"]
    await supervisor.close()
    assert task.cancelled() and cleaned.is_set() and supervisor.running == []
    with pytest.raises(RuntimeError, match="session-1 is closed"):
        supervisor.spawn("late", waits_forever())


async def test_a_failed_task_is_logged_with_its_name_and_forgotten(caplog: pytest.LogCaptureFixture) -> None:
    supervisor = TaskSupervisor("call-7")

    async def fails() -> None:
        raise ValueError("bad frame")

    task = supervisor.spawn("reader", fails())
    with caplog.at_level(logging.ERROR, logger="ovos_realtime.tasks"):
        with pytest.raises(ValueError):
            await task
        await asyncio.sleep(0)  # done callbacks run on the next loop iteration
    assert "call-7:reader failed" in caplog.text and supervisor.running == []
    await supervisor.close()


async def test_close_from_one_of_its_own_tasks_does_not_wait_for_itself() -> None:
    supervisor = TaskSupervisor("socket")
    other = supervisor.spawn("other", asyncio.Event().wait())

    async def closes() -> str:
        await supervisor.close()
        return "closed"

    assert await asyncio.wait_for(supervisor.spawn("closer", closes()), 10) == "closed"
    assert other.cancelled()
