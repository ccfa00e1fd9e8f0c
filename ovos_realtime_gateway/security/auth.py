"""Who is calling: credentials from the request, checked against the store."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, Literal

from ..protocol import errors
from ..store import Store
from . import keys

PrincipalKind = Literal["project_key", "client_secret", "talk_page", "sip_trunk"]


@dataclass(frozen=True, slots=True)
class Principal:
    """An authenticated caller, scoped to one project."""

    kind: PrincipalKind
    project_id: str
    credential_id: str
    session_id: str | None = None
    expires_at: int | None = None
    key_id: str | None = None  # the project key behind it: itself, or the key that minted an ek_

    @property
    def owning_key(self) -> str:
        """What its per-key limits are counted against: an `ek_` counts against its minting key."""
        return self.key_id or self.credential_id

    def policy_input(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "project_id": self.project_id,
            "credential_id": self.credential_id,
            "key_id": self.key_id,
            "session_id": self.session_id,
            "expires_at": self.expires_at,
        }


def bearer_token(authorization: str | None) -> str | None:
    """The token of an `Authorization: Bearer …` header, or None when absent or empty."""
    if not authorization:
        return None
    scheme, _, token = authorization.strip().partition(" ")
    if scheme.lower() != "bearer":
        return None
    token = token.strip()
    return token or None


class Authenticator:
    """Resolves a presented secret to a Principal, or raises the OpenAI-shaped 401."""

    def __init__(self, store: Store) -> None:
        self._store = store

    async def authenticate(self, token: str | None) -> Principal:
        if token is None:
            raise errors.missing_credentials()
        now = time.time()
        key_id = keys.project_key_id(token)
        if key_id is not None:
            key = await self._store.get_api_key(key_id)
            if key is not None and keys.verify(token, key.salt, key.hash) and key.usable_at(now):
                return Principal("project_key", key.project_id, key.id, key_id=key.id)
            raise errors.invalid_api_key(token)
        secret_id = keys.client_secret_id(token)
        if secret_id is not None:
            secret = await self._store.get_client_secret(secret_id)
            if secret is not None and keys.verify(token, secret.salt, secret.hash):
                if now >= secret.expires_at:
                    raise errors.expired_client_secret()
                if not await self._minting_key_usable(secret.key_id, now):
                    raise errors.revoked_client_secret()
                return Principal(
                    "client_secret",
                    secret.project_id,
                    secret.id,
                    session_id=secret.session_id,
                    expires_at=secret.expires_at,
                    key_id=secret.key_id,
                )
        raise errors.invalid_api_key(token)

    async def _minting_key_usable(self, key_id: str | None, now: float) -> bool:
        """An `ek_` is only as good as the project key that minted it (the talk page mints its own)."""
        if key_id is None or not key_id.startswith("key_"):
            return True
        key = await self._store.get_api_key(key_id)
        return key is not None and key.usable_at(now)
