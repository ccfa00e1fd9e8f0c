"""Which live things (sessions, sidebands, calls) stand on which credentials, so that revoking a
key reaches them, not only the next request.

`keys revoke` and `keys rotate` write to the store from another process. With a cluster, they
also publish the news (cluster/news.py) and every replica `check`s the keys named at once; in any
case `watch` asks the store every `interval_s` which of the held keys are no longer usable
(revoked, or past a rotation's grace) and ends what holds them. A session opened with an `ek_`
holds the key that minted it too.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Collection, Iterable

from .auth import Principal

log = logging.getLogger("ovos_realtime.security")
OnRevoked = Callable[[str], object]  # told the credential id that went; ends the live thing
Unusable = Callable[[Iterable[str], float], Awaitable[set[str]]]  # Store.unusable_keys


class Hold:
    """One live thing's claim on credentials; `revoked` is set when one of them goes (and
    `on_revoked`, if given, is told which); `release` when the thing ends (idempotent)."""

    def __init__(
        self, owner: LiveCredentials, credentials: frozenset[str], on_revoked: OnRevoked | None
    ) -> None:
        self._owner = owner
        self.credentials = credentials
        self.on_revoked = on_revoked
        self.revoked = asyncio.Event()

    def release(self) -> None:
        self._owner._holds.discard(self)


class LiveCredentials:
    def __init__(self) -> None:
        self._holds: set[Hold] = set()

    def hold(self, principal: Principal, on_revoked: OnRevoked | None = None) -> Hold:
        """Register a live thing opened by `principal` (its key, and the key behind an `ek_`)."""
        held = frozenset(c for c in (principal.credential_id, principal.key_id) if c)
        hold = Hold(self, held, on_revoked)
        self._holds.add(hold)
        return hold

    def held(self) -> set[str]:
        return {c for hold in self._holds for c in hold.credentials}

    def revoke(self, gone: Collection[str]) -> int:
        """End every live thing that holds one of `gone`; returns how many were told."""
        told = 0
        for hold in list(self._holds):
            lost = hold.credentials & set(gone)
            if lost:
                hold.release()
                hold.revoked.set()
                if hold.on_revoked is not None:
                    hold.on_revoked(min(lost))
                told += 1
        return told

    async def check(self, unusable: Unusable, among: Collection[str] | None = None) -> int:
        """Ask the store now which held keys (of `among`, when given) are no longer usable, and end
        what holds them; how many live things were told. Raises when the store cannot be read."""
        held = self.held() if among is None else self.held() & set(among)
        if not held:
            return 0
        gone = await unusable(held, time.time())
        if not gone:
            return 0
        ended = self.revoke(gone)
        log.info("keys %s are revoked or expired: ended %d live sessions/calls", sorted(gone), ended)
        return ended

    async def watch(self, unusable: Unusable, interval_s: float) -> None:
        """Forever: every `interval_s`, end what holds a key the store says is no longer usable."""
        while True:
            await asyncio.sleep(interval_s)
            try:
                await self.check(unusable)
            except Exception:  # the store is busy or gone: try again next round
                log.exception("could not check the live sessions' keys")
