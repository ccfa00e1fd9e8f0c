"""Authentication: missing, wrong, revoked, rotated and expired credentials (checklist 1–2)."""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path

import openai
import pytest

from .conftest import SdkFactory
from .gateway_process import GatewayProcess, cli, create_key, http


def test_missing_credentials_is_401_with_null_code(gateway: GatewayProcess) -> None:
    result = http("POST", f"{gateway.api_base}/realtime/client_secrets", json_body={})
    assert result.status == 401
    assert result.json() == {
        "error": {
            "message": "Missing bearer or basic authentication in header",
            "type": "invalid_request_error",
            "param": None,
            "code": None,
        }
    }


def test_wrong_key_is_invalid_api_key_and_masked(
    gateway: GatewayProcess, alpha_key: str, make_sdk: SdkFactory
) -> None:
    wrong = alpha_key[:-6] + "AAAAAA"
    with pytest.raises(openai.AuthenticationError) as caught:
        make_sdk(gateway.api_base, wrong).realtime.client_secrets.create()
    error = caught.value
    assert error.status_code == 401
    assert error.code == "invalid_api_key"
    assert error.message.startswith("Error code: 401 - ") or "Incorrect API key provided:" in error.message
    assert "Incorrect API key provided: " in str(error.body)
    assert wrong not in str(error.body), "the presented key must be masked"
    assert wrong[-4:] in str(error.body)


def test_garbage_key_is_invalid_api_key(gateway: GatewayProcess, make_sdk: SdkFactory) -> None:
    with pytest.raises(openai.AuthenticationError) as caught:
        make_sdk(gateway.api_base, "not-a-key").models.list()
    assert caught.value.code == "invalid_api_key"


def test_client_secret_cannot_mint_more_secrets(
    gateway: GatewayProcess, client: openai.OpenAI, make_sdk: SdkFactory
) -> None:
    ek = client.realtime.client_secrets.create().value
    with pytest.raises(openai.PermissionDeniedError) as caught:
        make_sdk(gateway.api_base, ek).realtime.client_secrets.create()
    assert caught.value.status_code == 403
    assert "realtime sessions and calls" in caught.value.message
    with pytest.raises(openai.PermissionDeniedError):
        make_sdk(gateway.api_base, ek).models.list()


def _expire_secret(data_dir: Path, ek: str) -> None:
    """Move a stored secret's expiry into the past (instead of waiting ten seconds)."""
    secret_id = "cs_" + ek.split("_")[1]
    with sqlite3.connect(data_dir / "ovos-realtime.db") as db:
        changed = db.execute(
            "update client_secrets set expires_at = ? where id = ?", (int(time.time()) - 1, secret_id)
        )
        assert changed.rowcount == 1


def test_expired_client_secret_is_refused(
    gateway: GatewayProcess, client: openai.OpenAI, make_sdk: SdkFactory
) -> None:
    ek = client.realtime.client_secrets.create().value
    _expire_secret(gateway.data_dir, ek)
    with pytest.raises(openai.AuthenticationError) as caught:
        make_sdk(gateway.api_base, ek).realtime.client_secrets.create()
    assert "expired" in caught.value.message


def test_revoked_key_stops_working(gateway: GatewayProcess, make_sdk: SdkFactory) -> None:
    key = create_key(gateway.data_dir, "revocation")
    make_sdk(gateway.api_base, key).models.list()
    key_id = "key_" + key.split("-")[2]
    assert cli("keys", "revoke", key_id, data_dir=gateway.data_dir).stdout.strip() == f"revoked key {key_id}"
    with pytest.raises(openai.AuthenticationError):
        make_sdk(gateway.api_base, key).models.list()


def test_rotated_key_works_during_grace_then_not(gateway: GatewayProcess, make_sdk: SdkFactory) -> None:
    old = create_key(gateway.data_dir, "rotation")
    old_id = "key_" + old.split("-")[2]
    rotated = cli("keys", "rotate", old_id, "--grace-seconds", "3600", data_dir=gateway.data_dir)
    new = rotated.stdout.strip().splitlines()[-1]
    assert new.startswith("sk-ovos-") and new != old
    make_sdk(gateway.api_base, old).models.list()
    make_sdk(gateway.api_base, new).models.list()
    listing = cli("keys", "list", "--project", "rotation", data_dir=gateway.data_dir).stdout
    assert f"{old_id}" in listing and "rotating" in listing

    other = create_key(gateway.data_dir, "rotation")
    other_id = "key_" + other.split("-")[2]
    cli("keys", "rotate", other_id, "--grace-seconds", "0", data_dir=gateway.data_dir)
    with pytest.raises(openai.AuthenticationError):
        make_sdk(gateway.api_base, other).models.list()
