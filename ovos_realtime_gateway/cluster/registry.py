"""Which replica holds each live session and call: `LocalRegistry` (a gateway alone) or
`RedisRegistry` (replicas on one Redis, `cluster.redis_url`).

In Redis, a replica's lease `<prefix>replica:<id>` holds its URL and expires `lease_seconds` after
its last renewal (every third of it); `<prefix>owner:<kind>:<id>` names the replica holding a
session or call and expires `OWNER_TTL_LEASES` leases after its last renewal, which comes with the
lease's, in the same atomic call. A thing has an owner only while that replica's lease lives, so a
killed replica's things have none once its lease expired, and a closed one's none at once (it gives
its lease up and deletes its owner keys; a dead replica's owner key is dropped when it is next
looked up, or expires on its own). The replica keeps what it holds in memory too: when Redis was
unreachable or lost its keys (restarted without persistence), the next heartbeat that reaches it
writes the lease and every owner key back. A Redis call waits at most `timeout_seconds`; `claim`
and `release` never fail (the heartbeat catches up), `owner` of another replica's thing and
`live_replicas` raise `RegistryUnavailable` rather than guess while Redis cannot answer."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal, Protocol

from ..security.redis_client import fail_fast_client
from ..tasks import TaskSupervisor

if TYPE_CHECKING:
    from ..security.secret_refs import SecretValue
    from ..settings import ClusterSettings

log = logging.getLogger("ovos_realtime.cluster")

Kind = Literal["session", "call"]

# Deletes owner keys (KEYS) that still name this replica (ARGV[1]): a thing another replica claimed
# since is left to it.
RELEASE = """
local released = 0
for _, key in ipairs(KEYS) do
  if redis.call('GET', key) == ARGV[1] then
    redis.call('DEL', key)
    released = released + 1
  end
end
return released
"""

# Renews the lease (KEYS[1], to ARGV[1] for ARGV[2] ms) if it still exists (else -1) and the owner
# keys (KEYS[2..]) that name this replica (ARGV[3]) for ARGV[4] ms, in one atomic call whatever
# their count; answers the positions (1-based, among the owner keys) of those that were missing.
RENEW = """
if not redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2], 'XX') then
  return -1
