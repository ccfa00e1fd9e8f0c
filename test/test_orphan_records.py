"""Which records a replica may close (both backends, real sqlite and PostgreSQL): only the `active`
sessions and open calls of replicas that are not alive, with the reason stored on them; the
sweeper asks the registry who is alive and closes nothing while it cannot tell."""

from __future__ import annotations

from typing import Any

from ovos_realtime_gateway.cluster.failover import OrphanSweeper
from ovos_realtime_gateway.cluster.registry import LocalRegistry, Registry, RegistryUnavailable, Replica
from ovos_realtime_gateway.store import SessionRecord, Store
from ovos_realtime_gateway.store.records import ClosedRecord

NOW = 1_800_000_000


def _session(session_id: str, project_id: str, status: str, replica_id: str | None) -> SessionRecord:
    return SessionRecord(
        id=session_id,
        project_id=project_id,
        type="realtime",
        config={"type": "realtime"},
        status=status,
        created_at=NOW,
        updated_at=NOW,
        replica_id=replica_id,
    )


def _call(call_id: str, project_id: str, status: str, replica_id: str | None) -> dict[str, Any]:
    return {
        "id": call_id,
        "project_id": project_id,
        "transport": "webrtc",
        "status": status,
        "created_at": NOW,
        "replica_id": replica_id,
    }


async def _rows(store: Store) -> str:
    project, _ = await store.ensure_project("alpha")
    for record in (
        _session("sess_a", project.id, "active", "rep_a"),
        _session("sess_b", project.id, "active", "rep_b"),
        _session("sess_old", project.id, "active", None),
        _session("sess_pending", project.id, "pending", None),
        _session("sess_done", project.id, "closed", "rep_a"),
    ):
        await store.save_session(record)
    for call in (
        _call("rtc_a", project.id, "active", "rep_a"),
        _call("rtc_b", project.id, "ringing", "rep_b"),
        _call("rtc_done", project.id, "ended", "rep_a"),
    ):
        await store.save_call(call)
    return project.id


async def _states(store: Store, project_id: str) -> tuple[dict[str, Any], dict[str, Any]]:
    sessions = {s.id: (s.status, s.end_reason) for s in await store.list_sessions(project_id)}
    calls = {c["id"]: (c["status"], c["end_reason"]) for c in await store.list_calls(project_id)}
    return sessions, calls


async def test_only_the_records_of_replicas_not_alive_are_closed(store: Store) -> None:
    project_id = await _rows(store)
    closed = await store.close_orphans(NOW + 5, {"rep_b", "rep_c"}, "replica_lost", unheld=False)
    assert closed == [
        ClosedRecord("session", "sess_a", project_id, "rep_a", "replica_lost"),
        ClosedRecord("call", "rtc_a", project_id, "rep_a", "replica_lost"),
    ]
    sessions, calls = await _states(store, project_id)
    assert sessions == {
        "sess_a": ("closed", "replica_lost"),
        "sess_b": ("active", None),  # a live replica's: never closed by another
        "sess_old": ("active", None),  # held by no recorded replica: only a start closes it
        "sess_pending": ("pending", None),
        "sess_done": ("closed", None),
    }
    assert calls == {
        "rtc_a": ("ended", "replica_lost"),
        "rtc_b": ("ringing", None),
        "rtc_done": ("ended", None),
    }
    assert (await store.close_orphans(NOW + 6, {"rep_b"}, "replica_lost", unheld=False)) == []

    at_start = await store.close_orphans(NOW + 7, {"rep_b", "rep_new"}, "replica_lost", unheld=True)
    assert [(r.kind, r.id) for r in at_start] == [("session", "sess_old")]
    sessions, _ = await _states(store, project_id)
    assert sessions["sess_b"] == ("active", None) and sessions["sess_old"] == ("closed", "replica_lost")


