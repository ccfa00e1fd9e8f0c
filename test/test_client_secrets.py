"""`POST /v1/realtime/client_secrets` through the real `openai` SDK (contract §2.2, checklist 3–5)."""

from __future__ import annotations

import time

import openai
import pytest
from openai.types.realtime import (
    RealtimeSessionCreateResponse,
    RealtimeTranscriptionSessionCreateResponse,
)
from openai.types.realtime.realtime_session_create_response import AudioInputTurnDetectionServerVad

from ovos_realtime_gateway.settings import GatewaySettings

from .gateway_process import GatewayProcess, http

GATEWAY_SILENCE_MS = GatewaySettings().vad_silence_duration_ms


def test_creates_an_ek_secret_with_the_session_echoed(client: openai.OpenAI) -> None:
    before = time.time()
    secret = client.realtime.client_secrets.create(
        expires_after={"anchor": "created_at", "seconds": 600},
        session={"type": "realtime", "model": "gpt-realtime"},
    )
    assert secret.value.startswith("ek_")
    assert before + 590 <= secret.expires_at <= time.time() + 610
    session = secret.session
    assert isinstance(session, RealtimeSessionCreateResponse)
    assert session.type == "realtime"
    assert session.object == "realtime.session"
    assert session.id.startswith("sess_")
    assert session.model == "gpt-realtime"


def test_echoed_session_carries_openai_defaults(client: openai.OpenAI) -> None:
    session = client.realtime.client_secrets.create(session={"type": "realtime"}).session
    assert isinstance(session, RealtimeSessionCreateResponse)
    assert session.output_modalities == ["audio"]
    assert session.tool_choice == "auto" and session.tools == []
    assert session.max_output_tokens == "inf"
    assert session.truncation == "auto"
    assert session.audio is not None and session.audio.input is not None and session.audio.output is not None
    vad = session.audio.input.turn_detection
    assert vad is not None and vad.type == "server_vad"
    assert (vad.threshold, vad.prefix_padding_ms, vad.silence_duration_ms) == (0.5, 300, GATEWAY_SILENCE_MS)
    assert vad.create_response is True and vad.interrupt_response is True
    fmt = session.audio.input.format
    assert fmt is not None and fmt.type == "audio/pcm" and getattr(fmt, "rate", None) == 24000
    assert session.audio.output.voice == "alloy"


def test_client_config_is_merged_into_defaults(client: openai.OpenAI) -> None:
    session = client.realtime.client_secrets.create(
        session={
            "type": "realtime",
            "instructions": "be brief",
            "output_modalities": ["text"],
            "audio": {
                "input": {
                    "format": {"type": "audio/pcmu"},
                    "turn_detection": {"type": "server_vad", "threshold": 0.7},
                },
                "output": {"voice": "marin"},
            },
            "tools": [
                {"type": "function", "name": "lookup", "description": "d", "parameters": {"type": "object"}}
            ],
        }
    ).session
    assert isinstance(session, RealtimeSessionCreateResponse)
    assert session.instructions == "be brief"
    assert session.output_modalities == ["text"]
    assert session.audio and session.audio.input and session.audio.output
    assert session.audio.input.format is not None and session.audio.input.format.type == "audio/pcmu"
    vad = session.audio.input.turn_detection
    assert isinstance(vad, AudioInputTurnDetectionServerVad)
    assert vad.threshold == 0.7 and vad.silence_duration_ms == GATEWAY_SILENCE_MS
    assert session.audio.output.voice == "marin"
    assert session.tools and session.tools[0].name == "lookup"  # type: ignore[union-attr]  # tools: the SDK's union of function and MCP tools


def test_transcription_session(client: openai.OpenAI) -> None:
    secret = client.realtime.client_secrets.create(
        session={
            "type": "transcription",
            "audio": {"input": {"transcription": {"model": "whisper-1", "language": "en"}}},
        }
    )
    assert isinstance(secret.session, RealtimeTranscriptionSessionCreateResponse)
    assert secret.session.type == "transcription"
    assert secret.session.id.startswith("sess_")


def test_default_ttl_is_ten_minutes(client: openai.OpenAI) -> None:
    secret = client.realtime.client_secrets.create()
    assert abs(secret.expires_at - (time.time() + 600)) < 10


@pytest.mark.parametrize(
    ("seconds", "code"), [(9, "integer_below_min_value"), (7201, "integer_above_max_value")]
)
def test_ttl_bounds(client: openai.OpenAI, seconds: int, code: str) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        client.realtime.client_secrets.create(expires_after={"anchor": "created_at", "seconds": seconds})
    assert caught.value.code == code
    assert caught.value.param == "expires_after.seconds"


def test_unknown_model_names_the_supported_ones(client: openai.OpenAI) -> None:
    with pytest.raises(openai.BadRequestError) as caught:
        client.realtime.client_secrets.create(session={"type": "realtime", "model": "gpt-nope"})
    assert caught.value.code == "invalid_value"
    assert caught.value.param == "session.model"
    assert "'gpt-realtime'" in caught.value.message


def test_the_session_is_stored_with_its_full_config(
    gateway: GatewayProcess, client: openai.OpenAI, alpha_key: str
) -> None:
    secret = client.realtime.client_secrets.create(session={"type": "realtime", "instructions": "stored?"})
    stored = http("GET", f"{gateway.api_base}/realtime/sessions/{secret.session.id}", key=alpha_key)
    assert stored.status == 200
    body = stored.json()
    assert body["status"] == "pending"
    assert body["instructions"] == "stored?"
    assert body["audio"] == secret.session.model_dump(mode="json")["audio"]


def test_integral_json_numbers_are_integers_and_null_means_unset(
    gateway: GatewayProcess, alpha_key: str
) -> None:
    """JSON Schema counts 600.0 as an integer; a `null` for a plain field means "not sent"."""
    body = {
        "expires_after": {"anchor": "created_at", "seconds": 600.0},
        "session": {
            "type": "realtime",
            "model": None,
            "instructions": None,
            "audio": {"input": {"format": {}}},
        },
    }
    response = http(
        "POST",
        f"{gateway.api_base}/realtime/client_secrets",
        json_body=body,
        headers={"Authorization": f"Bearer {alpha_key}"},
    )
    assert response.status == 200, response.body
    created = response.json()
    assert 599 <= created["expires_at"] - int(time.time()) <= 601
    session = created["session"]
    assert session["model"] == "gpt-realtime" and session["instructions"]  # defaults, not null
    assert session["audio"]["input"]["format"] == {"type": "audio/pcm", "rate": 24000}
    half = dict(body, expires_after={"anchor": "created_at", "seconds": 600.5})
    refused = http(
        "POST",
        f"{gateway.api_base}/realtime/client_secrets",
        json_body=half,
        headers={"Authorization": f"Bearer {alpha_key}"},
    )
    assert refused.status == 400 and refused.json()["error"]["param"] == "expires_after.seconds"
