"""`ovos-realtime backup` copies the store while the gateway serves (sqlite's online backup),
and `restore` makes the copy the store of a new data dir: a gateway started on it knows the keys,
the client secrets and the sessions."""

from __future__ import annotations

import asyncio
import fcntl
import os
import sqlite3
import stat
import struct
import threading
import time
from pathlib import Path

import pytest

from .gateway_process import GatewayProcess, cli, configured_gateway, create_key, http
from .realtime_helpers import realtime_socket

pytestmark = pytest.mark.slow


class Minting(threading.Thread):
    """Mints client secrets in a loop (another client of the gateway) until stopped."""

    def __init__(self, gateway: GatewayProcess, key: str) -> None:
        super().__init__(daemon=True)
        self.url, self.key = f"{gateway.api_base}/realtime/client_secrets", key
        self.minted: list[str] = []
        self.failures: list[int] = []
        self.stopping = threading.Event()

    def run(self) -> None:
        while not self.stopping.is_set():
            answer = http("POST", self.url, json_body={"session": {"type": "realtime"}}, key=self.key)
            if answer.status == 200:
                self.minted.append(answer.json()["session"]["id"])
            else:
                self.failures.append(answer.status)

    def wait_for(self, count: int, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while len(self.minted) < count:
            assert time.monotonic() < deadline and not self.failures, (len(self.minted), self.failures)
            time.sleep(0.02)


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def _exists(path: str) -> bool:
    return Path(path).exists()


async def test_a_backup_under_load_restores_into_a_gateway_that_knows_keys_secrets_and_sessions(
    tmp_path: Path,
) -> None:
    settings = {"rate_limits": {"requests_per_minute": 100_000, "requests_per_minute_per_key": 100_000}}
    gateway, key = await asyncio.to_thread(configured_gateway, tmp_path, settings, "alpha", "source")
    backup = tmp_path / "store.backup"
    async with gateway:
        async with realtime_socket(gateway.api_base, key) as reader:
            session = (await reader.until("session.created"))["session"]["id"]
            item = {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "hello"}]}
            await reader.send({"type": "conversation.item.create", "item": item})
            await reader.until("conversation.item.done", timeout=30)
        body = {"session": {"type": "realtime"}}
        answer = await asyncio.to_thread(
            http, "POST", f"{gateway.api_base}/realtime/client_secrets", json_body=body, key=key
        )
        assert answer.status == 200, answer.body
        minted = answer.json()
        load = Minting(gateway, key)
        load.start()
        try:
            await asyncio.to_thread(load.wait_for, 5)
            before = len(load.minted)
            done = await asyncio.to_thread(cli, "backup", "--to", str(backup), data_dir=gateway.data_dir)
            during = len(load.minted) - before
            await asyncio.to_thread(load.wait_for, len(load.minted) + 5)  # it kept serving after, too
        finally:
            load.stopping.set()
            await asyncio.to_thread(load.join, 30)
        assert during > 0, "secrets were minted while the backup ran"
        assert not load.failures
        assert f"to {backup}" in done.stdout

    assert _mode(backup) == 0o600
    assert not _exists(f"{backup}-wal"), "one self-contained file"
    with sqlite3.connect(backup) as db:
        sessions = {r[0] for r in db.execute("select id from sessions")}
        orphans = db.execute(
            "select count(*) from client_secrets c "
            "where not exists (select 1 from sessions s where s.id = c.session_id)"
        ).fetchone()[0]
    assert orphans == 0, "a consistent snapshot: every secret with its session"
    assert set(load.minted[:before]) <= sessions, "what was minted before the backup is in it"

    restored = tmp_path / "restored-data"
    done = await asyncio.to_thread(cli, "restore", "--from", str(backup), data_dir=restored)
    assert _mode(restored) == 0o700 and _mode(restored / "ovos-realtime.db") == 0o600
    again = await asyncio.to_thread(cli, "restore", "--from", str(backup), data_dir=restored, check=False)
    assert again.returncode == 1 and "--force" in again.stderr, "a store that holds data is not overwritten"
    (
        await asyncio.to_thread(cli, "restore", "--from", str(backup), "--force", data_dir=restored)
    )  # replaced on request

    async with GatewayProcess(restored, log_name="restored") as second:
        assert (await asyncio.to_thread(http, "GET", f"{second.api_base}/models", key=key)).status == 200, (
            "the key authenticates"
        )
        record = await asyncio.to_thread(
            http, "GET", f"{second.api_base}/realtime/sessions/{session}", key=key
        )
        assert record.status == 200 and record.json()["status"] == "closed"
        async with realtime_socket(second.api_base, minted["value"]) as reader:  # the ek_ opens its session
            created = await reader.until("session.created")
            assert created["session"]["id"] == minted["session"]["id"]
    with sqlite3.connect(restored / "ovos-realtime.db") as db:
        items = db.execute("select item from conversation_items where session_id = ?", (session,)).fetchall()
    assert len(items) == 1 and "hello" in items[0][0]