async def test_a_replica_back_from_a_pause_reopens_only_its_own_records_closed_as_lost(store: Store) -> None:
    project_id = await _rows(store)
    await store.close_orphans(NOW + 5, {"rep_b"}, "replica_lost", unheld=False)  # rep_a taken for dead
    held = ["sess_a", "sess_done", "sess_b"]  # what rep_a says it holds (sess_b is rep_b's)
    assert await store.reopen_lost(NOW + 6, "rep_a", held, ["rtc_a", "rtc_done"]) == 2
    sessions, calls = await _states(store, project_id)
    assert sessions["sess_a"] == ("active", None)
    assert sessions["sess_done"] == ("closed", None)  # closed by its client: stays closed
    assert sessions["sess_b"] == ("active", None)
    assert calls["rtc_a"] == ("active", None) and calls["rtc_done"] == ("ended", None)
    assert await store.reopen_lost(NOW + 7, "rep_a", [], []) == 0


class _Blind(LocalRegistry):
    """A registry whose Redis does not answer (injected fault: who is alive is unknown)."""

    async def live_replicas(self) -> dict[str, Any]:
        raise RegistryUnavailable("connection refused")


async def test_the_sweeper_closes_nothing_while_it_cannot_tell_who_is_alive(store: Store) -> None:
    project_id = await _rows(store)
    told: list[ClosedRecord] = []
    blind: Registry = _Blind()
    sweeper = OrphanSweeper(store, blind, 1.0, clustered=True, closed=told.append)
    assert await sweeper.at_start() == [] and await sweeper.sweep() == [] and await sweeper.sweep() == []
    sessions, _ = await _states(store, project_id)
    assert sessions["sess_a"] == ("active", None) and told == []


class _Leases(LocalRegistry):
    """The leases Redis holds, set by the test (injected: Redis restarted empty, a replica killed)."""

    def __init__(self, *alive: str) -> None:
        super().__init__()
        self.alive = set(alive)

    async def live_replicas(self) -> dict[str, Any]:
        return {replica: Replica(replica, "") for replica in self.alive}


async def test_a_replica_is_lost_when_missing_at_two_looks_in_a_row(store: Store) -> None:
    """Redis restarted empty: until their next heartbeat no replica has a lease, but rep_a's
    records are closed only when it is still missing a sweep later (it was killed)."""
    project_id = await _rows(store)
    leases = _Leases("rep_a", "rep_b")
    told: list[ClosedRecord] = []
    sweeper = OrphanSweeper(store, leases, 1.0, clustered=True, closed=told.append)
    assert await sweeper.at_start() == []  # the first look
    leases.alive = {"rep_b"}  # Redis restarted: rep_b beat first
    assert await sweeper.sweep() == []  # rep_a was alive at the previous look
    leases.alive = {"rep_a", "rep_b"}  # rep_a's heartbeat registered it again
    assert await sweeper.sweep() == []
    leases.alive = {"rep_b"}  # rep_a killed
    assert await sweeper.sweep() == []
    closed = await sweeper.sweep()
    assert [(r.kind, r.id) for r in closed] == [("session", "sess_a"), ("call", "rtc_a")] and told == closed
    sessions, _ = await _states(store, project_id)
    assert sessions["sess_b"] == ("active", None) and sessions["sess_a"] == ("closed", "replica_lost")


async def test_a_gateway_alone_closes_every_open_record_at_start(store: Store) -> None:
    """LocalRegistry: only itself is alive, so its start closes every active session and open
    call (its previous run died), as before replicas were recorded."""
    project_id = await _rows(store)
    told: list[ClosedRecord] = []
    closed = await OrphanSweeper(store, LocalRegistry(), 1.0, clustered=False, closed=told.append).at_start()
    assert {r.id for r in closed} == {"sess_a", "sess_b", "sess_old", "rtc_a", "rtc_b"} and told == closed
    sessions, calls = await _states(store, project_id)
    assert {s for s, (status, _) in sessions.items() if status == "active"} == set()
    assert calls["rtc_b"] == ("ended", "gateway_died")
