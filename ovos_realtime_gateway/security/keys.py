"""Secret formats and salted hashing for project API keys and `ek_` client secrets.

Secrets embed their record id, so a presented secret is found with one primary-key lookup and
checked against a salted SHA-256 digest in constant time. Secrets carry 256 random bits, so a
slow KDF would add latency without adding security; only the salted hash is stored.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass

PROJECT_KEY_PREFIX = "sk-ovos-"
CLIENT_SECRET_PREFIX = "ek_"
_PROJECT_KEY = re.compile(r"^sk-ovos-([0-9a-f]{16})-([A-Za-z0-9_-]{43})$")
_CLIENT_SECRET = re.compile(r"^ek_([0-9a-f]{16})_([A-Za-z0-9_-]{43})$")


@dataclass(frozen=True, slots=True)
class MintedSecret:
    """A new secret: the value shown once, and what the store keeps."""

    record_id: str
    value: str
    salt: str
    hash: str
    hint: str


def digest(salt: str, value: str) -> str:
    return hashlib.sha256(f"{salt}:{value}".encode()).hexdigest()


def verify(value: str, salt: str, expected_hash: str) -> bool:
    return hmac.compare_digest(digest(salt, value), expected_hash)


def _mint(prefix: str, sep: str, id_prefix: str) -> MintedSecret:
    hex_id = secrets.token_hex(8)
    value = f"{prefix}{hex_id}{sep}{secrets.token_urlsafe(32)}"
    salt = secrets.token_hex(16)
    return MintedSecret(
        record_id=f"{id_prefix}{hex_id}",
        value=value,
        salt=salt,
        hash=digest(salt, value),
        hint=f"{value[:12]}…{value[-4:]}",
    )


def mint_project_key() -> MintedSecret:
    return _mint(PROJECT_KEY_PREFIX, "-", "key_")


def mint_client_secret() -> MintedSecret:
    return _mint(CLIENT_SECRET_PREFIX, "_", "cs_")


def project_key_id(value: str) -> str | None:
    """The `key_…` id embedded in a well-formed project key, else None."""
    match = _PROJECT_KEY.match(value)
    return f"key_{match.group(1)}" if match else None


def client_secret_id(value: str) -> str | None:
    """The `cs_…` id embedded in a well-formed `ek_` secret, else None."""
    match = _CLIENT_SECRET.match(value)
    return f"cs_{match.group(1)}" if match else None
