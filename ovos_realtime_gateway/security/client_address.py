"""What the audit trail keeps of a client's address (`audit_client_address`).

`truncate` (the default) keeps the network: an IPv4 address's /24, an IPv6 address's /48 (an
IPv4-mapped IPv6 address counts as IPv4). `hash` keeps a keyed hash (HMAC-SHA-256 under a random
key kept in the data dir, 0600), so rows of one client can be told apart and matched with an
address the operator already knows, but not read back. `full` keeps the address, `none` nothing.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import secrets
from pathlib import Path
from typing import Literal

from ..data_dir import private_dir, write_private

AddressMode = Literal["truncate", "hash", "full", "none"]
KEY_FILENAME = "audit-address.key"


class AddressRedactor:
    """Turns a client address into what `mode` lets the audit trail keep (None: nothing)."""

    def __init__(self, mode: AddressMode, hash_key: bytes | None = None) -> None:
        if mode == "hash" and not hash_key:
            raise ValueError("audit_client_address 'hash' needs a key")
        self.mode = mode
        self._key = hash_key or b""

    @classmethod
    def for_data_dir(cls, mode: AddressMode, data_dir: Path) -> AddressRedactor:
        """The redactor for `mode`; `hash` reads (or creates) the data dir's hashing key."""
        return cls(mode, hash_key(data_dir) if mode == "hash" else None)

    def __call__(self, address: str | None) -> str | None:
        if address is None or self.mode == "none":
            return None
        if self.mode == "full":
            return address
        if self.mode == "hash":
            digest = hmac.new(self._key, address.encode(), hashlib.sha256).hexdigest()
            return f"hmac:{digest[:24]}"
        return truncated(address)


def truncated(address: str) -> str:
    """`203.0.113.7` → `203.0.113.0/24`, `2001:db8:1:2::5` → `2001:db8:1::/48`; anything that is
    not an IP address (a Unix socket, `unknown`) → `unknown`."""
    try:
        ip = ipaddress.ip_address(address.split("%", 1)[0])
    except ValueError:
        return "unknown"
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    prefix = 24 if ip.version == 4 else 48
    return str(ipaddress.ip_network(f"{ip}/{prefix}", strict=False))


def hash_key(data_dir: Path) -> bytes:
    """The data dir's address-hashing key: 32 random bytes, made once, readable by the owner only."""
    path = Path(data_dir) / KEY_FILENAME
    if not path.exists() or path.stat().st_size == 0:
        private_dir(path.parent)
        write_private(path, secrets.token_bytes(32))
    return path.read_bytes()
