"""Strict models of the GA client events, parsed through one discriminated union on `type`.

They mirror the `openai` SDK's `*EventParam` TypedDicts (a test walks both). Unknown fields and
wrong types are errors with OpenAI's codes; an unknown `type` is `invalid_value` on `type`.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal, Union

from pydantic import Discriminator, Field, Tag, TypeAdapter

from .session_models import (
    AudioFormat,
    FunctionTool,
    MaxOutputTokens,
    McpTool,
    OutputModalities,
    Prompt,
    RealtimeSessionRequest,
    Reasoning,
    Strict,
    ToolChoice,
    TranscriptionSessionRequest,
    VoiceId,
    _tag_or,
)

ItemStatus = Literal["completed", "incomplete", "in_progress"]


class UserContent(Strict):
    type: Literal["input_text", "input_audio", "input_image"]
    text: str | None = None
    audio: str | None = None
    transcript: str | None = None
    image_url: str | None = None
    detail: Literal["auto", "low", "high"] | None = None


class AssistantContent(Strict):
    type: Literal["output_text", "output_audio"]
    text: str | None = None
    audio: str | None = None
    transcript: str | None = None


class SystemContent(Strict):
    type: Literal["input_text"]
    text: str | None = None


class _ItemBase(Strict):
    id: str | None = Field(None, max_length=64)
    object: Literal["realtime.item"] | None = None
    status: ItemStatus | None = None


class UserMessage(_ItemBase):
    type: Literal["message"]
    role: Literal["user"]
    content: list[UserContent]


class AssistantMessage(_ItemBase):
    type: Literal["message"]
    role: Literal["assistant"]
    content: list[AssistantContent]


class SystemMessage(_ItemBase):
    type: Literal["message"]
    role: Literal["system"]
    content: list[SystemContent]


class FunctionCall(_ItemBase):
    type: Literal["function_call"]
    name: str
    arguments: str
    call_id: str | None = None


class FunctionCallOutput(_ItemBase):
    type: Literal["function_call_output"]
    call_id: str
    output: str


class McpApprovalResponse(Strict):
    type: Literal["mcp_approval_response"]
    id: str
    approval_request_id: str
    approve: bool
    reason: str | None = None


class McpListedTool(Strict):
    name: str
    input_schema: Any
    annotations: Any = None
    description: str | None = None


class McpListTools(Strict):
    type: Literal["mcp_list_tools"]
    server_label: str
    tools: list[McpListedTool]
    id: str | None = None


class McpCall(Strict):
    type: Literal["mcp_call"]
    id: str
    arguments: str
    name: str
    server_label: str
    approval_request_id: str | None = None
    error: dict[str, Any] | None = None
    output: str | None = None


class McpApprovalRequest(Strict):
    type: Literal["mcp_approval_request"]
    id: str
    arguments: str
    name: str
    server_label: str


def _item_tag(value: Any) -> str | None:
    if not isinstance(value, dict):
        return None
    kind = value.get("type")
    if kind == "message":
        role = value.get("role")
        return f"message:{role}" if isinstance(role, str) else "message:"
    return kind if isinstance(kind, str) else None


Item = Annotated[
    Union[
        Annotated[UserMessage, Tag("message:user")],
        Annotated[AssistantMessage, Tag("message:assistant")],
        Annotated[SystemMessage, Tag("message:system")],
        Annotated[FunctionCall, Tag("function_call")],
        Annotated[FunctionCallOutput, Tag("function_call_output")],
        Annotated[McpApprovalResponse, Tag("mcp_approval_response")],
        Annotated[McpListTools, Tag("mcp_list_tools")],
        Annotated[McpCall, Tag("mcp_call")],
        Annotated[McpApprovalRequest, Tag("mcp_approval_request")],
    ],
    Discriminator(_item_tag),
]


class ItemReference(Strict):
    type: Literal["item_reference"]
    id: str


InputItem = Annotated[
    Union[Annotated[ItemReference, Tag("item_reference")], Annotated[Item, Tag("item")]],
    Discriminator(
        lambda v: "item_reference" if isinstance(v, dict) and v.get("type") == "item_reference" else "item"
    ),
]


class ResponseAudioOutput(Strict):
    format: AudioFormat | None = None
    voice: str | VoiceId | None = None


class ResponseAudio(Strict):
    output: ResponseAudioOutput | None = None


ResponseTool = Annotated[
    Union[Annotated[FunctionTool, Tag("function")], Annotated[McpTool, Tag("mcp")]],
    Discriminator(_tag_or("function")),
]


class ResponseParams(Strict):
    """`response.create.response`: per-response overrides, all optional."""

    conversation: str | None = None
    input: list[InputItem] | None = None
    instructions: str | None = None
    tools: list[ResponseTool] | None = None
    tool_choice: ToolChoice | None = None
    output_modalities: OutputModalities | None = None
    audio: ResponseAudio | None = None
    max_output_tokens: MaxOutputTokens | None = None
    metadata: dict[str, Annotated[str, Field(max_length=512)]] | None = Field(None, max_length=16)
    prompt: Prompt | None = None
    parallel_tool_calls: bool | None = None
    reasoning: Reasoning | None = None


class _Event(Strict):
    event_id: str | None = Field(None, max_length=512)


class SessionUpdate(_Event):
    type: Literal["session.update"]
    session: Annotated[
        Union[RealtimeSessionRequest, TranscriptionSessionRequest], Field(discriminator="type")
    ]


class InputAudioBufferAppend(_Event):
    type: Literal["input_audio_buffer.append"]
    audio: str


class InputAudioBufferCommit(_Event):
    type: Literal["input_audio_buffer.commit"]


class InputAudioBufferClear(_Event):
    type: Literal["input_audio_buffer.clear"]


class OutputAudioBufferClear(_Event):
    type: Literal["output_audio_buffer.clear"]


class ConversationItemCreate(_Event):
    type: Literal["conversation.item.create"]
    item: Item
    previous_item_id: str | None = None


class ConversationItemRetrieve(_Event):
    type: Literal["conversation.item.retrieve"]
    item_id: str


class ConversationItemTruncate(_Event):
    type: Literal["conversation.item.truncate"]
    item_id: str
    content_index: int = Field(ge=0)
    audio_end_ms: int = Field(ge=0)


class ConversationItemDelete(_Event):
    type: Literal["conversation.item.delete"]
    item_id: str


class ResponseCreate(_Event):
    type: Literal["response.create"]
    response: ResponseParams | None = None


class ResponseCancel(_Event):
    type: Literal["response.cancel"]
    response_id: str | None = None


class SessionClose(_Event):
    type: Literal["session.close"]


ClientEvent = Annotated[
    Union[
        SessionUpdate,
        InputAudioBufferAppend,
        InputAudioBufferCommit,
        InputAudioBufferClear,
        OutputAudioBufferClear,
        ConversationItemCreate,
        ConversationItemRetrieve,
        ConversationItemTruncate,
        ConversationItemDelete,
        ResponseCreate,
        ResponseCancel,
        SessionClose,
    ],
    Field(discriminator="type"),
]
CLIENT_EVENT_ADAPTER: TypeAdapter[ClientEvent] = TypeAdapter(ClientEvent)
CLIENT_EVENT_TYPES: tuple[str, ...] = (
    "session.update",
    "session.close",
    "input_audio_buffer.append",
    "input_audio_buffer.commit",
    "input_audio_buffer.clear",
    "output_audio_buffer.clear",
    "conversation.item.create",
    "conversation.item.retrieve",
    "conversation.item.truncate",
    "conversation.item.delete",
    "response.create",
    "response.cancel",
)
