"""`vault` (where `vault:` secret references are read) and `key_rotation` (rotating keys by age)."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, field_validator, model_validator

from ..security.secret_refs import check_reference
from .section import Section


class VaultSettings(Section):
    """The Vault (or OpenBao) server that `vault:` secret references are read from (KV v2)."""

    url: str | None = Field(None, description="Server address; none: the VAULT_ADDR environment variable.")
    token: str | None = Field(
        None,
        description="Token (token auth): a reference such as `env:VAULT_TOKEN` or `file:PATH`; none and "
        "no `role_id`: the VAULT_TOKEN environment variable.",
    )
    role_id: str | None = Field(None, description="AppRole role id (AppRole auth, with `secret_id`).")
    secret_id: str | None = Field(
        None, description="AppRole secret id: a reference such as `env:VAULT_SECRET_ID` or `file:PATH`."
    )
    approle_mount: str = Field("approle", description="Where the AppRole auth method is mounted.")
    namespace: str | None = Field(None, description="Vault Enterprise namespace.")
    ca_cert: Path | None = Field(None, description="PEM CA bundle the server's certificate is checked with.")
    timeout_seconds: float = Field(10.0, gt=0, le=120, description="Timeout of one request to the server.")
    refresh_seconds: float = Field(
        300.0,
        gt=0,
        le=86_400,
        description="How often every referenced secret (`vault:`, `file:`, `env:`) is read again, so a "
        "rotated secret is used without a restart.",
    )

    @field_validator("token", "secret_id")
    @classmethod
    def _local_reference(cls, value: str | None) -> str | None:
        return check_reference(value, allow_vault=False)

    @model_validator(mode="after")
    def _approle(self) -> VaultSettings:
        if (self.role_id is None) != (self.secret_id is None):
            raise ValueError("vault.role_id and vault.secret_id must be given together (AppRole)")
        if self.role_id is not None and self.token is not None:
            raise ValueError("use either vault.token or vault.role_id/secret_id, not both")
        return self


class KeyRotationPolicy(Section):
    """When project keys are rotated automatically (off unless a maximum age is set)."""

    max_age_days: float | None = Field(
        None, gt=0, description="A key this old is rotated automatically; none: never."
    )
    max_age_seconds: int | None = Field(
        None, gt=0, description="The same in seconds (for short ages); not with `max_age_days`."
    )
    grace_seconds: int | None = Field(
        None,
        ge=0,
        description="How long the rotated key keeps working; none: the default policy's, else "
        "`key_rotation_grace_seconds`.",
    )

    @model_validator(mode="after")
    def _one_age(self) -> KeyRotationPolicy:
        if self.max_age_days is not None and self.max_age_seconds is not None:
            raise ValueError("give max_age_days or max_age_seconds, not both")
        return self

    @property
    def max_age_s(self) -> float | None:
        if self.max_age_seconds is not None:
            return float(self.max_age_seconds)
        return self.max_age_days * 86_400 if self.max_age_days is not None else None


class KeyRotationSettings(KeyRotationPolicy):
    """The rotation policy of every project, per-project overrides, and how often it is applied."""

    check_interval_seconds: float = Field(
        3600.0, gt=0, le=86_400, description="How often the gateway looks for keys due for rotation."
    )
    projects: dict[str, KeyRotationPolicy] = Field(
        default_factory=dict,
        description="Per-project policies (by project name or id) replacing the default one.",
    )

    def policy_for(self, project_id: str, project_name: str | None = None) -> KeyRotationPolicy:
        for name in (project_id, project_name):
            if name and name in self.projects:
                return self.projects[name]
        return self

    @property
    def enabled(self) -> bool:
        return self.max_age_s is not None or any(p.max_age_s is not None for p in self.projects.values())
