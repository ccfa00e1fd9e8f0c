"""What retention deletes: audit rows, conversations (sooner) and records of ended sessions, and
expired client secrets, each past its maximum age; one bounded batch per statement.

A session has ended when it is closed, or pending with its client secret expired (or gone); an
active session is never deleted, however old.
"""

from __future__ import annotations

from dataclasses import dataclass

_ENDED = (
    "(s.status = 'closed' or (s.status = 'pending' and not exists (select 1 from client_secrets c "
    "where c.id = s.client_secret_id and c.expires_at > :now)))"
)

DELETE_BATCH = {
    "audit_log": (
        "delete from audit_log where rowid in (select rowid from audit_log where ts < :cutoff limit :limit)"
    ),
    # a session's items go before the session (foreign key)
    "conversation_items": (
        "delete from conversation_items where rowid in (select i.rowid from conversation_items i "
        f"join sessions s on s.id = i.session_id where {_ENDED} and s.updated_at < :cutoff limit :limit)"
    ),
    "sessions": (
        "delete from sessions where rowid in (select s.rowid from sessions s where "
        f"{_ENDED} and s.updated_at < :cutoff and not exists "
        "(select 1 from conversation_items i where i.session_id = s.id) limit :limit)"
    ),
    "calls": (
        "delete from calls where rowid in (select rowid from calls "
        "where status = 'ended' and ended_at < :cutoff limit :limit)"
    ),
    "client_secrets": (
        "delete from client_secrets where rowid in "
        "(select rowid from client_secrets where expires_at < :cutoff limit :limit)"
    ),
}


@dataclass(frozen=True, slots=True)
class RetentionRules:
    """Maximum ages in seconds; 0 keeps rows of that kind forever."""

    audit_seconds: int
    sessions_seconds: int  # after the session ended; its conversation goes with it at the latest
    client_secrets_seconds: int  # after the secret expired
    conversation_seconds: int = 0  # a conversation's items, after the session ended; 0: as sessions

    @property
    def items_seconds(self) -> int:
        """The age at which an ended session's items go: the shorter of the two that are set."""
        ages = [age for age in (self.conversation_seconds, self.sessions_seconds) if age > 0]
        return min(ages, default=0)

    def cutoffs(self, now: float) -> dict[str, float]:
        """Table → rows older than this are deleted, in the order to delete them."""
        ages = {
            "audit_log": self.audit_seconds,
            "conversation_items": self.items_seconds,
            "sessions": self.sessions_seconds,
            "calls": self.sessions_seconds,
            "client_secrets": self.client_secrets_seconds,
        }
        return {table: now - age for table, age in ages.items() if age > 0}
