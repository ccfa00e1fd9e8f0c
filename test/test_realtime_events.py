"""Client events over a live `/v1/realtime` socket: errors are in-band and the session lives on
(checklist 20–28, 38); the beta dialect through the SDK's own beta client (checklist 18)."""

from __future__ import annotations

import base64
import json
from collections.abc import AsyncIterator

import numpy as np
import openai
import pytest

from ovos_realtime_gateway.audio import OutputTranscoder

from .gateway_process import GatewayProcess
from .realtime_helpers import EventReader, realtime_socket
from .server_event_check import check_server_event
from .speech import speech_pcm


@pytest.fixture
async def reader(gateway: GatewayProcess, alpha_key: str) -> AsyncIterator[EventReader]:
    async with realtime_socket(gateway.api_base, alpha_key) as r:
        assert (await r.next())["type"] == "session.created"
        yield r


async def _error(reader: EventReader, frame: object) -> dict[str, object]:
    await reader.send(frame)  # type: ignore[arg-type]  # a frame that is not an event on purpose
    event = await reader.until("error")
    check_server_event(event)
    assert event["event_id"].startswith("event_")
    error: dict[str, object] = event["error"]
    return error


async def test_errors_are_non_fatal_and_precise(reader: EventReader) -> None:
    error = await _error(reader, {"type": "nope"})
    assert (error["type"], error["code"], error["param"], error["event_id"]) == (
        "invalid_request_error",
        "invalid_value",
        "type",
        None,
    )
    error = await _error(
        reader, {"type": "session.update", "session": {"type": "realtime", "bogus_field": 1}, "event_id": "X"}
    )
    assert (error["code"], error["param"], error["event_id"]) == (
        "unknown_parameter",
        "session.bogus_field",
        "X",
    )
    error = await _error(reader, {"type": "session.update", "session": {"instructions": "x"}})
    assert (error["code"], error["param"]) == ("missing_required_parameter", "session.type")
    assert (await _error(reader, "this is not json"))["code"] == "invalid_json"
    deep = '{"type": "session.update", "session": ' + "[" * 100_000 + "]" * 100_000 + "}"
    assert (await _error(reader, deep))["code"] == "invalid_json", "nested 100k deep: no server_error"
    lone = '{"type": "session.update", "session": {"type": "realtime", "instructions": "a \\udc00 b"}}'
    assert (await _error(reader, lone))["code"] == "invalid_json", "a lone surrogate: no server_error"
    assert (await _error(reader, b"\x00\x01"))["code"] == "invalid_event"
    assert (await _error(reader, {"event_id": "no-type"}))["code"] == "invalid_event"
    error = await _error(reader, {"type": "output_audio_buffer.clear"})
    assert error["code"] == "invalid_value", "output_audio_buffer.clear is for WebRTC/SIP only"
    # after all that, the session still works
    await reader.send(
        {"type": "session.update", "session": {"type": "realtime", "instructions": "still here"}}
    )
    updated = await reader.until("session.updated")
    assert updated["session"]["instructions"] == "still here"


async def test_update_commit_and_response_over_the_wire(reader: EventReader) -> None:
    await reader.send(
        {
            "type": "session.update",
            "session": {"type": "realtime", "audio": {"input": {"turn_detection": None}}},
        }
    )
    updated = await reader.until("session.updated")
    assert updated["session"]["audio"]["input"]["turn_detection"] is None
    assert updated["session"]["audio"]["output"]["voice"] == "alloy", "the full effective config"

    await reader.send({"type": "input_audio_buffer.commit"})
    assert (await reader.until("error"))["error"]["code"] == "input_audio_buffer_commit_empty"
    silence = base64.b64encode(bytes(4800 * 2)).decode()  # 200 ms of 24 kHz pcm16
    await reader.send({"type": "input_audio_buffer.append", "audio": silence})
    assert await reader.quiet(0.3) == [], "append has no acknowledgement"
    await reader.send({"type": "input_audio_buffer.commit"})
    committed = await reader.until("input_audio_buffer.committed")
    added = await reader.until("conversation.item.added")
    assert added["item"]["id"] == committed["item_id"]
    assert added["item"]["content"][0]["type"] == "input_audio"
    await reader.until("conversation.item.done")

    await reader.send({"type": "response.create"})
    created = await reader.until("response.created")
    done = await reader.until("response.done")
    assert done["response"]["id"] == created["response"]["id"]
    assert done["response"]["status"] == "failed", "no OVOS is reachable from a bare gateway"
    assert "OVOS" in done["response"]["status_details"]["error"]["message"]
    for event in reader.seen:
        check_server_event(event)


async def test_every_frame_is_a_text_json_object(reader: EventReader) -> None:
    await reader.send({"type": "input_audio_buffer.clear"})
    cleared = await reader.until("input_audio_buffer.cleared")
    assert set(cleared) == {"type", "event_id"}
    assert json.dumps(cleared)  # round-trips


async def test_sdk_helpers_work(gateway: GatewayProcess, alpha_key: str) -> None:
    client = openai.AsyncOpenAI(base_url=gateway.api_base, api_key=alpha_key, max_retries=0)
    async with client.realtime.connect(model="gpt-realtime") as conn:
        assert (await conn.recv()).type == "session.created"
        await conn.session.update(session={"type": "realtime", "output_modalities": ["text"]})
        updated = await conn.recv()
        assert updated.type == "session.updated" and updated.session.output_modalities == ["text"]  # type: ignore[union-attr]  # recv() is typed as the SDK's union of server events and sessions
        await conn.conversation.item.create(
            item={"type": "message", "role": "user", "content": [{"type": "input_text", "text": "hello"}]}
        )
        added = await conn.recv()
        assert added.type == "conversation.item.added"
        item_id = added.item.id
        assert (await conn.recv()).type == "conversation.item.done"
        await conn.conversation.item.retrieve(item_id=item_id)  # type: ignore[arg-type]  # item_id is optional in the event typed by the SDK
        retrieved = await conn.recv()
        assert retrieved.type == "conversation.item.retrieved"
        await conn.conversation.item.delete(item_id=item_id)  # type: ignore[arg-type]  # item_id is optional in the event typed by the SDK
        assert (await conn.recv()).type == "conversation.item.deleted"
        await conn.response.cancel()
        error = await conn.recv()
        assert error.type == "error" and error.error.code == "response_cancel_not_active"
    await client.close()


