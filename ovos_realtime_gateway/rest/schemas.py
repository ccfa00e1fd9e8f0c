"""Response shapes of the REST API, for the OpenAPI document (the handlers build plain dicts).

Request shapes are the strict models in protocol/; responses reuse their sub-objects, so the
document says exactly what the gateway echoes. Tests validate live responses against it.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal, Union

from pydantic import BaseModel, ConfigDict, Field

from ..protocol.session_models import (
    AudioFormat,
    Include,
    MaxOutputTokens,
    NoiseReduction,
    Prompt,
    Reasoning,
    RetentionRatio,
    Tool,
    ToolChoice,
    TracingConfig,
    Transcription,
    TurnDetection,
    VoiceId,
)


class Shape(BaseModel):
    model_config = ConfigDict(extra="forbid")


class ErrorDetail(Shape):
    message: str
    type: str
    param: str | None
    code: str | None


class ErrorBody(Shape):
    error: ErrorDetail


class SessionAudioInput(Shape):
    format: AudioFormat
    transcription: Transcription | None
    noise_reduction: NoiseReduction | None
    turn_detection: TurnDetection | None


class SessionAudioOutput(Shape):
    format: AudioFormat
    voice: str | VoiceId
    speed: float


class SessionAudio(Shape):
    input: SessionAudioInput
    output: SessionAudioOutput


class RealtimeSessionObject(Shape):
    type: Literal["realtime"]
    object: Literal["realtime.session"]
    id: str = Field(pattern=r"^sess_")
    model: str
    output_modalities: list[Literal["text", "audio"]]
    instructions: str
    tools: list[Tool]
    tool_choice: ToolChoice
    max_output_tokens: MaxOutputTokens
    tracing: Literal["auto"] | TracingConfig | None
    truncation: Literal["auto", "disabled"] | RetentionRatio
    prompt: Prompt | None
    audio: SessionAudio
    include: Include | None
    parallel_tool_calls: bool | None = None
    reasoning: Reasoning | None = None
    expires_at: int


class TranscriptionAudioInputObject(Shape):
    format: AudioFormat
    transcription: Transcription | None
    noise_reduction: NoiseReduction | None
    turn_detection: dict[str, Any] | None


class TranscriptionAudioObject(Shape):
    input: TranscriptionAudioInputObject


class TranscriptionSessionObject(Shape):
    type: Literal["transcription"]
    object: Literal["realtime.transcription_session"]
    id: str = Field(pattern=r"^sess_")
    audio: TranscriptionAudioObject
    include: Include | None
    expires_at: int


SessionObject = Annotated[
    Union[RealtimeSessionObject, TranscriptionSessionObject], Field(discriminator="type")
]


class ClientSecretResponse(Shape):
    value: str = Field(pattern=r"^ek_")
    expires_at: int
    session: SessionObject


class StoredSession(Shape):
    """A stored session (the realtime or transcription object plus its lifecycle)."""

    model_config = ConfigDict(extra="allow")
    type: Literal["realtime", "transcription"]
    object: str
    id: str = Field(pattern=r"^sess_")
    status: Literal["pending", "active", "closed", "expired"]
    created_at: int
    expires_at: int


class BetaClientSecretObject(Shape):
    value: str = Field(pattern=r"^ek_")
    expires_at: int


class BetaSessionResponse(Shape):
    id: str
    object: Literal["realtime.session"]
    model: str
    modalities: list[Literal["text", "audio"]]
    instructions: str
    voice: str | dict[str, Any]
    input_audio_format: Literal["pcm16", "g711_ulaw", "g711_alaw"]
    output_audio_format: Literal["pcm16", "g711_ulaw", "g711_alaw"]
    input_audio_transcription: dict[str, Any] | None
    input_audio_noise_reduction: dict[str, Any] | None
    turn_detection: dict[str, Any] | None
    tools: list[dict[str, Any]]
    tool_choice: str | dict[str, Any]
    temperature: float
    max_response_output_tokens: MaxOutputTokens
    speed: float
    tracing: Literal["auto"] | dict[str, Any] | None
    expires_at: int
    client_secret: BetaClientSecretObject


class BetaTranscriptionSessionResponse(Shape):
    id: str
    object: Literal["realtime.transcription_session"]
    modalities: list[Literal["text", "audio"]]
    input_audio_format: Literal["pcm16", "g711_ulaw", "g711_alaw"]
    input_audio_transcription: dict[str, Any] | None
    input_audio_noise_reduction: dict[str, Any] | None
    turn_detection: dict[str, Any] | None
    include: list[str] | None
    expires_at: int
    client_secret: BetaClientSecretObject


class ModelObject(Shape):
    id: str
    object: Literal["model"]
    created: int
    owned_by: str


class ModelList(Shape):
    object: Literal["list"]
    data: list[ModelObject]


class Health(Shape):
    status: Literal["ok"]
    version: str
    store: Literal["ok", "unreachable"]  # whether the store answers now (alive either way)


class Readiness(Shape):
    status: Literal["ready", "unready"]
    checks: dict[str, dict[str, Any]]
