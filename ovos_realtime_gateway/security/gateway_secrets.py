"""The gateway's secret settings, each a SecretValue its consumer reads when it needs it."""

from __future__ import annotations

from dataclasses import dataclass, field

from ..settings import GatewaySettings, IceServer, VaultSettings
from .secret_refs import SecretResolver, SecretValue


@dataclass
class GatewaySecrets:
    resolver: SecretResolver = field(default_factory=lambda: SecretResolver(VaultSettings()))
    webhook: SecretValue | None = None
    webhook_previous: SecretValue | None = None
    webhook_overlap_s: float = 0.0
    opa_token: SecretValue | None = None
    tls_key_password: SecretValue | None = None
    store_password: SecretValue | None = None
    redis_password: SecretValue | None = None  # shared_limits.redis_password
    cluster_redis_password: SecretValue | None = None  # cluster.redis_password
    hop_secret: SecretValue | None = None  # cluster.hop_secret: authenticates replica-to-replica requests
    metrics_token: SecretValue | None = None  # metrics_token: the bearer token GET /metrics requires
    servers: tuple[IceServer, ...] = ()
    turn_credentials: tuple[SecretValue | None, ...] = ()

    @classmethod
    def from_settings(cls, settings: GatewaySettings) -> GatewaySecrets:
        resolver = SecretResolver(settings.vault)
        return cls(
            resolver=resolver,
            webhook=resolver.add("sip.webhook_secret", settings.sip.webhook_secret),
            webhook_previous=resolver.add(
                "sip.webhook_previous_secret", settings.sip.webhook_previous_secret
            ),
            webhook_overlap_s=settings.sip.webhook_secret_overlap_seconds,
            opa_token=resolver.add("opa_token", settings.opa_token),
            tls_key_password=resolver.add("tls_key_password", settings.tls_key_password),
            store_password=resolver.add("store_password", settings.store_password),
            redis_password=resolver.add(
                "shared_limits.redis_password", settings.shared_limits.redis_password
            ),
            cluster_redis_password=resolver.add("cluster.redis_password", settings.cluster.redis_password),
            hop_secret=resolver.add("cluster.hop_secret", settings.cluster.hop_secret),
            metrics_token=resolver.add("metrics_token", settings.metrics_token),
            servers=settings.ice_servers,
            turn_credentials=tuple(
                resolver.add(f"ice_servers.{i}.credential", s.credential)
                for i, s in enumerate(settings.ice_servers)
            ),
        )

    def webhook_signing(self) -> list[str]:
        """The secrets a webhook is signed with now, newest first: the current one; the one it
        replaced, during the overlap after a change; and `webhook_previous_secret`, while set."""
        if self.webhook is None:
            return []
        candidates = [
            self.webhook.value,
            self.webhook.previous_within(self.webhook_overlap_s),
            self.webhook_previous.value if self.webhook_previous is not None else None,
        ]
        return list(dict.fromkeys(c for c in candidates if c))

    def ice_servers(self) -> tuple[IceServer, ...]:
        """The configured STUN/TURN servers with their credentials as they are now."""
        return tuple(
            server if secret is None else server.model_copy(update={"credential": secret.value})
            for server, secret in zip(self.servers, self.turn_credentials, strict=True)
        )
