"""What the `ovos-realtime` commands share: the program's name, the one-line error, and the store
every command opens: the one the settings name (`store_url`, its `store_password` read from its
reference first)."""

from __future__ import annotations

import os
import shutil
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import TypeVar

from .security.secret_refs import SecretResolver
from .settings import GatewaySettings
from .store import Store, store_for

T = TypeVar("T")
PROG = "ovos-realtime"


def runnable_prog() -> str:
    """This command as the user can type it in their shell: `ovos-realtime` when that name finds
    this installation on PATH, else its script's path (`.venv/bin/ovos-realtime` from a clone)."""
    script = Path(sys.executable).with_name(PROG)
    found = shutil.which(PROG)
    if found is not None and Path(found).resolve() == script.resolve():
        return PROG
    if not script.exists():
        return f"{sys.executable} -m ovos_realtime_gateway"
    relative = os.path.relpath(script)
    return relative if not relative.startswith("..") else str(script)


class CliError(Exception):
    """An error worth one line on stderr; `code` is the exit status."""

    def __init__(self, message: str, code: int = 1) -> None:
        super().__init__(message)
        self.code = code


@asynccontextmanager
async def connected_store(settings: GatewaySettings, migrate: bool = True) -> AsyncIterator[Store]:
    """The settings' store (migrated unless told not to), closed after the block."""
    resolver = SecretResolver(settings.vault)
    password = resolver.add("store_password", settings.store_password)
    await resolver.load()
    store = store_for(settings, password)
    try:
        if migrate:
            await store.migrate()
        yield store
    finally:
        await store.close()
        resolver.close()


async def with_store(settings: GatewaySettings, action: Callable[[Store], Awaitable[T]]) -> T:
    async with connected_store(settings) as store:
        return await action(store)


def utc(ts: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(ts))
