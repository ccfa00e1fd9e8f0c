"""`ice_servers` (WebRTC calls) and `sip` (the SIP endpoint for G.711 trunks)."""

from __future__ import annotations

from pydantic import Field, field_validator, model_validator

from ..security.secret_refs import check_reference
from .section import Section


class IceServer(Section):
    """A STUN or TURN server offered to WebRTC calls (as in the browser's RTCIceServer)."""

    urls: tuple[str, ...] = Field(description="`stun:host:port` or `turn:host:port?transport=udp` URLs.")
    username: str | None = Field(None, description="TURN user name.")
    credential: str | None = Field(
        None, description="TURN password: a literal, or a reference (`env:`, `file:`, `vault:`)."
    )

    @field_validator("credential")
    @classmethod
    def _reference(cls, value: str | None) -> str | None:
        return check_reference(value)


class SipSettings(Section):
    """The SIP endpoint for G.711 trunks (off unless `enabled`)."""

    enabled: bool = Field(False, description="Listen for SIP calls (UDP).")
    host: str = Field("127.0.0.1", description="Address for SIP and the calls' RTP.")
    port: int = Field(5060, ge=0, le=65535, description="UDP port for SIP (0: any free port).")
    advertised_host: str | None = Field(
        None, description="Address put in Contact and SDP when `host` is a wildcard or behind NAT."
    )
    project: str = Field("sip", description="Project the trunk's calls belong to (its keys accept them).")
    webhook_url: str | None = Field(None, description="Where `realtime.call.incoming` is POSTed.")
    webhook_secret: str | None = Field(
        None,
        description="`whsec_…` secret the webhook is signed with (Standard Webhooks, as OpenAI): a "
        "literal, or a reference (`env:NAME`, `file:PATH`, `vault:MOUNT/PATH#FIELD`).",
    )
    webhook_previous_secret: str | None = Field(
        None,
        description="The secret being rotated out: while set, webhooks carry a signature with it too "
        "(a literal or a reference).",
    )
    webhook_secret_overlap_seconds: int = Field(
        86_400,
        ge=0,
        description="When `webhook_secret` changes in its backend, the old one keeps signing (a second "
        "signature) this long, so receivers can switch without losing webhooks.",
    )
    allowed_sources: tuple[str, ...] = Field(
        ("127.0.0.1/32",),
        description="Networks (CIDR) SIP messages may come from; a request from elsewhere gets 403.",
    )
    ring_timeout_seconds: float = Field(
        60.0, gt=0, le=600, description="An incoming call nobody accepts is declined (480) after this."
    )

    @field_validator("webhook_secret", "webhook_previous_secret")
    @classmethod
    def _reference(cls, value: str | None) -> str | None:
        return check_reference(value)

    @model_validator(mode="after")
    def _previous_needs_current(self) -> SipSettings:
        if self.webhook_previous_secret is not None and self.webhook_secret is None:
            raise ValueError("sip.webhook_previous_secret signs beside sip.webhook_secret: give that too")
        return self
