"""The live calls of one gateway, found by id within the caller's project only. Owned by the
services (a call registers itself; `calls/` implements `LiveCall`), so they need not import `calls/`."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any, Protocol

from .security.policy_input import Resource, resource


class LiveCall(Protocol):
    id: str
    project_id: str

    def end(self, reason: str) -> asyncio.Task[None]: ...

    def policy_resource(self, config: dict[str, Any] | None = None, **attributes: Any) -> Resource: ...


class CallRegistry:
    def __init__(self) -> None:
        self._calls: dict[str, LiveCall] = {}
        self.on_removed: list[Callable[[], None]] = []  # told when a call has left (the drain waits)

    def __len__(self) -> int:
        return len(self._calls)

    def add(self, call: LiveCall) -> None:
        self._calls[call.id] = call

    def remove(self, call: LiveCall) -> None:
        if self._calls.get(call.id) is call:
            del self._calls[call.id]
            for removed in self.on_removed:
                removed()

    def policy_resource(self, call_id: str, operation: str, config: dict[str, Any] | None = None) -> Resource:
        """The call `call_id` as the policy sees it, whichever project it belongs to (the policy
        decides on its project; `find` then keeps to the caller's)."""
        call = self._calls.get(call_id)
        if call is None:
            return resource("call", call_id, operation=operation)
        return call.policy_resource(config, operation=operation)

    def find(self, call_id: str, project_id: str) -> LiveCall | None:
        """The call, if it exists and belongs to `project_id` (another project's call is not found)."""
        call = self._calls.get(call_id)
        return call if call is not None and call.project_id == project_id else None

    async def end_all(self, reason: str = "gateway_stopping") -> None:
        await asyncio.gather(
            *(call.end(reason) for call in list(self._calls.values())), return_exceptions=True
        )
