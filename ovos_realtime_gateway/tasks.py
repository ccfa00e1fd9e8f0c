"""Named tasks with one owner: `TaskSupervisor` starts them, logs the ones that fail, and on
`close()` cancels and awaits every task still running, so nothing an owner started outlives it.

Every long-lived object that starts tasks (the app, a session, a call, a transport) owns one
supervisor; `asyncio.create_task` is not called anywhere else.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine
from typing import Any, TypeVar

T = TypeVar("T")

log = logging.getLogger("ovos_realtime.tasks")


class TaskSupervisor:
    """The tasks of one owner (`name`), each named `<owner>:<task>`."""

    def __init__(self, name: str) -> None:
        self.name = name
        self._tasks: set[asyncio.Task[Any]] = set()
        self._closed = False

    def spawn(self, name: str, coro: Coroutine[Any, Any, T]) -> asyncio.Task[T]:
        """Start `coro` as a task named `<owner>:<name>`; after `close()` it is refused."""
        if self._closed:
            coro.close()
            raise RuntimeError(f"{self.name} is closed; cannot start {name}")
        task = asyncio.get_running_loop().create_task(coro, name=f"{self.name}:{name}")
        self._tasks.add(task)
        task.add_done_callback(self._finished)
        return task

    @property
    def running(self) -> list[str]:
        """The names of the tasks still running (for logs and tests)."""
        return sorted(task.get_name() for task in self._tasks if not task.done())

    async def close(self) -> None:
        """Cancel every task still running and wait until all have ended."""
        self._closed = True
        await cancel_all(list(self._tasks))

    def _finished(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("task %s failed", task.get_name(), exc_info=task.exception())


async def cancel_all(tasks: list[asyncio.Task[Any]]) -> None:
    """Cancel `tasks` and wait until they have ended (their cancellation is not an error)."""
    current = asyncio.current_task()
    tasks = [task for task in tasks if task is not current]
    for task in tasks:
        task.cancel()
    for task in tasks:
        try:
            await task
        except asyncio.CancelledError:
            pass
        except Exception:
            log.warning("task %s ended with an error while stopping", task.get_name(), exc_info=True)


async def stop_task(task: asyncio.Task[Any] | None) -> None:
    """Cancel `task` and wait until it has ended (its cancellation is not an error)."""
    if task is not None:
        await cancel_all([task])
