"""What the audit trail keeps of a client's address (`audit_client_address`): its network by
default, a keyed hash, the address, or nothing — in the store and in the `audit` log lines."""

from __future__ import annotations

import hashlib
import hmac
import json
import sqlite3
from pathlib import Path

import pytest

from ovos_realtime_gateway.security.client_address import KEY_FILENAME, AddressRedactor, truncated

from .gateway_process import configured_gateway, http


def test_truncation_keeps_the_network_only() -> None:
    assert truncated("203.0.113.7") == "203.0.113.0/24"
    assert truncated("2001:db8:1:2:3::5") == "2001:db8:1::/48"
    assert truncated("::ffff:198.51.100.9") == "198.51.100.0/24"  # IPv4-mapped: as IPv4
    assert truncated("fe80::1%eth0") == "fe80::/48"
    assert truncated("unknown") == "unknown"


def test_a_keyed_hash_tells_clients_apart_and_depends_on_the_key() -> None:
    one, other = AddressRedactor("hash", b"k" * 32), AddressRedactor("hash", b"j" * 32)
    assert one("203.0.113.7") == one("203.0.113.7") != one("203.0.113.8")
    assert one("203.0.113.7") != other("203.0.113.7")
    assert AddressRedactor("none")("203.0.113.7") is None
    assert AddressRedactor("full")("203.0.113.7") == "203.0.113.7"


@pytest.mark.parametrize("mode", ["hash"])  # truncate, the default: test_audit_repeats.py
def test_the_audit_trail_keeps_what_the_setting_says(tmp_path: Path, mode: str) -> None:
    settings = {"audit_client_address": mode}
    gateway, _ = configured_gateway(tmp_path, settings, "alpha", "address")
    with gateway:
        assert http("GET", f"{gateway.api_base}/models", key="sk-ovos-wrong").status == 401
    with sqlite3.connect(gateway.data_dir / "ovos-realtime.db") as db:
        (detail,) = db.execute("select detail from audit_log where decision = 'unauthenticated'").fetchone()
    kept = json.loads(detail).get("remote")
    expected: str | None
    if mode == "hash":
        key = (gateway.data_dir / KEY_FILENAME).read_bytes()
        assert (gateway.data_dir / KEY_FILENAME).stat().st_mode & 0o777 == 0o600
        expected = "hmac:" + hmac.new(key, b"127.0.0.1", hashlib.sha256).hexdigest()[:24]
    else:
        expected = {"truncate": "127.0.0.0/24", "full": "127.0.0.1", "none": None}[mode]
    assert kept == expected
    line = next(line for line in gateway.logs().splitlines() if "audit models.list unauthenticated" in line)
    assert (f"remote={expected}" in line) if expected else ("remote=" not in line)
    assert mode == "full" or "127.0.0.1" not in line
