"""Projects cannot see each other's sessions; a restart on the same data dir loses nothing."""

from __future__ import annotations

import asyncio
import base64
import json
import time
from pathlib import Path

import openai
import pytest
import sqlite_utils

from .conftest import SdkFactory
from .gateway_process import GatewayProcess, create_key, http


def test_a_project_cannot_see_another_projects_session(
    gateway: GatewayProcess, alpha_key: str, beta_key: str, client: openai.OpenAI
) -> None:
    session_id = client.realtime.client_secrets.create().session.id
    url = f"{gateway.api_base}/realtime/sessions/{session_id}"
    assert http("GET", url, key=alpha_key).status == 200
    foreign = http("GET", url, key=beta_key)
    assert foreign.status == 404, "another project's session must look like one that does not exist"
    assert foreign.json()["error"]["message"] == http(
        "GET", f"{gateway.api_base}/realtime/sessions/sess_nope", key=beta_key
    ).json()["error"]["message"].replace("sess_nope", session_id)


def test_a_client_secret_cannot_read_sessions(gateway: GatewayProcess, client: openai.OpenAI) -> None:
    secret = client.realtime.client_secrets.create()
    result = http("GET", f"{gateway.api_base}/realtime/sessions/{secret.session.id}", key=secret.value)
    assert result.status == 403


@pytest.mark.slow
def test_restart_keeps_keys_secrets_and_sessions(tmp_path: Path, make_sdk: SdkFactory) -> None:
    data_dir = tmp_path / "data"
    key = create_key(data_dir, "durable")
    with GatewayProcess(data_dir, log_name="first") as first:
        sdk = make_sdk(first.api_base, key)
        secret = sdk.realtime.client_secrets.create(
            session={"type": "realtime", "instructions": "remember me"}
        )
    with GatewayProcess(data_dir, log_name="second") as second:
        sdk = make_sdk(second.api_base, key)
        sdk.models.list()  # the key still works
        stored = http("GET", f"{second.api_base}/realtime/sessions/{secret.session.id}", key=key)
        assert stored.status == 200 and stored.json()["instructions"] == "remember me"
        # the secret is still known: it is refused for minting (403), not unknown (401)
        assert (
            http("POST", f"{second.api_base}/realtime/client_secrets", json_body={}, key=secret.value).status
            == 403
        )


async def test_conversation_items_are_stored_as_they_happen(gateway: GatewayProcess, alpha_key: str) -> None:
    """Committed turns and created items reach the sqlite store during the session (audio stays
    in memory only), in conversation order."""
    client = openai.AsyncOpenAI(base_url=gateway.api_base, api_key=alpha_key, max_retries=0)
    async with client.realtime.connect(model="gpt-realtime") as conn:
        session_id = (await conn.recv()).session.id  # type: ignore[union-attr]  # recv() is typed as the SDK's union of server events and sessions
        await conn.session.update(session={"type": "realtime", "audio": {"input": {"turn_detection": None}}})
        await conn.recv()
        await conn.input_audio_buffer.append(audio=base64.b64encode(bytes(9600)).decode())
        await conn.input_audio_buffer.commit()
        committed = await conn.recv()
        text = {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "hello"}]}
        await conn.conversation.item.create(item=text)  # type: ignore[arg-type]  # a plain dict where the SDK wants its item union
        # item: the SDK's union of every item kind (only messages have content)
        while (event := await conn.recv()).type != "conversation.item.done" or event.item.content[  # type: ignore[union-attr]  # item: the SDK's union of item kinds
            0
        ].type != "input_text":
            pass
        database = sqlite_utils.Database(gateway.data_dir / "ovos-realtime.db")
        deadline = time.monotonic() + 5
        while True:
            rows = list(
                database["conversation_items"].rows_where("session_id = ?", [session_id], order_by="position")
            )
            if len(rows) == 2 or time.monotonic() > deadline:
                break
            await asyncio.sleep(0.05)
        assert [r["item_id"] for r in rows][0] == committed.item_id  # type: ignore[union-attr]  # recv() is typed as the SDK's union of server events
        stored = [json.loads(r["item"]) for r in rows]
        # the audio item without its audio (a transcript of the silence may already be there)
        assert [set(part) for part in stored[0]["content"]] == [{"type", "transcript"}]
        assert stored[0]["content"][0]["type"] == "input_audio"
        assert stored[1]["content"][0]["text"] == "hello"
    await client.close()


async def test_sessions_a_killed_gateway_left_active_are_closed_at_the_next_start(tmp_path: Path) -> None:
    """kill -9 while a session is open leaves its row `active`; the next start closes it (no
    session of a dead process is live) and says so in its log."""
    import signal
    import sqlite3

    import aiohttp

    from .gateway_process import configured_gateway

    gateway, key = await asyncio.to_thread(configured_gateway, tmp_path, {}, "home", "killed")
    await asyncio.to_thread(gateway.start)
    url = gateway.api_base.replace("http://", "ws://") + "/realtime?model=gpt-realtime"
    async with (
        aiohttp.ClientSession() as client,
        client.ws_connect(url, headers={"Authorization": f"Bearer {key}"}) as ws,
    ):
        session_id = (await ws.receive_json())["session"]["id"]
        assert gateway.proc is not None
        gateway.proc.send_signal(signal.SIGKILL)
        await asyncio.to_thread(gateway.proc.wait, 10)
    database = gateway.data_dir / "ovos-realtime.db"

    def status() -> str:
        with sqlite3.connect(database) as db:
            return str(db.execute("select status from sessions where id = ?", [session_id]).fetchone()[0])

    assert status() == "active"
    async with GatewayProcess(gateway.data_dir, log_name="restarted") as restarted:
        assert status() == "closed"
        assert "closed 1 session(s) left active" in restarted.stderr_path.read_text()
