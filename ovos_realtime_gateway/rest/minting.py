"""Minting `ek_` client secrets bound to a stored session configuration."""

from __future__ import annotations

import time
from dataclasses import dataclass

from ..protocol import errors, ids
from ..protocol.session_config import Config, initial_session
from ..protocol.session_models import RealtimeSessionRequest, TranscriptionSessionRequest
from ..security import keys
from ..security.auth import Principal
from ..security.policy_input import Resource, session_resource
from ..services import GatewayServices
from ..store import ClientSecret, SessionRecord


@dataclass(frozen=True, slots=True)
class MintedSession:
    value: str
    expires_at: int
    session: SessionRecord


def check_models(services: GatewayServices, config: Config, prefix: str = "session") -> None:
    """Refuse model names this gateway does not serve, naming the ones it does."""
    settings = services.settings

    def param(path: str) -> str:
        return f"{prefix}.{path}" if prefix else path

    model = config.get("model")
    if config.get("type") == "realtime" and model not in settings.models:
        raise errors.ApiError(
            400,
            f"Invalid value: '{model}'. Supported values are: {errors.quote_list(settings.models)}.",
            code="invalid_value",
            param=param("model"),
        )
    transcription = ((config.get("audio") or {}).get("input") or {}).get("transcription")
    if isinstance(transcription, dict) and transcription.get("model") is not None:
        name = transcription["model"]
        if name not in settings.transcription_models:
            raise errors.ApiError(
                400,
                f"Invalid value: '{name}'. Supported values are: "
                f"{errors.quote_list(settings.transcription_models)}.",
                code="invalid_value",
                param=param("audio.input.transcription.model"),
            )


def minting_resource(
    services: GatewayServices,
    principal: Principal,
    request: RealtimeSessionRequest | TranscriptionSessionRequest | None,
) -> Resource:
    """What the policy sees for a secret about to be minted: the session it will open, in the
    caller's project, minted by the caller's key."""
    config = initial_session(request, services.settings.session_defaults())
    return session_resource(config, principal.project_id, owner_key_id=principal.key_id)


async def mint_client_secret(
    services: GatewayServices,
    principal: Principal,
    request: RealtimeSessionRequest | TranscriptionSessionRequest | None,
    ttl_seconds: int,
    param_prefix: str = "session",
    max_session_seconds: int | None = None,
) -> MintedSession:
    """Validate the session against what this gateway serves, then store secret and session."""
    config = initial_session(request, services.settings.session_defaults())
    check_models(services, config, param_prefix)
    now = int(time.time())
    minted = keys.mint_client_secret()
    session = SessionRecord(
        id=ids.session_id(),
        project_id=principal.project_id,
        type=config["type"],
        config=config,
        status="pending",
        created_at=now,
        updated_at=now,
        client_secret_id=minted.record_id,
        max_seconds=max_session_seconds,
    )
    secret = ClientSecret(
        id=minted.record_id,
        project_id=principal.project_id,
        key_id=principal.credential_id,
        session_id=session.id,
        salt=minted.salt,
        hash=minted.hash,
        created_at=now,
        expires_at=now + ttl_seconds,
    )
    await services.store.create_client_secret(secret, session)
    services.metrics.client_secrets_created.labels(session_type=session.type).inc()
    return MintedSession(value=minted.value, expires_at=secret.expires_at, session=session)
