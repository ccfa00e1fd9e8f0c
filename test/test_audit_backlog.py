"""The audit backlog while the store is away (probe of issue 18): a real PostgreSQL (its own
throwaway cluster, halted and resumed) behind the real store and audit writer.

Each failed authentication is an audit entry, and while PostgreSQL is down they wait in memory. The
probe measured a gateway during an outage: 0.7 KiB more resident memory per unauthenticated request
from a new address, without end (10,000 requests in 6 s from one client behind a trusted proxy). So
the backlog is bounded: past `max_backlog` entries are counted, not kept, and once the store answers
the kept ones are written with one `audit.dropped` row saying how many were not."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator

import pytest

from ovos_realtime_gateway.observability.audit import AuditWriter
from ovos_realtime_gateway.observability.metrics import GatewayMetrics
from ovos_realtime_gateway.store import AuditEntry
from ovos_realtime_gateway.store.postgres import PostgresStore

from .postgres_server import PostgresServer
from .waiting import wait_until_async

pytestmark = pytest.mark.slow
KEPT, SENT = 50, 400


@pytest.fixture(scope="module")
def own_postgres() -> Iterator[PostgresServer]:
    """A PostgreSQL of this module's own: its test stops and starts it."""
    with PostgresServer() as server:
        yield server


def _failed_login(number: int) -> AuditEntry:
    return AuditEntry(
        float(number),
        f"req_{number}",
        "models.list",
        "unauthenticated",
        401,
        detail={"remote": f"10.0.{number}.1"},
    )


async def test_the_audit_backlog_is_bounded_during_an_outage(own_postgres: PostgresServer) -> None:
    url = await asyncio.to_thread(own_postgres.create_database)
    store = PostgresStore(url)
    metrics = GatewayMetrics()
    try:
        await store.migrate()
        writer = AuditWriter(store, metrics, max_backlog=KEPT)
        await asyncio.to_thread(own_postgres.halt)
        for number in range(SENT):
            writer.record(_failed_login(number))
            if number == SENT // 2:
                await writer.flush()  # a round of the writer, failing: what it took is kept again
        assert metrics.registry.get_sample_value("ovos_realtime_audit_backlog") == KEPT

        await asyncio.to_thread(own_postgres.resume)

        async def written() -> bool:  # the writer's rounds, until the pool has reconnected
            await writer.flush()
            return metrics.registry.get_sample_value("ovos_realtime_audit_backlog") == 0

        await wait_until_async(written, "the kept audit entries written once PostgreSQL is back", 60)
        rows = await store.audit_rows()
        assert [row["request_id"] for row in rows[:KEPT]] == [f"req_{n}" for n in range(KEPT)]
        dropped = rows[KEPT:]
        assert [(row["action"], row["decision"]) for row in dropped] == [("audit.dropped", "dropped")]
        assert json.loads(dropped[0]["detail"])["entries"] == SENT - KEPT
        assert metrics.registry.get_sample_value("ovos_realtime_audit_backlog") == 0
        await writer.flush()
        assert len(await store.audit_rows()) == KEPT + 1, "the count is written once"
    finally:
        await store.close()
