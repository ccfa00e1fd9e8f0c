"""Automatic key rotation (issue 13): a key older than its project's maximum age is rotated by
the running gateway; its successor reaches the operator through a 0600 file and `keys
show-pending`; the old key works through its grace; both are audited; the next expiry is a
metric and `keys list` shows when grace ends and rotation is due."""

from __future__ import annotations

import re
import sqlite3
import stat
import time
from pathlib import Path
from typing import Any

import openai
import pytest
from pydantic import ValidationError

from ovos_realtime_gateway.security.key_rotation import key_expiry, rotation_due_at, rotation_grace
from ovos_realtime_gateway.settings import GatewaySettings, KeyRotationSettings
from ovos_realtime_gateway.store import ApiKey

from .gateway_process import GatewayProcess, cli, configured_gateway, create_key, http

ROTATED_WITHIN_S = 60.0  # checks every 0.5 s; the deadline is for a loaded machine
GRACE_S = 60


def _key_id(key: str) -> str:
    return "key_" + key.split("-")[2]


def _rows(gateway: GatewayProcess, sql: str, *args: Any) -> list[sqlite3.Row]:
    db = sqlite3.connect(gateway.data_dir / "ovos-realtime.db", timeout=10)
    db.row_factory = sqlite3.Row
    try:
        return db.execute(sql, args).fetchall()
    finally:
        db.close()


def _wait_for_rows(gateway: GatewayProcess, sql: str, *args: Any) -> list[sqlite3.Row]:
    """Poll the store until `sql` finds rows (the gateway writes them; we wait on the change)."""
    deadline = time.monotonic() + ROTATED_WITHIN_S
    while time.monotonic() < deadline:
        if rows := _rows(gateway, sql, *args):
            return rows
        time.sleep(0.2)
    raise AssertionError(f"the store never had: {sql} {args}\n{gateway.logs()[-3000:]}")


def _utc(ts: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(ts))


def _metrics(gateway: GatewayProcess) -> str:
    return http("GET", f"{gateway.base_url}/metrics").body.decode()


def _wait_for_expiry(gateway: GatewayProcess, project: str) -> float:
    sample = re.compile(
        rf'^ovos_realtime_key_next_expiry_timestamp_seconds\{{project="{project}"\}} (\S+)$', re.M
    )
    deadline = time.monotonic() + ROTATED_WITHIN_S
    while time.monotonic() < deadline:
        if found := sample.search(_metrics(gateway)):
            return float(found.group(1))
        time.sleep(0.2)
    raise AssertionError(f"no next expiry for {project}: {_metrics(gateway)}")


def _works(gateway: GatewayProcess, key: str) -> bool:
    sdk = openai.OpenAI(base_url=gateway.api_base, api_key=key, max_retries=0)
    try:
        sdk.models.list()
    except openai.AuthenticationError:
        return False
    finally:
        sdk.close()
    return True