async def test_beta_dialect_through_the_sdk_beta_client(gateway: GatewayProcess, alpha_key: str) -> None:
    client = openai.AsyncOpenAI(
        base_url=gateway.api_base,
        websocket_base_url=gateway.api_base.replace("http://", "ws://"),
        api_key=alpha_key,
        max_retries=0,
    )
    async with client.beta.realtime.connect(model="gpt-4o-realtime-preview") as conn:
        created = await conn.recv()
        assert created.type == "session.created"
        assert created.session.modalities == ["text", "audio"]
        assert created.session.input_audio_format == "pcm16"
        await conn.session.update(
            session={"modalities": ["text"], "voice": "verse", "input_audio_format": "g711_ulaw"}
        )
        updated = await conn.recv()
        assert updated.type == "session.updated"
        assert updated.session.modalities == ["text"]
        assert updated.session.input_audio_format == "g711_ulaw"
        await conn.conversation.item.create(
            item={"type": "message", "role": "user", "content": [{"type": "input_text", "text": "hi"}]}
        )
        created_item = await conn.recv()
        assert created_item.type == "conversation.item.created", (
            "beta name for item.added; item.done is not sent"
        )
        await conn.session.update(session={"output_modalities": ["text"]})  # type: ignore[typeddict-unknown-key]  # recv() is typed as the SDK's union of server events and sessions
        error = await conn.recv()
        assert error.type == "error" and error.error.param == "session.output_modalities"
    await client.close()


async def test_agents_opening_sequence_and_truthful_turn_detection(reader: EventReader) -> None:
    """Checklist 40–41: what @openai/agents-realtime sends first, answered each time in full."""
    await reader.send(
        {
            "type": "session.update",
            "session": {
                "type": "realtime",
                "model": "gpt-realtime",
                "instructions": "be brief",
                "output_modalities": ["audio"],
                "audio": {
                    "input": {
                        "format": {"type": "audio/pcm", "rate": 24000},
                        "noise_reduction": None,
                        "transcription": {"model": "gpt-4o-mini-transcribe"},
                        "turn_detection": {"type": "semantic_vad"},
                    },
                    "output": {"format": {"type": "audio/pcm", "rate": 24000}, "voice": "verse"},
                },
                "tools": [],
            },
        }
    )
    first = (await reader.until("session.updated"))["session"]
    assert first["audio"]["input"]["turn_detection"]["type"] == "semantic_vad"
    assert first["audio"]["input"]["noise_reduction"] is None
    await reader.send({"type": "session.update", "session": {"type": "realtime", "tracing": "auto"}})
    second = (await reader.until("session.updated"))["session"]
    assert second["tracing"] == "auto" and second["audio"]["output"]["voice"] == "verse"
    vad = {"type": "server_vad", "interrupt_response": False}
    await reader.send(
        {
            "type": "session.update",
            "session": {"type": "realtime", "audio": {"input": {"turn_detection": vad}}},
        }
    )
    third = (await reader.until("session.updated"))["session"]["audio"]["input"]["turn_detection"]
    assert third["interrupt_response"] is False and third["create_response"] is True
    assert "error" not in reader.types()
    for event in reader.seen:
        check_server_event(event)


async def test_beta_dialect_voice_turn_and_response(gateway: GatewayProcess, alpha_key: str) -> None:
    """The GA flow in the beta dialect: server VAD finds a spoken turn in g711_ulaw audio, the
    item is `conversation.item.created`, and the response ends `failed` (no OVOS here)."""
    client = openai.AsyncOpenAI(
        base_url=gateway.api_base,
        websocket_base_url=gateway.api_base.replace("http://", "ws://"),
        api_key=alpha_key,
        max_retries=0,
    )
    ulaw = OutputTranscoder(24000, "g711_ulaw")
    speech = (
        ulaw.feed(np.frombuffer(speech_pcm("what time is it", lead_ms=500, tail_ms=800), "<i2"))
        + ulaw.flush()
    )
    seen: list[str] = []
    async with client.beta.realtime.connect(model="gpt-4o-realtime-preview") as conn:
        assert (await conn.recv()).type == "session.created"
        await conn.session.update(
            session={
                "modalities": ["text"],
                "input_audio_format": "g711_ulaw",
                "turn_detection": {"type": "server_vad", "silence_duration_ms": 500},
            }
        )
        assert (await conn.recv()).type == "session.updated"
        for i in range(0, len(speech), 160):  # 20 ms of 8 kHz µ-law
            await conn.input_audio_buffer.append(audio=base64.b64encode(speech[i : i + 160]).decode())
        async for event in conn:
            seen.append(event.type)
            if event.type == "response.done":
                assert event.response.status == "failed"
                break
    await client.close()
    assert seen[:4] == [
        "input_audio_buffer.speech_started",
        "input_audio_buffer.speech_stopped",
        "input_audio_buffer.committed",
        "conversation.item.created",
    ]
    assert seen[4:] == ["response.created", "response.done"]
