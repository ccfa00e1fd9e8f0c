"""Contract §15, the WebSocket items, walked with the real Python SDK (`client.realtime.connect`)
once with a project key and once with an `ek_` client secret. Items that need a responder that
answers (29, 34, 36, 37, 42) are in test_engine.py; 35 in test_turn_detection.py and
test_realtime_voice.py; 43–44 in test_realtime_lifecycle.py; 11–18 in test_realtime_handshake.py."""

from __future__ import annotations

import base64
import time
from collections.abc import AsyncIterator
from typing import Any

import openai
import pytest
import websockets
from openai.resources.realtime.realtime import AsyncRealtimeConnection
from openai.types.realtime import RealtimeAudioInputTurnDetectionParam

from ovos_realtime_gateway.settings import GatewaySettings

from .gateway_process import GatewayProcess

GATEWAY_SILENCE_MS = GatewaySettings().vad_silence_duration_ms

SILENCE_200MS = base64.b64encode(bytes(24000 * 2 // 5)).decode()


@pytest.fixture(params=["project_key", "ek_secret"])
async def conn(
    request: pytest.FixtureRequest, gateway: GatewayProcess, alpha_key: str
) -> AsyncIterator[AsyncRealtimeConnection]:
    client = openai.AsyncOpenAI(base_url=gateway.api_base, api_key=alpha_key, max_retries=0)
    key = alpha_key
    if request.param == "ek_secret":
        key = (await client.realtime.client_secrets.create(session={"type": "realtime"})).value
        assert key.startswith("ek_")
    user = openai.AsyncOpenAI(base_url=gateway.api_base, api_key=key, max_retries=0)
    async with user.realtime.connect(model="gpt-realtime") as connection:
        yield connection
    await user.close()
    await client.close()


async def expect(conn: AsyncRealtimeConnection, type_: str) -> Any:
    event = await conn.recv()
    assert event.type == type_, f"expected {type_}, got {event.type}: {event}"
    return event


async def error_of(conn: AsyncRealtimeConnection) -> Any:
    return (await expect(conn, "error")).error


async def test_websocket_checklist(conn: AsyncRealtimeConnection) -> None:
    # 19: the first frame is session.created with OpenAI's defaults
    created = await expect(conn, "session.created")
    session = created.session
    assert session.type == "realtime" and abs(session.expires_at - (time.time() + 3600)) < 10
    vad = session.audio.input.turn_detection
    assert (vad.type, vad.threshold, vad.prefix_padding_ms, vad.silence_duration_ms) == (
        "server_vad",
        0.5,
        300,
        GATEWAY_SILENCE_MS,  # the gateway's default (OpenAI's is 200): docs/configuration.md
    )
    assert vad.create_response and vad.interrupt_response

    # 20: unknown type
    await conn.send_raw('{"type": "nope"}')
    error = await error_of(conn)
    assert (error.type, error.code, error.param, error.event_id) == (
        "invalid_request_error",
        "invalid_value",
        "type",
        None,
    )
    # 21: unknown field, whole update discarded
    await conn.send_raw(
        '{"type": "session.update", "session": {"type": "realtime", "instructions": "no", "bogus": 1}}'
    )
    error = await error_of(conn)
    assert (error.code, error.param) == ("unknown_parameter", "session.bogus")
    # 22: missing session.type
    await conn.send_raw('{"type": "session.update", "session": {"instructions": "no"}}')
    assert (await error_of(conn)).code == "missing_required_parameter"
    # 23: non-JSON text and a binary frame
    await conn.send_raw("not json")
    assert (await error_of(conn)).code == "invalid_json"
    await conn.send_raw(b"\x00\x01")
    assert (await error_of(conn)).code == "invalid_event"
    # 24: the client's event_id is echoed inside the error; the outer id is the server's
    await conn.send_raw('{"type": "conversation.item.delete", "item_id": "item_nope", "event_id": "X"}')
    event = await expect(conn, "error")
    assert event.error.event_id == "X" and event.event_id.startswith("event_")

    # 25 + 41: session.updated carries the whole effective config, turn detection truthfully
    await conn.session.update(
        session={"type": "realtime", "instructions": "yes", "audio": {"input": {"turn_detection": None}}}
    )
    updated = (await expect(conn, "session.updated")).session
    assert updated.instructions == "yes" and updated.audio.input.turn_detection is None
    assert updated.audio.output.voice == "alloy" and updated.output_modalities == ["audio"]
    vad_off: RealtimeAudioInputTurnDetectionParam = {
        "type": "server_vad",
        "interrupt_response": False,
        "create_response": False,
    }
    await conn.session.update(session={"type": "realtime", "audio": {"input": {"turn_detection": vad_off}}})
    vad = (await expect(conn, "session.updated")).session.audio.input.turn_detection
    assert (vad.interrupt_response, vad.create_response) == (False, False)
    await conn.session.update(session={"type": "realtime", "audio": {"input": {"turn_detection": None}}})
    await expect(conn, "session.updated")

    # 26 + 27: append has no acknowledgement; committing too little audio is an error
    await conn.input_audio_buffer.append(audio=base64.b64encode(bytes(960)).decode())  # 20 ms
    await conn.input_audio_buffer.commit()
    error = await error_of(conn)  # the append answered nothing: the next event is the commit's
    assert error.code == "input_audio_buffer_commit_empty" and "at least 100ms" in error.message
    # 28: commit ≥100 ms → committed, item.added, item.done; no response
    await conn.input_audio_buffer.clear()
    await expect(conn, "input_audio_buffer.cleared")
    await conn.input_audio_buffer.append(audio=SILENCE_200MS)
    await conn.input_audio_buffer.commit()
    committed = await expect(conn, "input_audio_buffer.committed")
    added = await expect(conn, "conversation.item.added")
    assert added.item.id == committed.item_id and added.item.content[0].type == "input_audio"
    assert (await expect(conn, "conversation.item.done")).item.id == committed.item_id
    first_item = committed.item_id

    # 30: cancel with nothing active
    await conn.response.cancel()
    assert (await error_of(conn)).code == "response_cancel_not_active", (
        "and no response was created by the commit"
    )
    # 31: only assistant audio can be truncated
    await conn.conversation.item.truncate(item_id=first_item, content_index=0, audio_end_ms=10)
    assert (await error_of(conn)).message == "Only model output audio messages can be truncated."
    # 32: previous_item_id "root" inserts first; an unknown id adds nothing
    text_item: Any = {"type": "message", "role": "user", "content": [{"type": "input_text", "text": "first"}]}
    await conn.conversation.item.create(item=text_item, previous_item_id="root")
    root_added = await expect(conn, "conversation.item.added")
    assert root_added.previous_item_id is None
    await expect(conn, "conversation.item.done")
    await conn.conversation.item.create(item=text_item, previous_item_id="item_unknown")
    assert (await error_of(conn)).code is not None
    # 33: delete an existing item, then an unknown one
    await conn.conversation.item.delete(item_id=root_added.item.id)
    assert (await expect(conn, "conversation.item.deleted")).item_id == root_added.item.id
    await conn.conversation.item.delete(item_id=root_added.item.id)
    await error_of(conn)
    # the conversation as stored: the committed audio item, retrievable with its audio
    await conn.conversation.item.retrieve(item_id=first_item)
    retrieved = await expect(conn, "conversation.item.retrieved")
    assert base64.b64decode(retrieved.item.content[0].audio) == bytes(24000 * 2 // 5)

    # 45: session.close ends the session gracefully
    # session.close is not among the SDK's client events (it is sent as a plain dict)
    await conn.send({"type": "session.close"})  # type: ignore[arg-type]  # session.close is not among the SDK's client events
    with pytest.raises(websockets.exceptions.ConnectionClosedOK) as closed:
        await conn.recv()
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 1000
