"""`create_app(settings)`: the one aiohttp application, run by the CLI and by the PHAL plugin alike."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator
from typing import Any

from aiohttp import web

from .cluster.news import NewsListener, act_on
from .engine.responder import Responder
from .engine.transcription import SttBackend
from .log import quiet_malformed_requests
from .observability.loop_lag import watch_loop_lag
from .observability.metrics import GatewayMetrics
from .ovos.bus import BusAddress, BusBridge
from .rest.forwarded import forwarded_client, networks
from .rest.hop import verify_hop
from .rest.middleware import request_context
from .rest.routes import add_routes
from .rest.security_headers import security_headers
from .security.gateway_secrets import GatewaySecrets
from .security.key_rotation import KeyRotator
from .security.policy import PolicyEngine
from .security.policy_updates import PolicyUpdates
from .services import SERVICES, GatewayServices
from .settings import GatewaySettings
from .speech.stt import OpmTranscriber
from .speech.timing import TimedTranscriber, timed_synthesis
from .speech.tts import SpeechSynthesizer
from .speech.vad import vad_backend
from .store import store_for
from .tasks import TaskSupervisor

log = logging.getLogger("ovos_realtime.app")


def create_services(settings: GatewaySettings) -> GatewayServices:
    """Build (not start) the parts of a gateway; compiling the policy fails fast on a bad file."""
    secrets = GatewaySecrets.from_settings(settings)
    metrics = GatewayMetrics()
    vad_failed = metrics.speech_failures.labels(component="vad", plugin=settings.vad_plugin, kind="error")
    services = GatewayServices(
        settings=settings,
        metrics=metrics,
        store=store_for(settings, secrets.store_password),
        policy=PolicyEngine.from_settings(
            settings.policy_file, settings.opa_url, secrets.opa_token, settings.opa_timeout_seconds
        ),
        secrets=secrets,
        vad=vad_backend(
            settings.vad_plugin,
            settings.vad_config,
            settings.vad_silence_floor_dbfs,
            settings.vad_frame_ms,
            failed=vad_failed.inc,
            batch=settings.vad_batch_sessions,
        ),
        bus=BusBridge(BusAddress.parse(settings.messagebus_url)) if settings.messagebus_url else None,
    )
    refresh_failures = services.metrics.secret_refresh_failures
    secrets.resolver.on_refresh_failed = lambda setting: refresh_failures.labels(setting=setting).inc()
    store_write = metrics.store_write_seconds
    services.store.observe_write = lambda operation, seconds: store_write.labels(operation=operation).observe(
        seconds
    )
    stage = services.metrics.turn_stage_seconds
    transcriber = TimedTranscriber(
        OpmTranscriber(settings.stt_plugin, settings.stt_config, settings.lang, settings.stt_max_streams),
        stage.labels(stage="stt").observe,
        lambda mode: services.metrics.transcriptions.labels(mode=mode).inc(),
    )
    speech_failures = services.metrics.speech_failures
    services.stt = SttBackend(
        transcriber,
        services.plugins,
        settings.lang,
        settings.stt_timeout_seconds,
        failed=lambda kind: speech_failures.labels(
            component="stt", plugin=settings.stt_plugin, kind=kind
        ).inc(),
    )
    if services.bus is not None:
        services.speech = SpeechSynthesizer(
            settings.tts_plugin,
            settings.tts_config,
            settings.lang,
            settings.tts_voices,
            settings.tts_transformers,
        )
    services.metrics.speech_plugins(
        settings.stt_plugin, settings.tts_plugin if services.speech is not None else None, settings.vad_plugin
    )
    return services


async def _warm_speech(services: GatewayServices) -> None:
    """Load STT and TTS plugins (and their models) on worker threads; /readyz reports them until
    they are ready, and names the setting of one that failed."""
    loop = asyncio.get_running_loop()
    plugins: dict[str, tuple[str, Any]] = {}
    if services.stt is not None:
        plugins[services.settings.stt_plugin] = ("stt_plugin", services.stt.transcriber)
    if services.speech is not None:
        plugins[services.settings.tts_plugin] = ("tts_plugin", services.speech)
    for name in plugins:
        services.speech_status[name] = "loading"
    for name, (setting, plugin) in plugins.items():
        log.info("loading %s %s", setting, name)
        try:
            await loop.run_in_executor(services.plugins, plugin.warm)
            services.speech_status[name] = "ready"
            log.info("%s %s is ready", setting, name)
        except Exception as exc:  # reported by /readyz; responses that need it fail clearly
            services.speech_status[name] = f"failed: {exc}"
            log.error("%s %s could not be loaded: %s", setting, name, exc)


def skills_responder(services: GatewayServices) -> Responder | None:
    """Answers from OVOS skills on the configured messagebus, spoken by the configured TTS."""
    if services.bus is None:
        return None
    from .ovos.responder import SkillsResponder

    settings = services.settings
    stage = services.metrics.turn_stage_seconds
    synthesize = (
        timed_synthesis(services.speech.speak, stage.labels(stage="tts").observe)
        if services.speech is not None
        else None
    )
    return SkillsResponder(
        services.bus,
        synthesize,
        services.plugins,
        settings.lang,
        settings.response_timeout_seconds,
        on_first_speak=stage.labels(stage="skills_first_speak").observe,
        persona=settings.persona,
        timezone=settings.timezone,
        city=settings.city,
        converse_skills=settings.converse_skills,
    )


async def _lifecycle(app: web.Application) -> AsyncIterator[None]:
    services = app[SERVICES]
    await services.secrets.resolver.load()  # a secret that cannot be read stops the start here
    await services.store.migrate()
    stale = [record.kind for record in await services.orphans.at_start()]
    if stale:
        log.warning(
            "closed %d session(s) left active and %d call(s) left open by a gateway that did not stop",
            stale.count("session"),
            stale.count("call"),
        )
    services.audit.start()
    services.events.start()
    if services.shared_limits is not None:
        services.shared_limits.start()
    await services.cluster.start()
    services.orphans.start()
    tasks = TaskSupervisor("gateway")  # what runs while the gateway serves; cancelled first on stop
    tasks.spawn(
        "revocation-watch",
        services.live.watch(services.store.unusable_keys, services.settings.revocation_check_seconds),
    )
    await _follow_policy_and_news(services, tasks)
    services.pruner.start()
    services.pending_writes.start()
    tasks.spawn("key-rotation", key_rotator(services).run())
    if services.secrets.resolver.refreshes:
        tasks.spawn("secret-refresh", services.secrets.resolver.run())
    tasks.spawn("event-loop-lag", watch_loop_lag(services.metrics.event_loop_lag.observe))
    if services.bus is not None:
        services.bus.start()
        services.warming = tasks.spawn("warm-speech", _warm_speech(services))
    sip = await _start_sip(app)
    yield
    await tasks.close()
    services.secrets.resolver.close()
    await services.calls.end_all()
    if sip is not None:
        await sip.stop()
    await services.orphans.stop()
    await services.cluster.close()
    await services.forwarder.close()
    if services.bus is not None:
        await asyncio.get_running_loop().run_in_executor(None, services.bus.stop)
    await services.pruner.stop()
    await services.pending_writes.stop()
    await services.audit.stop()
    await services.events.stop()
    if services.shared_limits is not None:
        await services.shared_limits.close()
    await services.policy.close()
    await services.store.close()
    if services.vad is not None:
        services.vad.executor.shutdown(wait=False, cancel_futures=True)
    services.plugins.shutdown(wait=False, cancel_futures=True)
    await asyncio.get_running_loop().run_in_executor(None, services.tracing.shutdown)


async def _follow_policy_and_news(services: GatewayServices, tasks: TaskSupervisor) -> None:
    """The policy stored by `policy apply` decides from the start (over `policy_file`), and is
    checked for every `revocation_check_seconds`; with a cluster, news of revocations and policy
    changes is acted on at once (cluster/news.py)."""
    settings = services.settings
    deciding = services.metrics.policy_version.set
    updates = PolicyUpdates(services.store, services.policy, services.audit.record, deciding)
    await updates.check()
    tasks.spawn("policy-watch", updates.watch(settings.revocation_check_seconds))
    if settings.cluster.redis_url is not None:
        live, unusable = services.live, services.store.unusable_keys
        password = services.secrets.cluster_redis_password
        listener = NewsListener(
            settings.cluster, password, lambda news: act_on(news, live, unusable, updates)
        )
        tasks.spawn("news", listener.run())


def key_rotator(services: GatewayServices) -> KeyRotator:
    settings = services.settings
    return KeyRotator(
        services.store,
        settings.key_rotation,
        settings.key_rotation_grace_seconds,
        settings.resolved_data_dir,
        services.audit.record,
        services.metrics.set_key_expiries,
    )


async def _tell_sessions(app: web.Application) -> None:
    """The gateway is stopping (SIGTERM, `docker stop`): open realtime sessions are told and closed
    at once, stored closed, instead of being cut when the shutdown's timeout runs out."""
    app[SERVICES].stopping.set()


async def _start_sip(app: web.Application) -> Any:
    services = app[SERVICES]
    if not services.settings.sip.enabled:
        return None
    from .calls.sip.server import SipServer

    async def admit_sip(principal: Any, action: str, resource: dict[str, Any]) -> None:
        info = {"method": "INVITE", "path": "sip", "transport": "sip", "time": time.time()}
        await services.gate.admit(principal, action, resource, {**info, "remote": resource.get("remote")})

    server = SipServer(services, services.settings.sip, admit_sip)
    await server.start()
    services.sip = server
    return server


def create_app(settings: GatewaySettings, services: GatewayServices | None = None) -> web.Application:
    quiet_malformed_requests()
    client = forwarded_client(networks(settings.trusted_proxies))
    app = web.Application(
        client_max_size=settings.max_body_bytes, middlewares=[client, request_context, verify_hop]
    )
    app[SERVICES] = services or create_services(settings)
    app.on_response_prepare.append(
        security_headers(settings.hsts_max_age_seconds if settings.tls_enabled else 0)
    )
    app.cleanup_ctx.append(_lifecycle)
    app.on_shutdown.append(_tell_sessions)
    app[SERVICES].responder = skills_responder(app[SERVICES])
    add_routes(app)
    return app
