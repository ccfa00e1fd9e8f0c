"""Session hooks that keep a live session's row and conversation in the store."""

from __future__ import annotations

import time
from typing import Any

from ..engine.response import ResponseRun
from ..engine.session import SessionHooks
from ..protocol.session_config import Config
from ..security.auth import Principal
from ..services import GatewayServices
from ..store import ItemLedger, SessionRecord

TTS_FAILURES = {"tts_failed": "error", "tts_timeout": "timeout"}  # a response's failure → kind


class StoreHooks(SessionHooks):
    """Keeps the session row and its conversation in the store (while the store is unreachable,
    in `services.pending_writes`, retried); reports the key's request budget."""

    def __init__(self, services: GatewayServices, record: SessionRecord, principal: Principal) -> None:
        self.services = services
        self.record = record
        self.principal = principal
        self.ledger = ItemLedger()  # diffed synchronously: saves reach the store thread in order

    async def config_changed(self, config: Config) -> None:
        await self.save(
            SessionRecord(**{**record_fields(self.record), "config": config, "updated_at": int(time.time())})
        )

    async def save(self, record: SessionRecord) -> None:
        """Store the session's row (kept and retried while the store is away: the latest row)."""
        self.record = record
        await self.services.pending_writes.write(
            f"session:{record.id}", lambda: self.services.store.save_session(self.record)
        )

    async def items_changed(self, conversation: Any) -> None:
        """Write the items added or changed since the last save (the first save writes them all;
        kept and retried while the store is away: then the whole conversation)."""
        await self.services.pending_writes.write(
            f"items:{self.record.id}", lambda: self._write_items(conversation)
        )

    async def _write_items(self, conversation: Any) -> None:
        changes = self.ledger.changes(conversation.items)
        try:
            await self.services.store.write_items(self.record.id, changes)
        except Exception:
            self.ledger.forget()
            raise

    def response_finished(self, run: ResponseRun) -> None:
        status, reason = run.outcome
        metrics = self.services.metrics
        metrics.responses.labels(status=status, reason=reason).inc()
        if reason in TTS_FAILURES:
            plugin = self.services.settings.tts_plugin
            metrics.speech_failures.labels(component="tts", plugin=plugin, kind=TTS_FAILURES[reason]).inc()
        self.services.events.response_finished(run)

    def rate_limits(self) -> list[dict[str, Any]]:
        status = self.services.limiter.peek(self.principal.project_id, self.principal.owning_key)
        return [
            {
                "name": "requests",
                "limit": status.limit,
                "remaining": status.remaining,
                "reset_seconds": round(status.reset_s, 3),
            }
        ]


def record_fields(record: SessionRecord) -> dict[str, Any]:
    return {name: getattr(record, name) for name in record.__dataclass_fields__}


async def secret_session(services: GatewayServices, principal: Principal) -> tuple[SessionRecord | None, int]:
    """The session an `ek_` secret was minted for (only in the secret's own project), and the
    lifetime a session opened with this principal gets: the project's cap, or the secret's if lower."""
    lifetime = services.limits(principal.project_id).max_session_seconds
    if principal.kind != "client_secret" or principal.session_id is None:
        return None, lifetime
    stored = await services.store.get_session(principal.session_id)
    if stored is None or stored.project_id != principal.project_id:
        return None, lifetime
    return stored, min(lifetime, stored.max_seconds or lifetime)
