"""One event record: what happened, to which ids, in which project, how long it took, how it ended."""

from __future__ import annotations

import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

EventKind = Literal[
    "session.opened",
    "session.closed",
    "response.done",
    "call.started",
    "call.ended",
    "policy.decision",
]


@dataclass(frozen=True, slots=True)
class GatewayEvent:
    """A typed event; `fields()` is its flat, string-valued form (a Redis stream entry, a Kafka
    message's JSON). Ids, timings and outcomes only: text appears in `detail` only when the
    operator set `event_bridge.include_text`."""

    kind: EventKind
    project: str | None
    ids: Mapping[str, str] = field(default_factory=dict)  # session_id, response_id, call_id
    outcome: str | None = None  # e.g. closed, completed, failed, allowed, denied
    reason: str | None = None  # why: a close reason, an error code, the policy's reason
    timings: Mapping[str, float] = field(default_factory=dict)  # seconds: duration_s, latency_s
    detail: Mapping[str, str] = field(default_factory=dict)  # model, transport, action (, text)
    ts: float = field(default_factory=time.time)

    def fields(self) -> dict[str, str]:
        """Flat `name → text`, empty values left out; timings to the millisecond."""
        flat: dict[str, str] = {"kind": self.kind, "ts": f"{self.ts:.3f}"}
        if self.project:
            flat["project"] = self.project
        flat.update({k: v for k, v in self.ids.items() if v})
        if self.outcome:
            flat["outcome"] = self.outcome
        if self.reason:
            flat["reason"] = self.reason
        flat.update({k: f"{v:.3f}" for k, v in self.timings.items()})
        flat.update({k: v for k, v in self.detail.items() if v})
        return flat
