"""The effective session configuration: OpenAI's defaults, partial-update merging, rendering.

A session's configuration is a plain JSON-able dict in the GA shape. `session.update` (and the
config attached to a client secret) is merged into it: only present fields change, `null`/`""`/
`[]` clear, and a tagged object (`turn_detection`, `format`, …) whose `type` changes is replaced
whole. After every merge the result is normalised so the full effective config can be echoed.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any

from .session_models import RealtimeSessionRequest, SemanticVad, ServerVad, TranscriptionSessionRequest

DEFAULT_INSTRUCTIONS = (
    "You are OpenVoiceOS, an open-source voice assistant. Answers come from the skills installed "
    "on this device; speak briefly and clearly."
)

Config = dict[str, Any]


@dataclass(frozen=True)
class SessionDefaults:
    """Server-side defaults that fill a new session (configurable in GatewaySettings)."""

    model: str = "gpt-realtime"
    instructions: str = DEFAULT_INSTRUCTIONS
    voice: str = "alloy"
    vad_threshold: float = 0.5
    vad_prefix_padding_ms: int = 300
    vad_silence_duration_ms: int = 200


def _server_vad(defaults: SessionDefaults, *, with_response_flags: bool = True) -> Config:
    vad: Config = {
        "type": "server_vad",
        "threshold": defaults.vad_threshold,
        "prefix_padding_ms": defaults.vad_prefix_padding_ms,
        "silence_duration_ms": defaults.vad_silence_duration_ms,
        "idle_timeout_ms": None,
    }
    if with_response_flags:
        vad["create_response"] = True
        vad["interrupt_response"] = True
    return vad


def default_realtime_session(defaults: SessionDefaults) -> Config:
    """The realtime session a client gets when it configures nothing (as `session.created` shows it)."""
    return {
        "type": "realtime",
        "model": defaults.model,
        "output_modalities": ["audio"],
        "instructions": defaults.instructions,
        "tools": [],
        "tool_choice": "auto",
        "max_output_tokens": "inf",
        "tracing": None,
        "truncation": "auto",
        "prompt": None,
        "audio": {
            "input": {
                "format": {"type": "audio/pcm", "rate": 24000},
                "transcription": None,
                "noise_reduction": None,
                "turn_detection": _server_vad(defaults),
            },
            "output": {
                "format": {"type": "audio/pcm", "rate": 24000},
                "voice": defaults.voice,
                "speed": 1.0,
            },
        },
        "include": None,
    }


def default_transcription_session(defaults: SessionDefaults) -> Config:
    return {
        "type": "transcription",
        "audio": {
            "input": {
                "format": {"type": "audio/pcm", "rate": 24000},
                "transcription": None,
                "noise_reduction": None,
                "turn_detection": _server_vad(defaults, with_response_flags=False),
            }
        },
        "include": None,
    }


def merge(base: Any, update: Any) -> Any:
    """Merge a partial update into a config value (see the module docstring for the rules)."""
    if not isinstance(base, dict) or not isinstance(update, dict):
        return copy.deepcopy(update)
    if "type" in update and base.get("type") != update["type"]:
        return copy.deepcopy(update)
    merged = dict(base)
    for key, value in update.items():
        merged[key] = merge(base.get(key), value) if key in base else copy.deepcopy(value)
    return merged


def _normalise_format(fmt: Any) -> Any:
    if not isinstance(fmt, dict):
        return fmt
    kind = fmt.get("type", "audio/pcm")
    return {"type": kind, "rate": 24000} if kind == "audio/pcm" else {"type": kind}


def _normalise_turn_detection(td: Any, *, with_response_flags: bool) -> Any:
    if not isinstance(td, dict):
        return td
    model = ServerVad if td.get("type") == "server_vad" else SemanticVad
    full: Config = model.model_validate(td).model_dump()
    if not with_response_flags:
        full.pop("create_response", None)
        full.pop("interrupt_response", None)
    return full


def normalise(config: Config) -> Config:
    """Fill the defaults inside tagged objects so the config reads as OpenAI echoes it."""
    is_realtime = config.get("type") == "realtime"
    audio = config.get("audio") or {}
    for direction in ("input", "output"):
        section = audio.get(direction)
        if isinstance(section, dict) and "format" in section:
            section["format"] = _normalise_format(section["format"])
    section = audio.get("input")
    if isinstance(section, dict) and "turn_detection" in section:
        section["turn_detection"] = _normalise_turn_detection(
            section["turn_detection"], with_response_flags=is_realtime
        )
    return config


NULL_TURNS_OFF = frozenset(
    {"transcription", "noise_reduction", "turn_detection", "tracing", "prompt", "include"}
)
"""Fields where an explicit `null` means "off"; anywhere else `null` means "not sent"."""


def without_idle_nulls(update: Config) -> Config:
    """Drop `null` values that carry no meaning (in the session and its audio sections), so they
    never reach the effective config; tools and other free-form values are left as sent."""
    kept: Config = {}
    for key, value in update.items():
        if value is None and key not in NULL_TURNS_OFF:
            continue
        kept[key] = (
            without_idle_nulls(value)
            if key in ("audio", "input", "output") and isinstance(value, dict)
            else value
        )
    return kept


def apply_update(current: Config, request: RealtimeSessionRequest | TranscriptionSessionRequest) -> Config:
    """The config after applying a validated partial update to `current`."""
    return normalise(merge(current, without_idle_nulls(request.model_dump(exclude_unset=True))))


def initial_session(
    request: RealtimeSessionRequest | TranscriptionSessionRequest | None, defaults: SessionDefaults
) -> Config:
    """The effective config of a new session: defaults for its type, then the client's fields."""
    if request is None or request.type == "realtime":
        base = default_realtime_session(defaults)
    else:
        base = default_transcription_session(defaults)
    return apply_update(base, request) if request is not None else base


def render_session(config: Config, session_id: str, expires_at: int) -> Config:
    """The session object as OpenAI returns it (`object`, `id`, `expires_at` added)."""
    kind = config.get("type", "realtime")
    obj = "realtime.session" if kind == "realtime" else "realtime.transcription_session"
    rendered: Config = {"type": kind, "object": obj, "id": session_id}
    rendered.update({k: v for k, v in config.items() if k != "type"})
    rendered["expires_at"] = expires_at
    return rendered
