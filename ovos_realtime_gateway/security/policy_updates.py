"""The policy an operator applied to every gateway on one store (`ovos-realtime policy apply`),
picked up by each of them: at start (the stored policy wins over `policy_file`), at once when the
cluster's news says so, and otherwise by polling the store every `revocation_check_seconds`.

A stored policy that does not compile here keeps the one deciding now: logged, audited
(`policy.load` `failed`) and not tried again until a newer version is stored."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

from ..store import AuditEntry, Store, StoredPolicy
from .policy import PolicyEngine, PolicyError

log = logging.getLogger("ovos_realtime.policy")


class PolicyUpdates:
    """Keeps `engine` deciding with the newest policy stored in `store`."""

    def __init__(
        self,
        store: Store,
        engine: PolicyEngine,
        audit: Callable[[AuditEntry], None],
        deciding: Callable[[int], None] = lambda version: None,
    ) -> None:
        self._store = store
        self._engine = engine
        self._audit = audit
        self._deciding = deciding  # told the stored version that decides now (a metric)
        self.version = 0  # the stored version seen last (0: none; the configured policy decides)
        self._lock = asyncio.Lock()

    async def check(self) -> bool:
        """Load the newest stored policy if there is one this gateway has not seen; whether the
        policy deciding now changed. Raises when the store cannot be read."""
        async with self._lock:
            stored = await self._store.latest_policy(self.version)
            if stored is None:
                return False
            self.version = stored.version  # a policy that fails here is not retried until a newer one
            return await self._load(stored)

    async def _load(self, stored: StoredPolicy) -> bool:
        text = stored.policy if stored.policy is not None else self._engine.configured_text
        what = f"policy version {stored.version}" + (" (policy_file)" if stored.policy is None else "")
        if text == self._engine.text:
            log.info("%s is the policy deciding already", what)
            self._deciding(stored.version)
            return False
        try:
            await self._engine.swap(text)
        except PolicyError as exc:
            log.error("%s was not loaded, the previous policy still decides: %s", what, exc)
            self._record(stored, "failed", {"error": str(exc)})
            return False
        log.info(
            "%s decides from now on (applied %s)",
            what,
            time.strftime("%H:%M:%S", time.gmtime(stored.applied_at)),
        )
        self._record(stored, "loaded", {})
        self._deciding(stored.version)
        return True

    def _record(self, stored: StoredPolicy, decision: str, extra: dict[str, str]) -> None:
        detail = {"version": stored.version, "sha256": stored.sha256, **extra}
        status = 200 if decision == "loaded" else 500
        self._audit(
            AuditEntry(time.time(), None, "policy.load", decision, status, principal="gateway", detail=detail)
        )

    async def watch(self, interval_s: float) -> None:
        """Forever: every `interval_s`, check the store (the fallback when no news arrives)."""
        while True:
            await asyncio.sleep(interval_s)
            try:
                await self.check()
            except Exception:  # the store is busy or gone: try again next round
                log.exception("could not check the stored policy")
