"""What the store writes for what a client can make it write, old way beside new, in one run.

1. Throttled attempts through the real `AuditWriter` into a real store: one row each (`record`,
   what the guard did; 10,000 attempts) beside one counted row per address and 60 s window
   (`record_repeated`, what it does now; an hour of 10 addresses at 30 attempts/s each, on a
   simulated clock). Printed: rows, store bytes per 1,000 attempts, and the ratio.
2. A long conversation: 1,500 items appended one by one, the conversation saved after each, as
   the engine does — rewritten whole each time (the old save: every item serialised, the rows
   deleted and inserted again) beside the incremental save (`ItemLedger`). Printed: rows
   written, the event loop's time to find (and serialise) what to write, the store thread's time
   in total and for the last save, the longest wait of a query (`ping`, as REST's key lookup)
   asked for while the saves run, and the ratios.

Usage: .venv/bin/python bench/store_growth.py [--items 1500]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sqlite3
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from ovos_realtime_gateway.observability.audit import AuditWriter  # noqa: E402
from ovos_realtime_gateway.observability.metrics import GatewayMetrics  # noqa: E402
from ovos_realtime_gateway.store import AuditEntry, ItemChanges, ItemLedger, SqliteStore  # noqa: E402
from ovos_realtime_gateway.store.item_ledger import ItemRow, without_audio  # noqa: E402
from ovos_realtime_gateway.store.sqlite import DB_FILENAME  # noqa: E402


def _db_bytes(data_dir: Path) -> int:
    """Bytes the database needs (pages in use), after the store closed and checkpointed."""
    with sqlite3.connect(data_dir / DB_FILENAME) as db:
        pages = (
            db.execute("pragma page_count").fetchone()[0] - db.execute("pragma freelist_count").fetchone()[0]
        )
        return int(pages * db.execute("pragma page_size").fetchone()[0])


def _throttled(ts: float, remote: str) -> AuditEntry:
    return AuditEntry(
        ts=ts,
        request_id=f"req_{int(ts * 1e6):032x}",
        action="models.list",
        decision="throttled",
        status=429,
        detail={"remote": remote},
    )


async def audit_bytes_per_1000(repeated: bool) -> tuple[int, int, float]:
    """(attempts, rows, store bytes per 1,000 attempts). One row each: 10,000 attempts. Counted:
    an hour of 10 scanning addresses at 30 attempts/s each, on a simulated clock."""
    with tempfile.TemporaryDirectory() as tmp:
        data_dir = Path(tmp)
        store = SqliteStore(data_dir)
        await store.migrate()
        await store.close()
        empty = _db_bytes(data_dir)
        now = [time.time()]
        store = SqliteStore(data_dir)
        writer = AuditWriter(store, GatewayMetrics(), clock=lambda: now[0])
        attempts = 0
        if not repeated:
            for i in range(10_000):
                now[0] += 0.001
                writer.record(_throttled(now[0], "203.0.113.7"))
                attempts += 1
                if i % 200 == 199:  # the writer flushes every 0.2 s
                    await writer.flush()
        else:
            for _ in range(3600):
                now[0] += 1.0
                for address in range(10):
                    for _ in range(30):
                        writer.record_repeated(
                            f"throttled {address}", _throttled(now[0], f"203.0.113.{address}")
                        )
                        attempts += 1
                await writer.flush()
        await writer.stop()
        rows = await store.count("audit_log")
        await store.close()
        return attempts, rows, (_db_bytes(data_dir) - empty) / attempts * 1000


def _item(i: int) -> dict[str, Any]:
    text = f"utterance number {i}: what time is it in Lisbon?"
    return {
        "id": f"item_{i:06d}",
        "object": "realtime.item",
        "type": "message",
        "status": "completed",
        "role": "user",
        "content": [{"type": "input_text", "text": text}],
    }


def _whole(items: list[dict[str, Any]]) -> ItemChanges:
    """The old save: every item serialised, the session's rows deleted and all inserted again."""
    rows = (ItemRow(item["id"], i, json.dumps(without_audio(item))) for i, item in enumerate(items))
    return ItemChanges(tuple(rows), replace_all=True)


async def conversation_saves(count: int, whole: bool) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as tmp:
        store = SqliteStore(Path(tmp))
        await store.migrate()
        with sqlite3.connect(Path(tmp) / DB_FILENAME) as db:
            db.execute("insert into projects values ('proj_b', 'bench', 0)")
            db.execute(
                "insert into sessions (id, project_id, type, config, status, created_at, updated_at) "
                "values ('sess_b', 'proj_b', 'realtime', '{}', 'active', 0, 0)"
            )
        ledger, items = ItemLedger(), []
        rows = 0
        busy = last = loop = 0.0
        waits: list[float] = []
        done = asyncio.Event()

        async def probe() -> None:  # a REST request's store query, asked for while saves run
            while not done.is_set():
                asked = time.perf_counter()
                await store.ping()
                waits.append(time.perf_counter() - asked)
                await asyncio.sleep(0.005)

        prober = asyncio.get_running_loop().create_task(probe())
        for i in range(count):
            items.append(_item(i))
            diffing = time.perf_counter()
            changes = _whole(items) if whole else ledger.changes(items)
            loop += time.perf_counter() - diffing
            rows += len(changes.rows)
            started = time.perf_counter()
            await store.write_items("sess_b", changes)
            last = time.perf_counter() - started
            busy += last
        done.set()
        await prober
        await store.close()
        return {
            "rows": rows,
            "loop_s": loop,
            "busy_s": busy,
            "last_ms": last * 1000,
            "max_wait_ms": max(waits) * 1000,
        }


async def main() -> None:
    parser = argparse.ArgumentParser(description="store writes: old way beside new")
    parser.add_argument("--items", type=int, default=1500)
    args = parser.parse_args()

    print("throttled attempts:")
    per_attempts: dict[bool, float] = {}
    for name, repeated in (("one row each (old)", False), ("one row per window (new)", True)):
        attempts, rows, per_1000 = await audit_bytes_per_1000(repeated)
        per_attempts[repeated] = per_1000
        print(f"  {name:<25} {attempts:>9,} attempts {rows:>7,} rows  {per_1000:>10,.1f} bytes per 1,000")
    print(f"  ratio new / old: {per_attempts[True] / per_attempts[False]:.5f}")

    old = await conversation_saves(args.items, whole=True)
    new = await conversation_saves(args.items, whole=False)
    print(f"conversation of {args.items} items, saved after each item:")
    for name, figures in (("rewritten whole (old)", old), ("incremental (new)", new)):
        print(
            f"  {name:<22} rows {figures['rows']:>10,.0f}  loop {figures['loop_s']:6.2f} s  "
            f"store {figures['busy_s']:6.2f} s  "
            f"last save {figures['last_ms']:6.2f} ms  longest query wait {figures['max_wait_ms']:6.2f} ms"
        )
    ratios = {key: new[key] / old[key] for key in ("rows", "loop_s", "busy_s", "last_ms")}
    print("  ratio new / old: " + ", ".join(f"{key} {ratio:.4f}" for key, ratio in ratios.items()))


if __name__ == "__main__":
    asyncio.run(main())