def test_bad_input_is_one_clear_line_and_writes_nothing(tmp_path: Path) -> None:
    not_a_store = tmp_path / "notes.txt"
    not_a_store.write_text("not a database " * 100)
    done = cli("restore", "--from", str(not_a_store), data_dir=tmp_path / "new", check=False)
    assert done.returncode == 1 and "is not an sqlite database" in done.stderr, done.stderr
    assert not (tmp_path / "new" / "ovos-realtime.db").exists()
    done = cli("backup", "--to", str(tmp_path / "b.db"), data_dir=tmp_path / "empty", check=False)
    assert done.returncode == 1 and "no store at" in done.stderr, done.stderr
    assert not (tmp_path / "b.db").exists()
    done = cli("restore", "--from", str(not_a_store), check=False)
    assert done.returncode == 2 and "restore needs --data-dir" in done.stderr, done.stderr


# sqlite's unix VFS: the WAL index's "dead man switch" byte (every connection holds a read lock on
# it while open; the first to open takes it exclusively and rebuilds the index) and the database
# file's SHARED range (held by every connection in WAL mode; the last to close checkpoints and
# deletes the WAL once it can lock it exclusively).
BODY = {"session": {"type": "realtime"}}
SHM_DMS_BYTE = 128
DB_SHARED_FIRST, DB_SHARED_SIZE = 0x40000000 + 2, 510


def _holder(path: Path, start: int, length: int) -> int | None:
    """The pid holding a lock that a write lock on `path`'s bytes would conflict with (F_GETLK)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        query = struct.pack("hhqqi", fcntl.F_WRLCK, os.SEEK_SET, start, length, 0)
        l_type, _, _, _, pid = struct.unpack("hhqqi", fcntl.fcntl(fd, fcntl.F_GETLK, query))
    finally:
        os.close(fd)  # the test process holds no lock on it, so closing drops nothing
    return None if l_type == fcntl.F_UNLCK else pid


def test_the_running_gateway_holds_sqlites_locks_so_a_backup_cannot_take_it_for_gone(tmp_path: Path) -> None:
    """Another process (`backup`, any CLI) must see the gateway as a user of the store: else it
    reinitialises the WAL index under the gateway's feet (its mapped index truncated) or, closing,
    checkpoints and deletes the WAL the gateway still writes to. Closing any descriptor of a file
    drops all of a process's POSIX locks on it, so the gateway must never open its store's files
    beside sqlite (an older version tightened their modes that way, and lost the locks)."""
    data_dir = tmp_path / "data"
    key = create_key(data_dir, "locks")
    for suffix in ("-wal", "-shm"):  # left 0644 by an older version: the gateway tightens them at start
        companion = data_dir / f"ovos-realtime.db{suffix}"
        companion.touch()
        companion.chmod(0o644)
    with GatewayProcess(data_dir, log_name="locks") as gateway:
        assert (
            http("POST", f"{gateway.api_base}/realtime/client_secrets", json_body=BODY, key=key).status == 200
        )
        assert gateway.proc is not None
        shm, db = data_dir / "ovos-realtime.db-shm", data_dir / "ovos-realtime.db"
        assert _mode(shm) == 0o600 and _mode(data_dir / "ovos-realtime.db-wal") == 0o600
        assert _holder(shm, SHM_DMS_BYTE, 1) == gateway.proc.pid, "the WAL index lock was dropped"
        assert _holder(db, DB_SHARED_FIRST, DB_SHARED_SIZE) == gateway.proc.pid
        cli("backup", "--to", str(tmp_path / "store.backup"), data_dir=data_dir)
        assert (data_dir / "ovos-realtime.db-wal").exists(), "the backup left the gateway's WAL alone"
        assert (
            http("POST", f"{gateway.api_base}/realtime/client_secrets", json_body=BODY, key=key).status == 200
        )
