"""The retired beta REST shapes, through the SDK's own `client.beta.realtime` (contract §2.5)."""

from __future__ import annotations

import time

import openai
import pytest

from .gateway_process import GatewayProcess, http


def test_beta_session_create(client: openai.OpenAI, gateway: GatewayProcess, alpha_key: str) -> None:
    session = client.beta.realtime.sessions.create(
        model="gpt-4o-realtime-preview",
        modalities=["text"],
        voice="verse",
        input_audio_format="g711_ulaw",
        turn_detection={"type": "server_vad", "silence_duration_ms": 700},
        client_secret={"expires_after": {"anchor": "created_at", "seconds": 120}},
    )
    assert session.client_secret.value.startswith("ek_")
    assert abs(session.client_secret.expires_at - (time.time() + 120)) < 10
    assert session.modalities == ["text"]
    assert session.voice == "verse"
    assert session.input_audio_format == "g711_ulaw"
    assert session.turn_detection is not None and session.turn_detection.silence_duration_ms == 700
    # stored in the GA shape
    assert session.model_extra is not None  # the beta model has no `id` field: it is an extra
    stored = http(
        "GET", f"{gateway.api_base}/realtime/sessions/{session.model_extra['id']}", key=alpha_key
    ).json()
    assert stored["output_modalities"] == ["text"]
    assert stored["audio"]["input"]["format"] == {"type": "audio/pcmu"}
    assert stored["audio"]["output"]["voice"] == "verse"


def test_beta_session_default_ttl_is_one_minute(client: openai.OpenAI) -> None:
    session = client.beta.realtime.sessions.create()
    assert abs(session.client_secret.expires_at - (time.time() + 60)) < 10


def test_beta_transcription_session(client: openai.OpenAI) -> None:
    session = client.beta.realtime.transcription_sessions.create(
        input_audio_format="pcm16", input_audio_transcription={"model": "whisper-1", "language": "en"}
    )
    assert session.client_secret.value.startswith("ek_")
    assert session.input_audio_transcription is not None
    assert session.input_audio_transcription.model == "whisper-1"


def test_beta_rejects_ga_fields(client: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        client.beta.realtime.sessions.create(extra_body={"output_modalities": ["text"]})
    assert caught.value.code == "unknown_parameter" and caught.value.param == "output_modalities"
