"""Strict request models of the GA session objects (realtime and transcription).

They mirror the `openai` package's `*Param` TypedDicts (a test walks both to keep them in step)
but reject unknown fields and wrong types, as the upstream server does. A field left out is
"unchanged"; `model_dump(exclude_unset=True)` gives exactly what the client sent.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal, Union

from pydantic import BaseModel, ConfigDict, Discriminator, Field, Tag


class Strict(BaseModel):
    """Base of every request model: unknown fields are errors, no type coercion."""

    model_config = ConfigDict(extra="forbid", strict=True)


def _tag_or(default: str) -> Any:
    def pick(value: Any) -> str | None:
        if isinstance(value, dict):
            tag = value.get("type", default)
            return tag if isinstance(tag, str) else None
        return getattr(value, "type", None)

    return pick


class PcmFormat(Strict):
    type: Literal["audio/pcm"] = "audio/pcm"
    rate: int = Field(24000, ge=24000, le=24000)


class PcmuFormat(Strict):
    type: Literal["audio/pcmu"] = "audio/pcmu"


class PcmaFormat(Strict):
    type: Literal["audio/pcma"] = "audio/pcma"


AudioFormat = Annotated[
    Union[
        Annotated[PcmFormat, Tag("audio/pcm")],
        Annotated[PcmuFormat, Tag("audio/pcmu")],
        Annotated[PcmaFormat, Tag("audio/pcma")],
    ],
    Discriminator(_tag_or("audio/pcm")),
]


class NoiseReduction(Strict):
    type: Literal["near_field", "far_field"] | None = None
    strength: float | None = Field(None, ge=0, le=1)


class Transcription(Strict):
    model: str | None = None
    language: str | None = None
    languages: list[str] | None = None
    prompt: str | None = None
    keywords: list[str] | None = None
    delay: Literal["minimal", "low", "medium", "high", "xhigh"] | None = None


class ServerVad(Strict):
    type: Literal["server_vad"]
    threshold: float = Field(0.5, ge=0, le=1)
    prefix_padding_ms: int = Field(300, ge=0, le=10_000)
    silence_duration_ms: int = Field(200, ge=0, le=10_000)
    idle_timeout_ms: int | None = Field(None, ge=5_000, le=30_000)
    create_response: bool = True
    interrupt_response: bool = True


class SemanticVad(Strict):
    type: Literal["semantic_vad"]
    eagerness: Literal["low", "medium", "high", "auto"] = "auto"
    create_response: bool = True
    interrupt_response: bool = True


TurnDetection = Annotated[Union[ServerVad, SemanticVad], Field(discriminator="type")]


class AudioInput(Strict):
    format: AudioFormat | None = None
    noise_reduction: NoiseReduction | None = None
    transcription: Transcription | None = None
    turn_detection: TurnDetection | None = None


class VoiceId(Strict):
    id: str


class AudioOutput(Strict):
    format: AudioFormat | None = None
    speed: float = Field(1.0, ge=0.25, le=1.5)
    voice: str | VoiceId = "alloy"


class AudioConfig(Strict):
    input: AudioInput | None = None
    output: AudioOutput | None = None


class FunctionTool(Strict):
    type: Literal["function"] = "function"
    name: str | None = Field(None, max_length=64)
    description: str | None = Field(None, max_length=1024)
    parameters: dict[str, Any] | None = None


class McpToolFilter(Strict):
    read_only: bool | None = None
    tool_names: list[str] | None = None


class McpApprovalFilter(Strict):
    always: McpToolFilter | None = None
    never: McpToolFilter | None = None


class McpTool(Strict):
    type: Literal["mcp"]
    server_label: str
    allowed_callers: list[Literal["direct", "programmatic"]] | None = None
    allowed_tools: list[str] | McpToolFilter | None = None
    authorization: str | None = None
    connector_id: str | None = None
    defer_loading: bool | None = None
    headers: dict[str, str] | None = None
    require_approval: McpApprovalFilter | Literal["always", "never"] | None = None
    server_description: str | None = None
    server_url: str | None = None
    tunnel_id: str | None = None


Tool = Annotated[
    Union[Annotated[FunctionTool, Tag("function")], Annotated[McpTool, Tag("mcp")]],
    Discriminator(_tag_or("function")),
]


class ToolChoiceFunction(Strict):
    type: Literal["function"]
    name: str


class ToolChoiceMcp(Strict):
    type: Literal["mcp"]
    server_label: str
    name: str | None = None


ToolChoice = Union[
    Literal["none", "auto", "required"],
    Annotated[Union[ToolChoiceFunction, ToolChoiceMcp], Field(discriminator="type")],
]


class TracingConfig(Strict):
    workflow_name: str | None = None
    group_id: str | None = None
    metadata: dict[str, Any] | None = None


class TokenLimits(Strict):
    post_instructions: int | None = Field(None, ge=0)


class RetentionRatio(Strict):
    type: Literal["retention_ratio"]
    retention_ratio: float = Field(ge=0, le=1)
    token_limits: TokenLimits | None = None


class Prompt(Strict):
    id: str
    version: str | None = None
    variables: dict[str, Any] | None = None


class Reasoning(Strict):
    effort: Literal["minimal", "low", "medium", "high", "xhigh"] | None = None


OutputModalities = Annotated[list[Literal["text", "audio"]], Field(min_length=1, max_length=1)]
MaxOutputTokens = Union[Annotated[int, Field(ge=1, le=4096)], Literal["inf"]]
Include = list[Literal["item.input_audio_transcription.logprobs"]]


class RealtimeSessionRequest(Strict):
    """A GA realtime session as a client sends it (client secrets, `session.update`, calls)."""

    type: Literal["realtime"]
    model: str | None = None
    output_modalities: OutputModalities | None = None
    instructions: str | None = None
    audio: AudioConfig | None = None
    include: Include | None = None
    max_output_tokens: MaxOutputTokens | None = None
    parallel_tool_calls: bool | None = None
    prompt: Prompt | None = None
    reasoning: Reasoning | None = None
    tool_choice: ToolChoice | None = None
    tools: list[Tool] | None = Field(None, max_length=128)
    tracing: Literal["auto"] | TracingConfig | None = None
    truncation: Literal["auto", "disabled"] | RetentionRatio | None = None


class TranscriptionAudioInput(Strict):
    format: AudioFormat | None = None
    noise_reduction: NoiseReduction | None = None
    transcription: Transcription | None = None
    turn_detection: TurnDetection | None = None


class TranscriptionAudio(Strict):
    input: TranscriptionAudioInput | None = None


class TranscriptionSessionRequest(Strict):
    """A GA transcription session (`type: "transcription"`)."""

    type: Literal["transcription"]
    audio: TranscriptionAudio | None = None
    include: Include | None = None


SessionRequest = Annotated[
    Union[RealtimeSessionRequest, TranscriptionSessionRequest], Field(discriminator="type")
]


class ExpiresAfter(Strict):
    anchor: Literal["created_at"] = "created_at"
    seconds: int = Field(600, ge=10, le=7200)


class ClientSecretCreateBody(Strict):
    """Body of `POST /v1/realtime/client_secrets`."""

    expires_after: ExpiresAfter | None = None
    session: SessionRequest | None = None
    max_session_seconds: int | None = Field(
        None,
        ge=10,
        le=86_400,
        description="ovos-realtime extension: cap the lifetime of the session this secret opens "
        "(never above the project's `max_session_seconds`). OpenAI has no such field; with the SDK, "
        "pass it in `extra_body`.",
    )


class CallRejectBody(Strict):
    """Body of `POST /v1/realtime/calls/{call_id}/reject`."""

    status_code: int | None = Field(None, ge=400, le=699, description="SIP status; default 603 Decline.")


class CallReferBody(Strict):
    """Body of `POST /v1/realtime/calls/{call_id}/refer`."""

    target_uri: str = Field(
        pattern=r"^(sip:|sips:|tel:)\S+$", max_length=2048, description="`tel:+1…` or `sip:…`: SIP Refer-To."
    )
