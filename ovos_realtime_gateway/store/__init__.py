"""The embedded sqlite store (sqlite-utils): schema migrations, records, and an async facade."""

from .item_ledger import ItemChanges, ItemLedger
from .pruner import Pruner
from .purge import PurgeRefused, PurgeResult
from .records import ApiKey, AuditEntry, ClientSecret, Project, SessionRecord
from .retention import RetentionRules
from .store import Store

__all__ = [
    "ApiKey",
    "AuditEntry",
    "ClientSecret",
    "ItemChanges",
    "ItemLedger",
    "Project",
    "Pruner",
    "PurgeRefused",
    "PurgeResult",
    "RetentionRules",
    "SessionRecord",
    "Store",
]
