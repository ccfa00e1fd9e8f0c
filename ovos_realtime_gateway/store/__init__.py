"""The embedded sqlite store (sqlite-utils): schema migrations, records, and an async facade."""

from .item_ledger import ItemChanges, ItemLedger
from .records import ApiKey, AuditEntry, ClientSecret, Project, SessionRecord
from .store import Store

__all__ = [
    "ApiKey",
    "AuditEntry",
    "ClientSecret",
    "ItemChanges",
    "ItemLedger",
    "Project",
    "SessionRecord",
    "Store",
]
