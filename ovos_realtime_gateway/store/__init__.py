"""The gateway's persistent state behind one interface (`Store`): the embedded sqlite file
(`SqliteStore`, the default) or PostgreSQL shared by replicas (`PostgresStore`, `store_url`)."""

from .backends import open_store, store_for
from .interface import Store, StoreUnavailable
from .item_ledger import ItemChanges, ItemLedger
from .pruner import Pruner
from .purge import PurgeRefused, PurgeResult
from .records import ApiKey, AuditEntry, ClientSecret, Project, SessionRecord, StoredPolicy
from .retention import RetentionRules
from .sqlite import SqliteStore

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
    "SqliteStore",
    "Store",
    "StoredPolicy",
    "StoreUnavailable",
    "open_store",
    "store_for",
]
