"""The embedded sqlite store (sqlite-utils): schema migrations, records, and an async facade."""

from .records import ApiKey, AuditEntry, ClientSecret, Project, SessionRecord
from .store import Store

__all__ = ["ApiKey", "AuditEntry", "ClientSecret", "Project", "SessionRecord", "Store"]
