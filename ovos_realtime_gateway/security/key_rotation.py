"""Automatic rotation of project keys by age (`key_rotation`).

Every `check_interval_seconds` the gateway rotates each usable, not yet rotated key older than its
project's maximum age: a successor is minted, its value written to `<data_dir>/pending-keys/
<key_id>.key` (0600, in a 0700 directory) BEFORE the store records it, so a new key is never
lost; the old key keeps working for the grace period. Both are audited (`key.rotate`,
`key.create`; ids only). `ovos-realtime keys show-pending` prints pending keys for the operator
to hand out (and `--delete` removes the files).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from ..data_dir import private_dir, write_private
from ..settings import KeyRotationPolicy, KeyRotationSettings
from ..store import ApiKey, AuditEntry, Store
from . import keys
from .key_admin import IssuedKey, KeyAdminError, rotate_key

log = logging.getLogger("ovos_realtime.security")
PENDING_DIR = "pending-keys"


def pending_dir(data_dir: Path) -> Path:
    return data_dir / PENDING_DIR


def pending_path(data_dir: Path, key_id: str) -> Path:
    return pending_dir(data_dir) / f"{key_id}.key"


def rotation_due_at(key: ApiKey, policy: KeyRotationPolicy) -> float | None:
    """When `key` is due for automatic rotation under `policy` (None: never, or already rotated)."""
    max_age = policy.max_age_s
    if max_age is None or key.revoked_at is not None or key.rotated_to is not None:
        return None
    if key.expires_at is not None:  # rotating, or expired
        return None
    return key.created_at + max_age


def rotation_grace(settings: KeyRotationSettings, policy: KeyRotationPolicy, default_s: int) -> int:
    """The policy's grace, else the default policy's, else `key_rotation_grace_seconds`."""
    for grace in (policy.grace_seconds, settings.grace_seconds):
        if grace is not None:
            return grace
    return default_s


@dataclass(frozen=True, slots=True)
class Rotated:
    old: ApiKey
    new: IssuedKey
    grace_ends_at: int
    pending_file: Path


class KeyRotator:
    """Finds keys due, rotates them, and reports each project's next key expiry."""

    def __init__(
        self,
        store: Store,
        settings: KeyRotationSettings,
        default_grace_s: int,
        data_dir: Path,
        audit: Callable[[AuditEntry], None],
        next_expiry: Callable[[dict[str, float | None]], None],
    ) -> None:
        self.store = store
        self.settings = settings
        self.default_grace_s = default_grace_s
        self.data_dir = data_dir
        self._audit = audit
        self._next_expiry = next_expiry

    def grace_for(self, policy: KeyRotationPolicy) -> int:
        return rotation_grace(self.settings, policy, self.default_grace_s)

    async def check(self, now: float) -> list[Rotated]:
        """Rotate every key due at `now`; then publish each project's next expiry."""
        names = {p.id: p.name for p in await self.store.list_projects()}
        rotated: list[Rotated] = []
        for key in await self.store.list_api_keys():
            policy = self.settings.policy_for(key.project_id, names.get(key.project_id))
            due = rotation_due_at(key, policy)
            if due is not None and due <= now and key.usable_at(now):
                done = await self._rotate(key, self.grace_for(policy), names.get(key.project_id, "?"))
                if done is not None:
                    rotated.append(done)
        await self._publish(names, time.time())
        return rotated

    async def _rotate(self, key: ApiKey, grace_s: int, project: str) -> Rotated | None:
        minted = keys.mint_project_key()
        path = pending_path(self.data_dir, minted.record_id)
        await asyncio.to_thread(_write_pending, path, minted.value)
        try:
            issued = await rotate_key(self.store, key.id, grace_s, minted)
        except KeyAdminError as exc:  # rotated or revoked meanwhile by someone else: not ours
            await asyncio.to_thread(path.unlink, True)
            log.info("automatic rotation of %s skipped: %s", key.id, exc)
            return None
        grace_ends = issued.record.created_at + grace_s
        now = time.time()
        detail = {"successor": issued.record.id, "grace_ends_at": grace_ends, "reason": "max_age"}
        self._audit(
            AuditEntry(now, None, "key.rotate", "allow", 200, key.project_id, "key_rotation", key.id, detail)
        )
        self._audit(
            AuditEntry(
                now,
                None,
                "key.create",
                "allow",
                200,
                key.project_id,
                "key_rotation",
                issued.record.id,
                {"rotated_from": key.id, "pending_file": str(path)},
            )
        )
        log.warning(
            "key %s of project %s was rotated automatically (max age): its successor %s is in %s "
            "(`ovos-realtime keys show-pending`); the old key works until %s UTC",
            key.id,
            project,
            issued.record.id,
            path,
            time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(grace_ends)),
        )
        return Rotated(key, issued, grace_ends, path)

    async def _publish(self, names: dict[str, str], now: float) -> None:
        earliest: dict[str, float | None] = {name: None for name in names.values()}
        for key in await self.store.list_api_keys():
            if not key.usable_at(now):
                continue
            policy = self.settings.policy_for(key.project_id, names.get(key.project_id))
            ends = key_expiry(key, policy, self.grace_for(policy))
            name = names.get(key.project_id, key.project_id)
            if ends is not None:
                current = earliest.get(name)
                earliest[name] = ends if current is None else min(current, ends)
        self._next_expiry(earliest)

    async def run(self) -> None:
        """Forever: a check at start, then every `check_interval_seconds`."""
        while True:
            try:
                await self.check(time.time())
            except Exception:  # the store is busy or gone: try again next round
                log.exception("automatic key rotation failed; trying again at the next check")
            await asyncio.sleep(self.settings.check_interval_seconds)


def key_expiry(key: ApiKey, policy: KeyRotationPolicy, grace_s: int) -> float | None:
    """When a usable key stops working if nothing else happens: the end of its grace when it is
    rotating; under a maximum age, its rotation plus the grace; else never (None)."""
    if key.expires_at is not None:
        return float(key.expires_at)
    due = rotation_due_at(key, policy)
    return due + grace_s if due is not None else None


def _write_pending(path: Path, secret: str) -> None:
    private_dir(path.parent)
    write_private(path, (secret + "\n").encode())
