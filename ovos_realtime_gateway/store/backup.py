"""Backup and restore of the store with sqlite's online backup API, while a gateway uses it.

A backup is one self-contained sqlite file (rollback journal, no `-wal`), readable by its owner
only; it holds what the store holds: key and secret hashes, sessions, conversations, the audit
trail. A restore copies one into a data dir that has no store yet (or, with `force`, replaces it
while no gateway runs on it) and brings it to the current schema.
"""

from __future__ import annotations

import os
import sqlite3
from pathlib import Path

from sqlite_utils import Database

from ..data_dir import private_dir, private_file
from . import migrations
from .sqlite import DB_FILENAME


class BackupError(Exception):
    """The backup or restore cannot be made; nothing was written where it would land."""


def backup(source: Path, target: Path, force: bool = False) -> int:
    """Copy the store at `source` into the new file `target` (0600); how many bytes it has.

    The copy is one step (`pages=-1`): a consistent snapshot taken inside one read transaction,
    which in WAL mode never blocks the gateway's writes (stepwise copies restart whenever another
    process writes, and may never finish under load)."""
    if not source.exists() or source.stat().st_size == 0:
        raise BackupError(f"no store at {source}")
    if target.exists() and not force:
        raise BackupError(f"{target} exists (--force replaces it)")
    partial = target.with_name(f".{target.name}.partial")
    partial.unlink(missing_ok=True)
    private_file(partial)
    try:
        src = sqlite3.connect(source, timeout=30)
        try:
            out = sqlite3.connect(partial)
            try:
                src.backup(out, pages=-1)
                out.execute("PRAGMA journal_mode = DELETE")  # one file, no -wal beside it
                _check(out, str(source))
            finally:
                out.close()
        finally:
            src.close()
        os.replace(partial, target)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    return target.stat().st_size


def restore(backup_file: Path, data_dir: Path, force: bool = False) -> Path:
    """Copy `backup_file` into `data_dir` as its store (0600), migrated to the current schema."""
    if not backup_file.is_file():
        raise BackupError(f"no backup file {backup_file}")
    target = data_dir / DB_FILENAME
    if _holds_data(target) and not force:
        raise BackupError(f"{target} already holds a store (--force replaces it; stop its gateway first)")
    src = sqlite3.connect(f"file:{backup_file}?mode=ro", uri=True)
    try:
        _check(src, str(backup_file))
        private_dir(data_dir)
        partial = data_dir / f".{DB_FILENAME}.partial"
        partial.unlink(missing_ok=True)
        private_file(partial)
        try:
            out = sqlite3.connect(partial)
            try:
                src.backup(out, pages=-1)
                out.execute("PRAGMA journal_mode = DELETE")
            finally:
                out.close()
            for suffix in ("-wal", "-shm"):  # the replaced store's, which would be replayed into ours
                target.with_name(DB_FILENAME + suffix).unlink(missing_ok=True)
            os.replace(partial, target)
        except BaseException:
            partial.unlink(missing_ok=True)
            raise
    finally:
        src.close()
    db = Database(target)
    try:
        migrations.migrate(db)
    finally:
        db.close()
    return target


def _holds_data(path: Path) -> bool:
    return path.exists() and path.stat().st_size > 0


def _check(conn: sqlite3.Connection, name: str) -> None:
    """It is an intact ovos-realtime store (a file that is not raises BackupError)."""
    try:
        ok = conn.execute("PRAGMA quick_check").fetchone()
        tables = {r[0] for r in conn.execute("select name from sqlite_master where type = 'table'")}
    except sqlite3.DatabaseError as exc:
        raise BackupError(f"{name} is not an sqlite database: {exc}") from None
    if ok != ("ok",):
        raise BackupError(f"{name} is damaged: {ok[0] if ok else '?'}")
    if not {"schema_migrations", "api_keys", "sessions"} <= tables:
        raise BackupError(f"{name} is not an ovos-realtime store")
