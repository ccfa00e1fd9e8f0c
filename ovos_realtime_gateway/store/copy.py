"""Copying an embedded sqlite store into an empty PostgreSQL store, with all its history: one read
snapshot of the sqlite file, written in one PostgreSQL transaction (all of it, or nothing)."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

from . import migrations
from .interface import TABLES
from .postgres import Batch, PostgresStore
from .sqlite import DB_FILENAME, SqliteStore

BATCH = 1000


class CopyError(Exception):
    """The copy cannot be made; nothing was written into the target."""


async def copy_store(
    data_dir: Path, target: PostgresStore, progress: Callable[[str, int], None] = lambda table, n: None
) -> dict[str, int]:
    """Copy the sqlite store of `data_dir` into `target` (migrated, and empty); rows per table."""
    path = data_dir / DB_FILENAME
    if not path.exists() or path.stat().st_size == 0:
        raise CopyError(f"no store at {path}")
    source = SqliteStore(data_dir)
    try:
        await source.migrate()  # an older store is brought to the schema the target has
    finally:
        await source.close()
    await target.migrate()
    held = {table: await target.count(table) for table in TABLES}
    if any(held.values()):
        found = ", ".join(f"{n} {table}" for table, n in held.items() if n)
        raise CopyError(f"{target.where} already holds data ({found}): copy into an empty database")
    reader = await asyncio.to_thread(_Snapshot, path)
    try:
        return await target.load_rows(_tables(reader), progress)
    finally:
        await asyncio.to_thread(reader.close)


class _Snapshot:
    """One read transaction on the sqlite file, so every table is read as of the same moment."""

    def __init__(self, path: Path) -> None:
        self._db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, check_same_thread=False, timeout=30)
        self._db.execute("begin")
        version = self._db.execute("select max(version) from schema_migrations").fetchone()[0]
        if version != migrations.LATEST:
            self._db.close()
            raise CopyError(f"{path} is at schema version {version}, not {migrations.LATEST}")

    def columns(self, table: str) -> list[str]:
        return [row[1] for row in self._db.execute(f"pragma table_info({table})")]

    def batch(self, table: str, columns: list[str], after: int) -> list[tuple[Any, ...]]:
        """Up to BATCH rows after rowid `after`, in insertion order, the rowid first."""
        names = ", ".join(columns)
        query = f"select rowid, {names} from {table} where rowid > ? order by rowid limit ?"
        return self._db.execute(query, [after, BATCH]).fetchall()

    def close(self) -> None:
        self._db.close()


async def _tables(reader: _Snapshot) -> AsyncIterator[Batch]:
    """(table, columns, rows) batches in insertion order; an async generator for load_rows."""
    for table in TABLES:
        columns = await asyncio.to_thread(reader.columns, table)
        after = 0
        while True:
            rows = await asyncio.to_thread(reader.batch, table, columns, after)
            if not rows:
                break
            after = rows[-1][0]
            yield table, columns, [row[1:] for row in rows]
