"""The data dir is its owner's alone: directories 0700, the store's files and the TLS key 0600 —
also a data dir an older version left 0755 with 0644 files."""

from __future__ import annotations

import os
import stat
import time
from pathlib import Path

from .conftest import SdkFactory
from .gateway_process import GatewayProcess, create_key
from .test_tls_and_metrics import _tls_client

PUBLIC = {"cert.pem"}  # the self-signed certificate is public (clients are given it)


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def _modes(data_dir: Path) -> dict[str, int]:
    found = {".": _mode(data_dir)}
    for path in data_dir.rglob("*"):
        found[str(path.relative_to(data_dir))] = _mode(path)
    return found


def _serve_and_write(data_dir: Path, key: str, make_sdk: SdkFactory, log_name: str) -> dict[str, int]:
    """Serve with a self-signed certificate, write to the store (a secret), and read the modes while
    the store is open (its -wal and -shm files exist only then)."""
    with GatewayProcess(data_dir, "--tls-self-signed", log_name=log_name) as gw:
        sdk = _tls_client(make_sdk, gw, key, data_dir / "tls" / "cert.pem")
        assert sdk.realtime.client_secrets.create().value.startswith("ek_")
        deadline = time.monotonic() + 30
        while not (data_dir / "ovos-realtime.db-wal").exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        return _modes(data_dir)


def _assert_private(modes: dict[str, int], data_dir: Path) -> None:
    for name in ("ovos-realtime.db", "ovos-realtime.db-wal", "ovos-realtime.db-shm", "tls/key.pem"):
        assert name in modes, f"{name} missing: {sorted(modes)}"
    for name, mode in modes.items():
        path = data_dir / name
        if path.is_dir():
            assert mode == 0o700, f"{name} is {mode:o}"
        elif path.name not in PUBLIC:
            assert mode == 0o600, f"{name} is {mode:o}"


def test_a_new_data_dir_is_private(tmp_path: Path, make_sdk: SdkFactory) -> None:
    old_umask = os.umask(0o022)  # the usual umask: what sqlite and mkdir would otherwise give away
    try:
        data_dir = tmp_path / "data"
        key = create_key(data_dir, "modes")
        _assert_private(_serve_and_write(data_dir, key, make_sdk, "fresh"), data_dir)
    finally:
        os.umask(old_umask)


def test_an_open_data_dir_left_by_an_older_version_is_tightened(tmp_path: Path, make_sdk: SdkFactory) -> None:
    data_dir = tmp_path / "data"
    key = create_key(data_dir, "modes")
    _serve_and_write(data_dir, key, make_sdk, "first")
    # as an older version left it: everything readable by everyone, the WAL files too
    (data_dir / "ovos-realtime.db-wal").touch()
    (data_dir / "ovos-realtime.db-shm").touch()
    for path in [data_dir, *data_dir.rglob("*")]:
        path.chmod(0o755 if path.is_dir() else 0o644)
    assert _mode(data_dir / "tls" / "key.pem") == 0o644

    modes = _serve_and_write(data_dir, key, make_sdk, "second")
    _assert_private(modes, data_dir)
    assert "tightened" in (tmp_path / "second.stderr").read_text()
