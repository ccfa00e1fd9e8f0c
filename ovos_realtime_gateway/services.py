"""The parts one gateway instance is made of, shared by REST handlers, transports and calls."""

from __future__ import annotations

import asyncio
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from .drain import Drain
from .engine.responder import Responder
from .engine.transcription import SttBackend
from .engine.voice_input import VadBackend
from .events import EventBridge
from .live_calls import CallRegistry
from .observability.audit import AuditWriter
from .observability.metrics import GatewayMetrics
from .observability.tracing import Tracing
from .ovos.bus import BusBridge
from .ovos.microphone_hub import MicrophoneHub
from .security.auth import Authenticator
from .security.client_address import AddressRedactor
from .security.gate import Gate
from .security.gateway_secrets import GatewaySecrets
from .security.live_credentials import LiveCredentials
from .security.policy import PolicyEngine
from .security.ratelimit import (
    AuthFailureThrottle,
    FailureThrottle,
    RateLimiter,
    RequestLimits,
    SessionLimits,
    SessionSlots,
)
from .security.shared_limits import SharedLimits
from .settings import GatewaySettings, RateLimits
from .store import Pruner, RetentionRules, Store


@dataclass
class GatewayServices:
    settings: GatewaySettings
    store: Store
    policy: PolicyEngine
    secrets: GatewaySecrets = field(default_factory=GatewaySecrets)  # read at start, refreshed
    metrics: GatewayMetrics = field(default_factory=GatewayMetrics)
    started_at: float = field(default_factory=time.time)
    vad: VadBackend | None = None
    bus: BusBridge | None = None
    stt: SttBackend | None = None
    microphone: MicrophoneHub = field(default_factory=MicrophoneHub)
    calls: CallRegistry = field(default_factory=CallRegistry)
    live: LiveCredentials = field(default_factory=LiveCredentials)  # revocation reaches these
    responder: Responder | None = None  # skills answer turns (when a messagebus is configured)
    sip: Any = None  # the SipServer (calls/sip/server.py) when `sip.enabled`
    speech: Any = None  # the TTS SpeechSynthesizer (speech/tts.py), when answers are spoken
    speech_status: dict[str, str] = field(default_factory=dict)  # plugin → "loading" | "ready" | error
    warming: asyncio.Task[None] | None = None  # loading the speech plugins, at start
    stopping: asyncio.Event = field(default_factory=asyncio.Event)  # set on stop, after a drain: they end
    plugins: ThreadPoolExecutor = field(
        default_factory=lambda: ThreadPoolExecutor(max_workers=4, thread_name_prefix="ovos-realtime-plugins")
    )  # STT, TTS and messagebus sends: never on the event loop
    openapi_text: str | None = None  # rendered on first request, with the configured models
    _project_names: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.tracing = Tracing(self.settings.tracing, self.metrics.registry)
        self.drain = Drain(lambda: len(self.calls), self.calls.on_removed.append)  # SIGTERM: no new work
        self.auth = Authenticator(self.store)
        self.audit = AuditWriter(
            self.store,
            self.metrics,
            window_s=self.settings.audit_repeats_window_seconds,
            address=AddressRedactor.for_data_dir(
                self.settings.audit_client_address, self.settings.resolved_data_dir
            ),
        )
        local_limiter = RateLimiter(
            project_rpm=lambda pid: self.limits(pid).requests_per_minute,
            key_rpm=lambda pid: self.limits(pid).requests_per_minute_per_key,
        )
        retention = self.settings.retention
        self.pruner = Pruner(
            self.store,
            RetentionRules(
                retention.audit_seconds,
                retention.sessions_seconds,
                retention.client_secrets_seconds,
                retention.conversation_seconds,
            ),
            retention.interval_seconds,
            retention.batch_rows,
            on_deleted=lambda table, count: self.metrics.store_deleted_rows.labels(table=table).inc(count),
        )
        local_throttle = AuthFailureThrottle(lambda: self.settings.auth_failures_per_minute)
        self.events = EventBridge.from_settings(self.settings.event_bridge, self.metrics)
        local_slots = SessionSlots(
            project_limit=lambda pid: self.limits(pid).concurrent_sessions,
            key_limit=lambda pid: self.limits(pid).concurrent_sessions_per_key,
            decided=lambda allowed: self.metrics.rate_limit_decisions.labels(
                limit="sessions", result="allowed" if allowed else "throttled"
            ).inc(),
        )
        self.limiter: RequestLimits = local_limiter
        self.session_slots: SessionLimits = local_slots
        self.auth_throttle: FailureThrottle = local_throttle
        self.shared_limits: SharedLimits | None = None  # limits shared by replicas through Redis
        if self.settings.shared_limits.redis_url is not None:
            fallbacks = self.metrics.shared_limits_fallbacks
            self.shared_limits = shared = SharedLimits(
                self.settings.shared_limits,
                self.secrets.redis_password,
                local_limiter,
                local_slots,
                local_throttle,
                lambda limit: fallbacks.labels(limit=limit).inc(),
            )
            self.limiter, self.session_slots = shared.limiter, shared.slots
            self.auth_throttle = shared.throttle
        self.gate = Gate(
            self.auth,
            self.auth_throttle,
            self.limiter,
            self.policy,
            self.audit,
            self.metrics,
            self.events,
            lambda: self.settings.auth_failures_per_minute,
            self.remember_project,
        )

    def limits(self, project_id: str) -> RateLimits:
        """The limits of a project (by id, or by its name once a request has named it)."""
        return self.settings.limits_for(project_id, self._project_names.get(project_id))

    async def remember_project(self, project_id: str) -> None:
        """Cache a project's name so per-project limits can be keyed by name."""
        if project_id not in self._project_names:
            project = await self.store.get_project(project_id)
            if project is not None:
                self._project_names[project_id] = project.name


SERVICES = web.AppKey("services", GatewayServices)
