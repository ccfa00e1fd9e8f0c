"""The seam between the engine and whatever answers: a stream of text and audio for one turn.

The OVOS integration provides the real responder (skills on the messagebus, TTS). Until one is
configured, `UnavailableResponder` fails every response honestly — never a made-up answer.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any, Protocol


@dataclass(frozen=True, slots=True)
class TextDelta:
    """A piece of the answer's text (for audio responses: of its transcript)."""

    text: str


@dataclass(frozen=True, slots=True)
class AudioDelta:
    """A piece of the answer's audio: 16-bit signed little-endian mono PCM at `sample_rate`."""

    pcm: bytes
    sample_rate: int


ResponseChunk = TextDelta | AudioDelta


@dataclass(frozen=True, slots=True)
class Turn:
    """What a responder is asked: the conversation so far and how to answer."""

    session_id: str
    project_id: str
    items: list[dict[str, Any]]
    instructions: str
    output_modalities: list[str]
    voice: str
    language: str | None = None
    metadata: dict[str, str] = field(default_factory=dict)
    prompt_id: str | None = None  # `session.prompt.id`: an OVOS persona's name, for the skills responder


class ResponderError(Exception):
    """The responder could not answer; `code` becomes `status_details.error.code`."""

    def __init__(self, message: str, code: str = "responder_error") -> None:
        super().__init__(message)
        self.code = code


class Responder(Protocol):
    def respond(self, turn: Turn) -> AsyncIterator[ResponseChunk]:
        """Stream the answer; raise ResponderError when there is none."""
        ...


def needs_user_text(responder: Responder) -> bool:
    """Whether the responder answers from transcripts (then every committed turn is transcribed,
    asked for or not). A responder may say otherwise with a `needs_user_text` attribute."""
    return bool(getattr(responder, "needs_user_text", True))


class UnavailableResponder:
    """Used when no OVOS messagebus is configured or reachable: every response fails, clearly."""

    needs_user_text = False  # nothing answers: transcribe only what a session asks for

    def __init__(self, reason: str = "No OVOS messagebus is configured for this gateway.") -> None:
        self.reason = reason

    async def respond(self, turn: Turn) -> AsyncIterator[ResponseChunk]:
        raise ResponderError(
            f"{self.reason} Responses come from OVOS skills; run the gateway inside OVOS "
            "(PHAL plugin) or with `ovos-realtime demo`.",
            code="responder_unavailable",
        )
        yield TextDelta("")  # type: ignore[unreachable]  # makes this an async generator
