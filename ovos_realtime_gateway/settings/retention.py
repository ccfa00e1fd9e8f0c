"""`retention`: how long the store keeps what no request needs any more."""

from __future__ import annotations

from pydantic import Field

from .section import Section


class RetentionSettings(Section):
    """How long the store keeps what no request needs any more; 0 keeps it forever."""

    audit_seconds: int = Field(7_776_000, ge=0, description="Audit rows are deleted at this age (90 days).")
    sessions_seconds: int = Field(
        2_592_000,
        ge=0,
        description="Ended sessions and their conversations are deleted this long after they ended "
        "(30 days); active sessions never.",
    )
    client_secrets_seconds: int = Field(
        3600, ge=0, description="Client secrets are deleted this long after they expired (1 hour)."
    )
    # -- personal data (issue 13): what a conversation leaves behind --------------------------
    conversation_seconds: int = Field(
        86_400,
        ge=0,
        description="Conversation items (typed text, transcripts, answers) are kept while their "
        "session lives, then deleted this long after it ended (1 day); 0: as long as the session "
        "(`sessions_seconds`). The session's record stays until `sessions_seconds`.",
    )
    interval_seconds: float = Field(
        600.0, gt=0, le=86_400, description="How often retention runs (the first time at start)."
    )
    batch_rows: int = Field(
        500, ge=1, le=100_000, description="Rows deleted per store transaction (keeps each one short)."
    )