end
local missing = {}
for i = 2, #KEYS do
  local holder = redis.call('GET', KEYS[i])
  if holder == ARGV[3] then
    redis.call('PEXPIRE', KEYS[i], ARGV[4])
  elseif not holder then
    missing[#missing + 1] = i - 1
  end
end
return missing
"""

# An owner key lives this many leases past its last renewal. Renewed in the lease's own atomic call,
# it cannot expire before its replica's lease (one lease would do); the second lease is margin for
# a claim written between beats and for a beat that Redis answers late, so while the lease lives
# the owner key does, and a dead replica's keys are gone at most two leases after its last beat.
OWNER_TTL_LEASES = 2


@dataclass(frozen=True)
class Replica:
    id: str  # "rep_" + 12 hex digits, new at every process start
    url: str  # base URL the other replicas reach it on (cluster.replica_url, or derived)


class RegistryUnavailable(Exception):
    """Redis cannot answer now: who holds another replica's thing, or who is alive, is unknown."""


class Registry(Protocol):
    replica: Replica  # this process
    # told what it holds when it registered again after its lease was gone (peers took it for dead)
    registered_again: Callable[[list[tuple[Kind, str]]], None] | None

    async def start(self) -> None: ...  # lease + heartbeat
    async def claim(self, kind: Kind, thing_id: str) -> None: ...  # this replica holds it
    async def release(self, kind: Kind, thing_id: str) -> None: ...
    async def owner(self, kind: Kind, thing_id: str) -> Replica | None: ...  # None: no live replica holds it
    async def live_replicas(self) -> dict[str, Replica]: ...  # leases alive now, this one included
    async def close(self) -> None: ...  # gives the lease up at once
    def serving_at(self, url: str) -> None: ...  # the listener's URL, once it is bound


STOP_TIMEOUT_S = 3.0  # how long giving the lease up at stop may keep trying Redis


def new_replica_id() -> str:
    return "rep_" + uuid.uuid4().hex[:12]


class LocalRegistry:
    """A gateway alone: everything it holds is its own, and it is the only replica."""

    def __init__(self, url: str = "") -> None:
        self.replica = Replica(new_replica_id(), url)
        self._held: set[tuple[Kind, str]] = set()
        self.registered_again: Callable[[list[tuple[Kind, str]]], None] | None = None  # never, alone

    async def start(self) -> None:
        return None

    def serving_at(self, url: str) -> None:
        if not self.replica.url:
            self.replica = Replica(self.replica.id, url)

    async def claim(self, kind: Kind, thing_id: str) -> None:
        self._held.add((kind, thing_id))

    async def release(self, kind: Kind, thing_id: str) -> None:
        self._held.discard((kind, thing_id))

    async def owner(self, kind: Kind, thing_id: str) -> Replica | None:
        return self.replica if (kind, thing_id) in self._held else None

    async def live_replicas(self) -> dict[str, Replica]:
        return {self.replica.id: self.replica}

    async def close(self) -> None:
        self._held.clear()


class RedisRegistry:
    """The registry of replicas on one Redis (see the module's docstring)."""

    def __init__(
        self,
        settings: ClusterSettings,
        password: SecretValue | None,
        url: str = "",
    ) -> None:
        assert settings.redis_url is not None
        self.replica = Replica(new_replica_id(), settings.replica_url or url)
        self.prefix = settings.key_prefix
        self.lease_ms = int(settings.lease_seconds * 1000)
        self.owner_ttl_ms = OWNER_TTL_LEASES * self.lease_ms
        self.timeout_s = settings.timeout_seconds
        self.client = fail_fast_client(settings.redis_url, password, self.timeout_s, decode_responses=True)
        self._release = self.client.register_script(RELEASE)
        self._renew = self.client.register_script(RENEW)
        self._held: set[tuple[Kind, str]] = set()
        self._rewrite = True  # the next heartbeat writes the lease and every owner key
        self._registered = False  # the lease was written once (a later rewrite is a re-registration)
        self.registered_again: Callable[[list[tuple[Kind, str]]], None] | None = None  # told what it held
        self._url_known = asyncio.Event()
        if self.replica.url:
            self._url_known.set()
        self._closed = False
        self._reachable = True
        self.tasks = TaskSupervisor("cluster")

    def _lease_key(self, replica_id: str) -> str:
        return f"{self.prefix}replica:{replica_id}"

    def _owner_key(self, kind: Kind, thing_id: str) -> str:
        return f"{self.prefix}owner:{kind}:{thing_id}"

    async def _call(self, call: Any) -> Any:
        """`await call` bounded by the timeout; Redis's failures raise RegistryUnavailable."""
        from redis.exceptions import RedisError

        try:
            result = await asyncio.wait_for(call, self.timeout_s * 2)
        except (OSError, TimeoutError, asyncio.TimeoutError, RedisError) as exc:
            if self._reachable:
                log.warning("cluster: Redis unavailable (%s); the registry catches up when it answers", exc)
            self._reachable = False
            self._rewrite = True
            raise RegistryUnavailable(str(exc)) from exc
        if not self._reachable:
            log.info("cluster: Redis answers again")
            self._reachable = True
        return result

    def serving_at(self, url: str) -> None:
        """The listener's URL, known once it is bound (unless `replica_url` says where to reach it)."""
        if not self.replica.url:
            self.replica = Replica(self.replica.id, url)
        self._url_known.set()

    async def start(self) -> None:
        """Start the heartbeat; its first beat writes the lease once the URL is known."""
        self.tasks.spawn("heartbeat", self._heartbeat())

    async def _heartbeat(self) -> None:
        await self._url_known.wait()
        while True:
            try:
                await self._beat()
            except RegistryUnavailable:
                pass  # logged once; the next beat tries again
            await asyncio.sleep(self.lease_ms / 3000)

    async def _beat(self) -> None:
        """Renew the lease and the owner keys, in one call; when the lease was gone (Redis restarted,
        or unreachable since), write it and every owner key again."""
        lease = self._lease_key(self.replica.id)
        if not self._rewrite:
            held = list(self._held)
            keys = [lease] + [self._owner_key(kind, thing_id) for kind, thing_id in held]
            args: list[str | int] = [self.replica.url, self.lease_ms, self.replica.id, self.owner_ttl_ms]
            missing = await self._call(self._renew(keys=keys, args=args))
            if missing != -1:
                await self._restore_missing([held[position - 1] for position in missing])
                return
            log.warning("cluster: this replica's lease was gone from Redis; registering again")
        held = list(self._held)
        async with self.client.pipeline(transaction=True) as pipe:
            pipe.set(lease, self.replica.url, px=self.lease_ms)
            for kind, thing_id in held:
                pipe.set(self._owner_key(kind, thing_id), self.replica.id, px=self.owner_ttl_ms)
            await self._call(pipe.execute())
        self._rewrite = False
        if self._registered and self.registered_again is not None:
            self.registered_again(held)  # peers may have taken it for dead meanwhile
        self._registered = True

    async def _restore_missing(self, missing: list[tuple[Kind, str]]) -> None:
        """Write back the owner keys a renewal found gone while the lease lived (a claim whose own
        write has not landed yet, or a key deleted by hand), unless released or claimed since."""
        still_held = [thing for thing in missing if thing in self._held]
        if not still_held:
            return
        async with self.client.pipeline(transaction=False) as pipe:
            for kind, thing_id in still_held:
                pipe.set(self._owner_key(kind, thing_id), self.replica.id, px=self.owner_ttl_ms, nx=True)
            await self._call(pipe.execute())

    async def claim(self, kind: Kind, thing_id: str) -> None:
        self._held.add((kind, thing_id))
        try:
            await self._call(
                self.client.set(self._owner_key(kind, thing_id), self.replica.id, px=self.owner_ttl_ms)
            )
        except RegistryUnavailable:
            pass  # written by the heartbeat once Redis answers

    async def release(self, kind: Kind, thing_id: str) -> None:
        self._held.discard((kind, thing_id))
        if self._closed:
            return
        try:
            await self._call(self._release(keys=[self._owner_key(kind, thing_id)], args=[self.replica.id]))
        except RegistryUnavailable:
            pass  # a stale owner key names this replica, whose heartbeat no longer claims it: no owner

    async def owner(self, kind: Kind, thing_id: str) -> Replica | None:
        """The live replica holding the thing (this one's own answer without asking Redis)."""
        if (kind, thing_id) in self._held:
            return self.replica
        replica_id = await self._call(self.client.get(self._owner_key(kind, thing_id)))
        if replica_id is None or replica_id == self.replica.id:
            return None
        url = await self._call(self.client.get(self._lease_key(replica_id)))
        if url is None:  # its replica is gone: the key goes too (unless claimed again meanwhile)
            with contextlib.suppress(RegistryUnavailable):
                await self._call(self._release(keys=[self._owner_key(kind, thing_id)], args=[replica_id]))
            return None
        return Replica(replica_id, url)

    async def live_replicas(self) -> dict[str, Replica]:
        keys: list[str] = []
        cursor = 0
        while True:
            cursor, found = await self._call(self.client.scan(cursor, match=self._lease_key("*"), count=1000))
            cursor = int(cursor)
            keys.extend(found)
            if cursor == 0:
                break
        urls = await self._call(self.client.mget(keys)) if keys else []
        start = len(self._lease_key(""))
        live = {key[start:]: Replica(key[start:], url) for key, url in zip(keys, urls, strict=True) if url}
        live[self.replica.id] = self.replica
        return live

    async def close(self) -> None:
        """Stop the heartbeat, give the lease up and delete this replica's owner keys."""
        self._closed = True
        await self.tasks.close()
        keys = [self._owner_key(kind, thing_id) for kind, thing_id in self._held]
        self._held.clear()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + STOP_TIMEOUT_S  # stopping may wait longer than a request: a lease
        while True:  # left behind looks alive for a whole lease, and its calls get 503 meanwhile
            try:
                await self._call(self.client.delete(self._lease_key(self.replica.id)))
                if keys:
                    await self._call(self._release(keys=keys, args=[self.replica.id]))
                break
            except RegistryUnavailable:
                if loop.time() > deadline:
                    break  # the lease expires on its own, the owner keys after it
                await asyncio.sleep(0.1)
        await self.client.aclose()


def registry_for(
    settings: ClusterSettings, password: SecretValue | None, url: str = ""
) -> LocalRegistry | RedisRegistry:
    """A `RedisRegistry` with `cluster.redis_url`, else the gateway alone."""
    if settings.redis_url is None:
        return LocalRegistry(settings.replica_url or url)
    return RedisRegistry(settings, password, url)
