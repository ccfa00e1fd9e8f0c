"""`PendingWrites` on its own: while the store is unreachable (an injected fault: each write raises
StoreUnavailable while `down` is set) writes are kept, the latest per key, and written in the
order they were last kept once it answers; nothing is tried behind a kept write."""

from __future__ import annotations

import pytest

from ovos_realtime_gateway.store import StoreUnavailable
from ovos_realtime_gateway.store.pending import PendingWrites, Write


class _Store:
    """Records what was written; unreachable while `down`."""

    def __init__(self) -> None:
        self.down = False
        self.written: list[str] = []
        self.tries = 0

    def saving(self, what: str) -> Write:
        async def write() -> None:
            self.tries += 1
            if self.down:
                raise StoreUnavailable("the store postgresql://db is unreachable: connection refused")
            self.written.append(what)

        return write


async def test_writes_are_kept_while_the_store_is_away_and_stored_in_order_after() -> None:
    store, pending = _Store(), PendingWrites()
    await pending.write("session:a", store.saving("a opened"))
    store.down = True
    await pending.write("items:a", store.saving("a's first item"))
    assert len(pending) == 1 and store.tries == 2
    await pending.write("session:b", store.saving("b opened"))
    await pending.write("items:a", store.saving("a's two items"))  # replaces the older, moves last
    assert store.tries == 2, "behind a kept write nothing is tried: no wait on a store known away"
    assert not await pending.flush() and len(pending) == 2
    store.down = False
    assert await pending.flush() and len(pending) == 0
    assert store.written == ["a opened", "b opened", "a's two items"]


async def test_what_a_store_never_back_could_not_take_is_logged_at_stop(
    caplog: pytest.LogCaptureFixture,
) -> None:
    store, pending = _Store(), PendingWrites()
    store.down = True
    await pending.write("session:a", store.saving("a closed"))
    pending.start()
    await pending.stop()
    assert "the store stayed unreachable: 1 kept write(s) were not stored" in caplog.text
