"""A spoken turn over a live `/v1/realtime` socket with the real `openai` SDK: the gateway's
silero VAD finds the turn; with no OVOS reachable the response fails cleanly (never hangs)."""

from __future__ import annotations

import base64

import openai

from .gateway_process import GatewayProcess
from .realtime_helpers import SPOKEN_TURN_EVENTS
from .speech import chunks, speech_pcm


async def test_spoken_turn_through_an_ek_secret_session(gateway: GatewayProcess, alpha_key: str) -> None:
    client = openai.AsyncOpenAI(base_url=gateway.api_base, api_key=alpha_key, max_retries=0)
    secret = await client.realtime.client_secrets.create(
        session={
            "type": "realtime",
            "audio": {"input": {"turn_detection": {"type": "server_vad", "silence_duration_ms": 500}}},
        }
    )
    ephemeral = openai.AsyncOpenAI(base_url=gateway.api_base, api_key=secret.value, max_retries=0)
    seen: list[str] = []
    async with ephemeral.realtime.connect(model="gpt-realtime") as conn:
        created = await conn.recv()
        vad = created.session.audio.input.turn_detection  # type: ignore[union-attr]  # recv() is typed as the SDK's union of server events and sessions
        assert vad.silence_duration_ms == 500  # type: ignore[union-attr]  # turn_detection: the SDK's union of VAD kinds (None allowed)
        for part in chunks(speech_pcm("what time is it", lead_ms=600, tail_ms=900)):
            await conn.input_audio_buffer.append(audio=base64.b64encode(part).decode())
        async for event in conn:
            seen.append(event.type)
            if event.type == "response.done":
                done = event.response
                break
    await client.close()
    await ephemeral.close()
    assert seen[: len(SPOKEN_TURN_EVENTS)] == SPOKEN_TURN_EVENTS
    assert done.status == "failed"
    error = done.status_details.error  # type: ignore[union-attr]  # optional in the SDK's model
    assert error is not None and error.code == "responder_unavailable" and "OVOS" in (error.message or "")
