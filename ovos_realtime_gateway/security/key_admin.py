"""Managing project API keys: create, list, revoke, rotate (used by the CLI)."""

from __future__ import annotations

import time
from dataclasses import dataclass

from ..store import ApiKey, Project, Store
from . import keys


class KeyAdminError(Exception):
    """A user mistake (unknown key, already revoked): reported as one line by the CLI."""


@dataclass(frozen=True, slots=True)
class IssuedKey:
    record: ApiKey
    project: Project
    secret: str
    project_created: bool = False


def _record(project_id: str, minted: keys.MintedSecret, now: int) -> ApiKey:
    return ApiKey(
        id=minted.record_id,
        project_id=project_id,
        salt=minted.salt,
        hash=minted.hash,
        hint=minted.hint,
        created_at=now,
    )


async def create_key(store: Store, project_name: str) -> IssuedKey:
    name = project_name.strip()
    if not name:
        raise KeyAdminError("the project name must not be empty")
    project, created = await store.ensure_project(name)
    minted = keys.mint_project_key()
    record = _record(project.id, minted, int(time.time()))
    await store.insert_api_key(record)
    return IssuedKey(record, project, minted.value, created)


async def _existing(store: Store, key_id: str) -> ApiKey:
    key = await store.get_api_key(key_id)
    if key is None:
        raise KeyAdminError(f"no key with id '{key_id}' (see `ovos-realtime keys list`)")
    return key


async def revoke_key(store: Store, key_id: str) -> ApiKey:
    key = await _existing(store, key_id)
    if key.revoked_at is not None:
        raise KeyAdminError(f"key '{key_id}' is already revoked")
    await store.update_api_key(key_id, revoked_at=int(time.time()))
    return await _existing(store, key_id)


async def rotate_key(
    store: Store, key_id: str, grace_seconds: int, minted: keys.MintedSecret | None = None
) -> IssuedKey:
    """Issue a successor (`minted`, or a new one); the old key keeps working for
    `grace_seconds`, then stops."""
    old = await _existing(store, key_id)
    now = int(time.time())
    if not old.usable_at(now):
        raise KeyAdminError(f"key '{key_id}' is {old.status(now)} and cannot be rotated")
    if old.rotated_to is not None:
        raise KeyAdminError(f"key '{key_id}' was already rotated to '{old.rotated_to}'")
    project = await store.get_project(old.project_id)
    if project is None:  # foreign keys make this unreachable; guard anyway
        raise KeyAdminError(f"key '{key_id}' belongs to no project")
    minted = minted or keys.mint_project_key()
    record = _record(old.project_id, minted, now)
    try:
        await store.rotate_api_key(old.id, record, now + grace_seconds)
    except LookupError as exc:
        raise KeyAdminError(str(exc)) from None
    return IssuedKey(record, project, minted.value)
