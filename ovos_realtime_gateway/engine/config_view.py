"""A typed, read-only view of a session's effective config, built once per `session.update`.

The engine and the calls read settings from here instead of digging through the config dict
(`config["audio"]["input"]…` with a default at every level); the dict itself stays the source
of truth for what `session.created`/`session.updated` render and what the store keeps.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from ..audio import AudioFormat
from .turns import VadParams

_PCM: Mapping[str, Any] = MappingProxyType({"type": "audio/pcm"})
_PCM_24K: Mapping[str, Any] = MappingProxyType({"type": "audio/pcm", "rate": 24000})


def _section(config: Mapping[str, Any], *path: str) -> Mapping[str, Any]:
    """The dict at `path` (an absent or null level reads as empty)."""
    node: Any = config
    for key in path:
        node = node.get(key) if isinstance(node, Mapping) else None
    return node if isinstance(node, Mapping) else {}


def _frozen(value: Any) -> Mapping[str, Any] | None:
    return MappingProxyType(dict(value)) if isinstance(value, Mapping) else None


@dataclass(frozen=True)
class InputView:
    """`audio.input`: the format clients append, turn detection, transcription, noise reduction."""

    format: Mapping[str, Any] = field(default_factory=lambda: _PCM)
    turn_detection: VadParams | None = None
    transcription: Mapping[str, Any] | None = None
    noise_reduction: Mapping[str, Any] | None = None

    @property
    def audio_format(self) -> AudioFormat:
        return AudioFormat.from_session(self.format)

    @property
    def language(self) -> str | None:
        """The transcription's language hint, if the session set one."""
        lang = self.transcription.get("language") if self.transcription is not None else None
        return str(lang) if lang else None


@dataclass(frozen=True)
class OutputView:
    """`audio.output`: the format of the assistant's audio, its voice and speed."""

    format: Mapping[str, Any] = field(default_factory=lambda: _PCM)
    response_format: Mapping[str, Any] = field(
        default_factory=lambda: _PCM_24K
    )  # what a response announces when none is set
    voice: Any = None  # a name, or a custom voice object ({"id": …}); None: not set
    speed: float | None = None

    @property
    def audio_format(self) -> AudioFormat:
        return AudioFormat.from_session(self.format)


@dataclass(frozen=True)
class SessionView:
    kind: str = "realtime"
    model: str | None = None
    input: InputView = field(default_factory=InputView)
    output: OutputView = field(default_factory=OutputView)
    output_modalities: tuple[str, ...] | None = None  # None: not set (a response then speaks)
    instructions: str = ""
    max_output_tokens: int | str = "inf"
    prompt: Mapping[str, Any] | None = None

    @classmethod
    def of(cls, config: Mapping[str, Any]) -> SessionView:
        audio_in = _section(config, "audio", "input")
        audio_out = _section(config, "audio", "output")
        out_format = _frozen(audio_out.get("format"))
        modalities = config.get("output_modalities")
        model = config.get("model")
        speed = audio_out.get("speed")
        return cls(
            kind=str(config.get("type", "realtime")),
            model=str(model) if model is not None else None,
            input=InputView(
                format=_frozen(audio_in.get("format")) or _PCM,
                turn_detection=VadParams.from_config(audio_in.get("turn_detection")),
                transcription=_frozen(audio_in.get("transcription")),
                noise_reduction=_frozen(audio_in.get("noise_reduction")),
            ),
            output=OutputView(
                format=out_format or _PCM,
                response_format=out_format or _PCM_24K,
                voice=audio_out.get("voice"),
                speed=float(speed) if isinstance(speed, int | float) else None,
            ),
            output_modalities=tuple(modalities) if modalities else None,
            instructions=str(config.get("instructions", "")),
            max_output_tokens=config.get("max_output_tokens", "inf"),
            prompt=_frozen(config.get("prompt")),
        )
