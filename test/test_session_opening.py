"""Opening and steering a session (issue 12, defect 10): a `session.update` naming another model
this gateway serves applies (the agents SDKs send their own default model with every update, and
every served name is the same OVOS assistant); an unserved one is refused, logged and counted;
opening a WebSocket session is in the audit trail."""

from __future__ import annotations

import asyncio
import re
import sqlite3
import time

import openai

from .gateway_process import GatewayProcess, http


def _metric(gateway: GatewayProcess, name: str, **labels: str) -> float:
    text = http("GET", f"{gateway.base_url}/metrics").body.decode()
    wanted = ",".join(f'{k}="{v}"' for k, v in labels.items())
    found = re.search(rf"^{re.escape(name)}\{{{re.escape(wanted)}\}} ([0-9.e+-]+)$", text, re.M)
    return float(found.group(1)) if found else 0.0


async def test_an_update_naming_another_served_model_applies_all_of_it(
    gateway: GatewayProcess, alpha_key: str
) -> None:
    client = openai.AsyncOpenAI(base_url=gateway.api_base, api_key=alpha_key, max_retries=0)
    async with client.realtime.connect(model="gpt-4o-realtime-preview") as conn:
        created = await conn.recv()
        assert created.type == "session.created"
        await conn.session.update(
            session={
                "type": "realtime",
                "model": "gpt-realtime",  # what the agents SDKs send, whatever the URL said
                "instructions": "Speak like a pirate.",
                "audio": {"output": {"voice": "marin"}},
            }
        )
        updated = await conn.recv()
        assert updated.type == "session.updated", updated
        assert updated.session.instructions == "Speak like a pirate."  # type: ignore[union-attr]  # recv() is typed as the SDK's union of server events and sessions
        assert updated.session.audio.output.voice == "marin"  # type: ignore[union-attr]  # recv() is typed as the SDK's union of server events and sessions
        assert updated.session.model == "gpt-realtime"  # type: ignore[union-attr]  # recv() is typed as the SDK's union of server events and sessions
    await client.close()


async def test_an_update_naming_an_unserved_model_is_refused_logged_and_counted(
    gateway: GatewayProcess, alpha_key: str
) -> None:
    counted = await asyncio.to_thread(
        _metric, gateway, "ovos_realtime_client_event_errors_total", code="invalid_value"
    )
    client = openai.AsyncOpenAI(base_url=gateway.api_base, api_key=alpha_key, max_retries=0)
    async with client.realtime.connect(model="gpt-realtime") as conn:
        created = await conn.recv()
        await conn.session.update(session={"type": "realtime", "model": "gpt-5-omni", "instructions": "x"})
        error = await conn.recv()
        assert error.type == "error", error
        assert error.error.param == "session.model"
        assert "gpt-5-omni" in error.error.message and "gpt-realtime" in error.error.message
    await client.close()
    session_id = created.session.id  # type: ignore[union-attr]  # recv() is typed as the SDK's union of server events and sessions
    assert (
        await asyncio.to_thread(
            _metric, gateway, "ovos_realtime_client_event_errors_total", code="invalid_value"
        )
    ) == counted + 1
    deadline = time.monotonic() + 10
    while f"session {session_id}: session.update refused" not in gateway.logs():
        assert time.monotonic() < deadline, "the refused update was not logged"
        await asyncio.sleep(0.05)


async def test_opening_a_websocket_session_is_audited(gateway: GatewayProcess, alpha_key: str) -> None:
    client = openai.AsyncOpenAI(base_url=gateway.api_base, api_key=alpha_key, max_retries=0)
    async with client.realtime.connect(model="gpt-realtime") as conn:
        session_id = (await conn.recv()).session.id  # type: ignore[union-attr]  # recv() is typed as the SDK's union of server events and sessions
    await client.close()
    deadline = time.monotonic() + 10
    while True:  # the audit writer flushes in batches
        with sqlite3.connect(gateway.data_dir / "ovos-realtime.db") as db:
            rows = db.execute(
                "select action, decision, status, request_id, principal from audit_log where resource = ?",
                (session_id,),
            ).fetchall()
        if rows or time.monotonic() > deadline:
            break
        await asyncio.sleep(0.05)
    assert [row[:3] for row in rows] == [("realtime.connect", "allowed", 101)]
    assert rows[0][3].startswith("req_") and rows[0][4].startswith("key_")