@pytest.mark.slow
def test_a_key_past_its_maximum_age_is_rotated_and_its_successor_reaches_the_operator(
    tmp_path: Path,
) -> None:
    settings = {
        "key_rotation": {
            "check_interval_seconds": 0.5,
            "projects": {
                "aging": {"max_age_seconds": 3, "grace_seconds": GRACE_S},
                "daily": {"max_age_days": 1, "grace_seconds": 7200},
            },
        }
    }
    gateway, steady = configured_gateway(tmp_path, settings, "steady", "rotation")
    config = tmp_path / "rotation.json"
    with gateway:
        daily = create_key(gateway.data_dir, "daily")
        (daily_row,) = _rows(gateway, "select created_at from api_keys where id = ?", _key_id(daily))
        created_at = daily_row["created_at"]
        old = create_key(gateway.data_dir, "aging")
        old_id = _key_id(old)
        (rotated,) = _wait_for_rows(
            gateway, "select * from api_keys where id = ? and rotated_to is not null", old_id
        )
        new_id = rotated["rotated_to"]
        assert rotated["expires_at"] - time.time() > GRACE_S - 15, "the old key keeps its grace"

        # the successor's value is in a file only its owner may read, and it works
        pending = gateway.data_dir / "pending-keys" / f"{new_id}.key"
        assert stat.S_IMODE(pending.stat().st_mode) == 0o600
        assert stat.S_IMODE(pending.parent.stat().st_mode) == 0o700
        new = pending.read_text().strip()
        assert _key_id(new) == new_id
        assert _works(gateway, new) and _works(gateway, old), "both work during the grace"
        assert _works(gateway, steady), "a project without a maximum age is not rotated"
        assert not _rows(
            gateway, "select 1 from api_keys where id = ? and rotated_to is not null", _key_id(steady)
        )

        # audited by id, both halves
        audit = _wait_for_rows(
            gateway, "select * from audit_log where action = 'key.create' and resource = ?", new_id
        )
        assert f'"rotated_from": "{old_id}"' in audit[0]["detail"]
        (rotation,) = _rows(
            gateway, "select * from audit_log where action = 'key.rotate' and resource = ?", old_id
        )
        assert f'"successor": "{new_id}"' in rotation["detail"] and rotation["principal"] == "key_rotation"
        assert not _rows(gateway, "select 1 from audit_log where detail like ?", f"%{new.split('-')[-1]}%")

        # the next expiry of each project: for "aging" the end of the old key's grace (the
        # earliest); for "daily" its key's rotation a day after creation, plus the grace
        daily_expiry = created_at + 86_400 + 7200
        assert _wait_for_expiry(gateway, "aging") == rotated["expires_at"]
        assert _wait_for_expiry(gateway, "daily") == daily_expiry
        assert 'next_expiry_timestamp_seconds{project="steady"}' not in _metrics(gateway)

        listing = cli("keys", "list", "--config", str(config), data_dir=gateway.data_dir).stdout
        header, *lines = listing.splitlines()
        assert "UNTIL (UTC)" in header and "ROTATES (UTC)" in header
        old_line = next(line for line in lines if line.startswith(old_id))
        grace_end = _utc(rotated["expires_at"])
        assert "rotating" in old_line and grace_end in old_line
        daily_line = next(line for line in lines if line.startswith(_key_id(daily)))
        assert _utc(created_at + 86_400) in daily_line

        shown = cli(
            "keys", "show-pending", "--project", "aging", "--delete", data_dir=gateway.data_dir
        ).stdout
        assert new in shown and f"replaces {old_id}, which works until {grace_end} UTC" in shown
        assert not pending.exists()
    assert old not in gateway.logs() and new not in gateway.logs()


def test_a_negative_maximum_age_stops_the_start(tmp_path: Path) -> None:
    config = tmp_path / "bad.json"
    config.write_text('{"key_rotation": {"projects": {"kiosk": {"max_age_days": -1}}}}')
    done = cli("serve", "--port", "0", "--config", str(config), data_dir=tmp_path / "d", check=False)
    assert done.returncode == 2
    assert "invalid setting 'key_rotation.projects.kiosk.max_age_days'" in done.stderr
    assert "greater than 0" in done.stderr


def test_which_policy_and_grace_a_key_gets_and_when_it_expires() -> None:
    settings = GatewaySettings.model_validate(
        {
            "key_rotation_grace_seconds": 99,
            "key_rotation": {
                "max_age_days": 30,
                "grace_seconds": 600,
                "projects": {"kiosk": {"max_age_seconds": 60}, "lab": {}, "proj_x": {"grace_seconds": 5}},
            },
        }
    ).key_rotation
    key = ApiKey("key_1", "proj_1", "s", "h", "hint", created_at=1000)
    kiosk = settings.policy_for("proj_1", "kiosk")
    assert rotation_due_at(key, kiosk) == 1060
    assert rotation_grace(settings, kiosk, 99) == 600, (
        "a project entry without grace takes the default policy's"
    )
    assert key_expiry(key, kiosk, 600) == 1660
    assert rotation_due_at(key, settings.policy_for("proj_1", "other")) == 1000 + 30 * 86_400
    assert rotation_due_at(key, settings.policy_for("proj_1", "lab")) is None, "an empty entry: never"
    assert rotation_grace(settings, settings.policy_for("proj_x"), 99) == 5, "by project id too"
    assert rotation_grace(KeyRotationSettings(), KeyRotationSettings(), 99) == 99
    rotating = ApiKey(
        "key_2", "proj_1", "s", "h", "hint", created_at=1000, expires_at=1500, rotated_to="key_3"
    )
    assert rotation_due_at(rotating, kiosk) is None and key_expiry(rotating, kiosk, 600) == 1500
    revoked = ApiKey("key_4", "proj_1", "s", "h", "hint", created_at=1000, revoked_at=1001)
    assert rotation_due_at(revoked, kiosk) is None
    with pytest.raises(ValidationError, match="not both"):
        KeyRotationSettings.model_validate({"max_age_days": 1, "max_age_seconds": 5})
    with pytest.raises(ValidationError, match="webhook_previous_secret"):
        GatewaySettings.model_validate({"sip": {"webhook_previous_secret": "env:OLD"}})
