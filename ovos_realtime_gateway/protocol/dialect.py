"""The beta dialect of the Realtime API, translated to and from the GA shapes by table.

OpenAI retired the beta protocol on 2026-05-12; old SDKs (`client.beta.realtime`) still send it.
The engine only ever sees GA configs: beta bodies are validated here, mapped to GA, and GA
configs are rendered back in the beta shape for beta clients.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from .session_config import Config
from .session_models import MaxOutputTokens, Strict, TracingConfig

BETA_FORMAT_TO_GA: dict[str, Config] = {
    "pcm16": {"type": "audio/pcm", "rate": 24000},
    "g711_ulaw": {"type": "audio/pcmu"},
    "g711_alaw": {"type": "audio/pcma"},
}
GA_FORMAT_TO_BETA = {"audio/pcm": "pcm16", "audio/pcmu": "g711_ulaw", "audio/pcma": "g711_alaw"}
BETA_DEFAULT_TEMPERATURE = 0.8

BetaAudioFormat = Literal["pcm16", "g711_ulaw", "g711_alaw"]


class BetaExpiresAfter(Strict):
    anchor: Literal["created_at"] = "created_at"
    seconds: int = Field(600, ge=10, le=7200)


class BetaClientSecret(Strict):
    expires_after: BetaExpiresAfter | None = None


class BetaTranscriptionClientSecret(Strict):
    # the beta transcription endpoint calls the same object `expires_at` (an SDK codegen quirk)
    expires_at: BetaExpiresAfter | None = None


class BetaNoiseReduction(Strict):
    type: Literal["near_field", "far_field"] | None = None


class BetaTranscription(Strict):
    model: str | None = None
    language: str | None = None
    prompt: str | None = None


class BetaTurnDetection(Strict):
    type: Literal["server_vad", "semantic_vad"] = "server_vad"
    threshold: float | None = Field(None, ge=0, le=1)
    prefix_padding_ms: int | None = Field(None, ge=0)
    silence_duration_ms: int | None = Field(None, ge=0)
    create_response: bool | None = None
    interrupt_response: bool | None = None
    eagerness: Literal["low", "medium", "high", "auto"] | None = None


class BetaFunctionTool(Strict):
    type: Literal["function"] = "function"
    name: str | None = None
    description: str | None = Field(None, max_length=1024)
    parameters: dict[str, Any] | None = None


class BetaSessionBody(Strict):
    """Body of the beta `POST /v1/realtime/sessions`."""

    client_secret: BetaClientSecret | None = None
    model: str | None = None
    modalities: list[Literal["text", "audio"]] | None = Field(None, min_length=1, max_length=2)
    instructions: str | None = None
    voice: str | None = None
    input_audio_format: BetaAudioFormat | None = None
    output_audio_format: BetaAudioFormat | None = None
    input_audio_transcription: BetaTranscription | None = None
    input_audio_noise_reduction: BetaNoiseReduction | None = None
    turn_detection: BetaTurnDetection | None = None
    tools: list[BetaFunctionTool] | None = None
    tool_choice: Literal["none", "auto", "required"] | None = None
    temperature: float | None = Field(None, ge=0.6, le=1.2)
    max_response_output_tokens: MaxOutputTokens | None = None
    speed: float | None = Field(None, ge=0.25, le=1.5)
    tracing: Literal["auto"] | TracingConfig | None = None


class BetaTranscriptionSessionBody(Strict):
    """Body of the beta `POST /v1/realtime/transcription_sessions`."""

    client_secret: BetaTranscriptionClientSecret | None = None
    modalities: list[Literal["text", "audio"]] | None = None
    input_audio_format: BetaAudioFormat | None = None
    input_audio_transcription: BetaTranscription | None = None
    input_audio_noise_reduction: BetaNoiseReduction | None = None
    turn_detection: BetaTurnDetection | None = None
    include: list[Literal["item.input_audio_transcription.logprobs"]] | None = None


def _drop_none(value: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in value.items() if v is not None}


def beta_session_to_ga(body: BetaSessionBody | BetaTranscriptionSessionBody) -> Config:
    """The GA partial session (as a client would send it) equivalent to a beta body."""
    null_turns_off = ("input_audio_transcription", "input_audio_noise_reduction", "turn_detection")
    sent = {
        key: value
        for key, value in body.model_dump(exclude_unset=True).items()
        if value is not None or key in null_turns_off
    }
    is_realtime = isinstance(body, BetaSessionBody)
    ga: Config = {"type": "realtime" if is_realtime else "transcription"}
    audio_in: Config = {}
    audio_out: Config = {}
    if "input_audio_format" in sent:
        audio_in["format"] = dict(BETA_FORMAT_TO_GA[sent["input_audio_format"]])
    if "input_audio_transcription" in sent:
        tr = sent["input_audio_transcription"]
        audio_in["transcription"] = None if tr is None else _drop_none(tr)
    if "input_audio_noise_reduction" in sent:
        nr = sent["input_audio_noise_reduction"]
        audio_in["noise_reduction"] = None if nr is None else _drop_none(nr)
    if "turn_detection" in sent:
        td = sent["turn_detection"]
        if td is not None:
            td = _drop_none(td)
            td.setdefault("type", "server_vad")
            if td["type"] == "semantic_vad":
                td = {
                    k: v
                    for k, v in td.items()
                    if k in ("type", "eagerness", "create_response", "interrupt_response")
                }
            else:
                td.pop("eagerness", None)
        audio_in["turn_detection"] = td
    if is_realtime:
        if "output_audio_format" in sent:
            audio_out["format"] = dict(BETA_FORMAT_TO_GA[sent["output_audio_format"]])
        if sent.get("voice") is not None:
            audio_out["voice"] = sent["voice"]
        if sent.get("speed") is not None:
            audio_out["speed"] = sent["speed"]
        if sent.get("modalities") is not None:
            ga["output_modalities"] = ["audio"] if "audio" in sent["modalities"] else ["text"]
        if "max_response_output_tokens" in sent:
            ga["max_output_tokens"] = sent["max_response_output_tokens"]
        for same in ("model", "instructions", "tools", "tool_choice", "tracing"):
            if same in sent:
                ga[same] = sent[same]
    elif "include" in sent:
        ga["include"] = sent["include"]
    audio: Config = {}
    if audio_in:
        audio["input"] = audio_in
    if audio_out:
        audio["output"] = audio_out
    if audio:
        ga["audio"] = audio
    return ga


def _beta_format(fmt: Any) -> str:
    kind = fmt.get("type", "audio/pcm") if isinstance(fmt, dict) else "audio/pcm"
    return GA_FORMAT_TO_BETA.get(kind, "pcm16")


def ga_session_to_beta(config: Config, session_id: str, expires_at: int, temperature: float) -> Config:
    """Render a GA effective config as the beta session object."""
    audio = config.get("audio") or {}
    audio_in = audio.get("input") or {}
    audio_out = audio.get("output") or {}
    if config.get("type") == "transcription":
        return {
            "id": session_id,
            "object": "realtime.transcription_session",
            "modalities": ["text"],
            "input_audio_format": _beta_format(audio_in.get("format")),
            "input_audio_transcription": audio_in.get("transcription"),
            "input_audio_noise_reduction": audio_in.get("noise_reduction"),
            "turn_detection": audio_in.get("turn_detection"),
            "include": config.get("include"),
            "expires_at": expires_at,
        }
    modalities = ["text", "audio"] if config.get("output_modalities") == ["audio"] else ["text"]
    return {
        "id": session_id,
        "object": "realtime.session",
        "model": config.get("model"),
        "modalities": modalities,
        "instructions": config.get("instructions"),
        "voice": audio_out.get("voice"),
        "input_audio_format": _beta_format(audio_in.get("format")),
        "output_audio_format": _beta_format(audio_out.get("format")),
        "input_audio_transcription": audio_in.get("transcription"),
        "input_audio_noise_reduction": audio_in.get("noise_reduction"),
        "turn_detection": audio_in.get("turn_detection"),
        "tools": config.get("tools", []),
        "tool_choice": config.get("tool_choice", "auto"),
        "temperature": temperature,
        "max_response_output_tokens": config.get("max_output_tokens", "inf"),
        "speed": audio_out.get("speed", 1.0),
        "tracing": config.get("tracing"),
        "expires_at": expires_at,
    }


# -- events -------------------------------------------------------------------------------------

GA_TO_BETA_EVENT = {
    "response.output_text.delta": "response.text.delta",
    "response.output_text.done": "response.text.done",
    "response.output_audio.delta": "response.audio.delta",
    "response.output_audio.done": "response.audio.done",
    "response.output_audio_transcript.delta": "response.audio_transcript.delta",
    "response.output_audio_transcript.done": "response.audio_transcript.done",
    "conversation.item.added": "conversation.item.created",
}
# GA-only server events a beta client has no handler for
GA_ONLY_EVENTS = frozenset({"conversation.item.done", "input_audio_buffer.timeout_triggered"})
GA_TO_BETA_CONTENT = {"output_text": "text", "output_audio": "audio"}
BETA_TO_GA_CONTENT = {"text": "output_text", "audio": "output_audio"}


def _beta_item(item: Any) -> Any:
    if not isinstance(item, dict) or not isinstance(item.get("content"), list):
        return item
    out = dict(item)
    out["content"] = [
        dict(part, type=GA_TO_BETA_CONTENT.get(str(part.get("type")), part.get("type")))
        if isinstance(part, dict)
        else part
        for part in item["content"]
    ]
    return out


def _beta_response(response: dict[str, Any]) -> dict[str, Any]:
    out = {k: v for k, v in response.items() if k not in ("output_modalities", "audio", "max_output_tokens")}
    modalities = response.get("output_modalities") or ["audio"]
    out["modalities"] = ["text", "audio"] if modalities == ["audio"] else ["text"]
    audio_out = (response.get("audio") or {}).get("output") or {}
    out["voice"] = audio_out.get("voice")
    out["output_audio_format"] = _beta_format(audio_out.get("format"))
    out["max_output_tokens"] = response.get("max_output_tokens")
    out["temperature"] = BETA_DEFAULT_TEMPERATURE
    out["output"] = [_beta_item(i) for i in response.get("output") or []]
    return out


def ga_event_to_beta(event: Config) -> Config | None:
    """A GA server event as a beta client expects it (None: the beta protocol has no such event)."""
    kind = event.get("type")
    if kind in GA_ONLY_EVENTS:
        return None
    out = dict(event)
    out["type"] = GA_TO_BETA_EVENT.get(str(kind), kind)
    if "item" in out:
        out["item"] = _beta_item(out["item"])
    if kind in ("session.created", "session.updated") and isinstance(out.get("session"), dict):
        session = out["session"]
        beta = ga_session_to_beta(
            session, session.get("id", ""), session.get("expires_at", 0), BETA_DEFAULT_TEMPERATURE
        )
        if session.get("type") == "transcription":
            out["type"] = "transcription_session.updated" if kind == "session.updated" else kind
        out["session"] = beta
    if kind in ("response.created", "response.done") and isinstance(out.get("response"), dict):
        out["response"] = _beta_response(out["response"])
    return out


BETA_RESPONSE_FIELDS = {
    "modalities",
    "voice",
    "output_audio_format",
    "temperature",
    "max_response_output_tokens",
}


def beta_client_event_to_ga(data: Config) -> Config:
    """Translate a decoded beta client event into its GA form (validation follows on the result).

    Beta-only fields are checked by the beta models first, so a typo still gets `unknown_parameter`
    with the beta path.
    """
    kind = data.get("type")
    if kind in ("session.update", "transcription_session.update") and isinstance(data.get("session"), dict):
        from .validation import validate

        body: BetaSessionBody | BetaTranscriptionSessionBody
        if kind == "session.update":
            body = validate(BetaSessionBody, data["session"], prefix="session")
        else:
            body = validate(BetaTranscriptionSessionBody, data["session"], prefix="session")
        return {k: v for k, v in data.items() if k not in ("session", "type")} | {
            "type": "session.update",
            "session": beta_session_to_ga(body),
        }
    if kind == "response.create" and isinstance(data.get("response"), dict):
        response = dict(data["response"])
        if "modalities" in response:
            response["output_modalities"] = ["audio"] if "audio" in response.pop("modalities") else ["text"]
        response.pop("temperature", None)
        if "max_response_output_tokens" in response:
            response["max_output_tokens"] = response.pop("max_response_output_tokens")
        output: Config = {}
        if "voice" in response:
            output["voice"] = response.pop("voice")
        if "output_audio_format" in response:
            output["format"] = dict(BETA_FORMAT_TO_GA.get(str(response.pop("output_audio_format")), {}))
        if output:
            response["audio"] = {"output": output}
        return dict(data, response=response)
    if kind == "conversation.item.create" and isinstance(data.get("item"), dict):
        item = dict(data["item"])
        if item.get("role") == "assistant" and isinstance(item.get("content"), list):
            item["content"] = [
                dict(p, type=BETA_TO_GA_CONTENT.get(str(p.get("type")), p.get("type")))
                if isinstance(p, dict)
                else p
                for p in item["content"]
            ]
        return dict(data, item=item)
    return data
