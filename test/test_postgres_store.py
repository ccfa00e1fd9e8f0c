"""The gateway on PostgreSQL, end to end: `store copy` moves a sqlite store with its history into
PostgreSQL, and a gateway started on it (its password a `file:` reference, checked by SCRAM) knows
the keys, the secrets and the sessions, and saves a new conversation there (the openai SDK)."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import openai
import pytest

from ovos_realtime_gateway.store import SqliteStore
from ovos_realtime_gateway.store.postgres import PostgresStore

from .gateway_process import GatewayProcess, cli, configured_gateway, create_key, http
from .postgres_server import PostgresServer
from .realtime_helpers import realtime_socket

pytestmark = pytest.mark.slow
HELLO = {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "hello"}]}


async def _eventually(check: Callable[[], Awaitable[Any]], what: str, timeout: float = 60.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        found = await check()
        if found:
            return found
        assert time.monotonic() < deadline, f"not within {timeout}s: {what}"
        await asyncio.sleep(0.1)


def _pg_config(root: Path, url: str, password: str) -> Path:
    secret = root / "pg-password"
    secret.write_text(password + "\n")
    config = root / "pg.json"
    config.write_text(json.dumps({"store_url": url, "store_password": f"file:{secret}"}))
    return config


async def test_store_copy_moves_a_sqlite_history_into_postgresql(
    tmp_path: Path, postgres: PostgresServer
) -> None:
    gateway, key = await asyncio.to_thread(configured_gateway, tmp_path, {}, "alpha", "sqlite")
    async with gateway:
        async with realtime_socket(gateway.api_base, key) as reader:
            session = (await reader.until("session.created"))["session"]["id"]
            await reader.send({"type": "conversation.item.create", "item": HELLO})
            await reader.until("conversation.item.done", timeout=30)
        answer = await asyncio.to_thread(
            http,
            "POST",
            f"{gateway.api_base}/realtime/client_secrets",
            json_body={"session": {"type": "realtime"}},
            key=key,
        )
        assert answer.status == 200, answer.body
        minted = answer.json()
    lite = SqliteStore(gateway.data_dir)
    try:  # a call as the call code records it (real calls: test_webrtc_calls, test_sip_calls)
        (project,) = await lite.list_projects()
        call = {"id": "rtc_copied", "project_id": project.id, "session_id": session, "transport": "webrtc"}
        await lite.save_call(
            {**call, "status": "ended", "created_at": int(time.time()), "ended_at": int(time.time())}
        )
        audit_rows = len(await lite.audit_rows())
        assert audit_rows > 0
    finally:
        await lite.close()

    url = await asyncio.to_thread(postgres.create_user, "copied", "copy-pass")
    config = _pg_config(tmp_path, url, "copy-pass")
    done = await asyncio.to_thread(
        cli,
        "store",
        "copy",
        "--to",
        url,
        "--password",
        f"file:{tmp_path / 'pg-password'}",
        data_dir=gateway.data_dir,
    )
    assert (
        "1 projects, 1 api_keys, 2 sessions, 1 client_secrets, 1 calls, 1 conversation_items" in done.stdout
    )
    again = await asyncio.to_thread(
        cli, "store", "copy", "--to", url, "--password", "copy-pass", data_dir=gateway.data_dir, check=False
    )
    assert again.returncode == 1 and "already holds data" in again.stderr, again.stderr
    wrong = await asyncio.to_thread(
        cli, "store", "copy", "--to", url, "--password", "wrong", data_dir=gateway.data_dir, check=False
    )
    assert wrong.returncode == 1 and "password authentication failed" in wrong.stderr, wrong.stderr
    assert "wrong" not in wrong.stderr.replace("password authentication failed", "")

    pg_data = tmp_path / "pg-data"
    async with GatewayProcess(pg_data, "--config", str(config), log_name="postgresql") as second:
        models = await asyncio.to_thread(http, "GET", f"{second.api_base}/models", key=key)
        assert models.status == 200, "the key authenticates"
        record = await asyncio.to_thread(
            http, "GET", f"{second.api_base}/realtime/sessions/{session}", key=key
        )
        assert record.status == 200 and record.json()["status"] == "closed"
        async with realtime_socket(second.api_base, minted["value"]) as reader:  # the ek_ opens its session
            created = await reader.until("session.created")
            assert created["session"]["id"] == minted["session"]["id"]
    assert not (pg_data / "ovos-realtime.db").exists(), "no sqlite store beside PostgreSQL"
    store = PostgresStore(url, lambda: "copy-pass")
    try:
        assert [i["content"][0]["text"] for i in await store.list_items(session)] == ["hello"]
        assert [c["id"] for c in await store.list_calls()] == ["rtc_copied"]
        assert len(await store.audit_rows()) > audit_rows, "the audit trail, and what came after"
    finally:
        await store.close()


async def test_a_gateway_on_postgresql_serves_the_openai_sdk_and_saves_its_conversation(
    tmp_path: Path, postgres: PostgresServer
) -> None:
    url = await asyncio.to_thread(postgres.create_user, "gateway", "gw-pass")
    config = _pg_config(tmp_path, url, "gw-pass")
    data_dir = tmp_path / "data"
    key = await asyncio.to_thread(create_key, data_dir, "alpha", config)
    async with GatewayProcess(data_dir, "--config", str(config), log_name="postgresql") as gateway:
        sdk = openai.AsyncOpenAI(base_url=gateway.api_base, api_key=key, max_retries=0)
        secret = await sdk.realtime.client_secrets.create(
            session={"type": "realtime", "instructions": "on pg"}
        )
        ephemeral = openai.AsyncOpenAI(base_url=gateway.api_base, api_key=secret.value, max_retries=0)
        try:
            async with ephemeral.realtime.connect(model="gpt-realtime") as conn:
                created = await conn.recv()
                assert created.type == "session.created" and created.session.id == secret.session.id  # type: ignore[union-attr]  # the SDK types the event as a union of every server event
                await conn.conversation.item.create(item=HELLO)  # type: ignore[arg-type]  # a plain dict item, as a user writes it, not the SDK TypedDict
                async for event in conn:
                    if event.type == "conversation.item.done":
                        break
        finally:
            await ephemeral.close()
            await sdk.close()
        session_id = str(secret.session.id)
        store = PostgresStore(url, lambda: "gw-pass")
        try:
            items = await _eventually(lambda: store.list_items(session_id), "the conversation saved")
            assert items[0]["content"][0]["text"] == "hello"
            record = await asyncio.to_thread(
                http, "GET", f"{gateway.api_base}/realtime/sessions/{session_id}", key=key
            )
            assert record.status == 200 and record.json()["instructions"] == "on pg"
        finally:
            await store.close()
    purged = await asyncio.to_thread(
        cli, "data", "purge", "--session", session_id, "--config", str(config), data_dir=data_dir
    )
    assert f"purged 1 sessions, {len(items)} conversation items, 1 client secrets" in purged.stdout
    assert not (data_dir / "ovos-realtime.db").exists(), "the gateway's store is PostgreSQL only"
