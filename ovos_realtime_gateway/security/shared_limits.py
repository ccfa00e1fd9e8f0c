"""The limits several replicas share through Redis (`shared_limits.redis_url`): requests per minute,
concurrent sessions and failed authentications count the sum over every replica, not one process.

Each check is one Lua script, so it is atomic whichever replica runs it; time is Redis's (`TIME`),
so the replicas' clocks do not matter. When Redis is down or slower than `timeout_seconds`, the
replica does not wait and does not let everything through: it limits on its own (the in-process
limiters, the single-process behaviour) and counts it in `ovos_realtime_shared_limits_fallbacks`,
trying Redis again a second later. Scripts reach keys they compute (a replica's lease): one Redis,
or a primary with replicas or Sentinel, not Redis Cluster.

Not the `limits` library: its async Redis storage needs `coredis` (a second Redis client), its
strategies are fixed or moving windows rather than the continuous buckets the `x-ratelimit-*`
headers report, it cannot take from the project's and the key's bucket only if both have room,
and it has no leased concurrency counter; redis-py's asyncio client (already used by the event
bridge) and three short scripts do exactly this."""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ..tasks import TaskSupervisor
from .ratelimit import (
    AuthFailureThrottle,
    LimitStatus,
    RateLimiter,
    SessionSlots,
    TokenBucket,
    limit_status,
)
from .redis_client import fail_fast_client
from .secret_refs import SecretValue

if TYPE_CHECKING:
    from ..settings import SharedLimitsSettings

log = logging.getLogger("ovos_realtime.shared_limits")

RETRY_S = 1.0  # after a failure, Redis is tried again this much later (checks meanwhile stay local)

# Token buckets (capacity per minute, refilled continuously), one per key. ARGV[1]: "all" takes a
# token from every bucket only if each has one, "take" (one bucket) takes one if it has it, "peek"
# takes none and writes nothing; ARGV[2..]: the capacities. Returns the outcome, then each bucket's
# tokens (as strings: Redis would truncate Lua numbers to integers).
BUCKETS = """
local clock = redis.call('TIME')
local now = tonumber(clock[1]) + tonumber(clock[2]) / 1000000
local mode = ARGV[1]
local tokens = {}
local all = 1
for i, key in ipairs(KEYS) do
  local capacity = tonumber(ARGV[i + 1])
  local state = redis.call('HMGET', key, 'tokens', 'updated', 'capacity')
  local have, updated = tonumber(state[1]), tonumber(state[2])
  if have == nil or updated == nil or tonumber(state[3]) ~= capacity then
    have, updated = capacity, now
  end
  have = math.min(capacity, have + math.max(0, now - updated) * capacity / 60)
  tokens[i] = have
  if have < 1 then all = 0 end
end
local out = {all}
for i, key in ipairs(KEYS) do
  local capacity = tonumber(ARGV[i + 1])
  if mode ~= 'peek' then
    if all == 1 then tokens[i] = tokens[i] - 1 end
    redis.call('HSET', key, 'tokens', tostring(tokens[i]), 'updated', tostring(now), 'capacity', capacity)
    redis.call('PEXPIRE', key, math.ceil((capacity - tokens[i]) * 60000 / capacity) + 1000)
  end
  out[#out + 1] = tostring(tokens[i])
end
return out
"""

# Session slots: KEYS = the project's and the key's hashes (field: replica id, value: its slots).
# ARGV: replica id, lease key prefix, lease ms, project limit, key limit. Slots of a replica whose
# lease expired (killed) are dropped; returns 0 (taken), 1 (project full) or 2 (key full).
ACQUIRE = """
local me, leases = ARGV[1], ARGV[2]
redis.call('SET', leases .. me, '1', 'PX', tonumber(ARGV[3]))
local used = {}
for i, key in ipairs(KEYS) do
  local held = redis.call('HGETALL', key)
  local total = 0
  for j = 1, #held, 2 do
    if redis.call('EXISTS', leases .. held[j]) == 1 then
      total = total + tonumber(held[j + 1])
    else
      redis.call('HDEL', key, held[j])
    end
  end
  used[i] = total
end
if used[1] >= tonumber(ARGV[4]) then return 1 end
if used[2] >= tonumber(ARGV[5]) then return 2 end
for _, key in ipairs(KEYS) do redis.call('HINCRBY', key, me, 1) end
return 0
"""

# Releasing a slot: KEYS = the two hashes, ARGV[1] = replica id.
RELEASE = """
for _, key in ipairs(KEYS) do
  if redis.call('HINCRBY', key, ARGV[1], -1) <= 0 then redis.call('HDEL', key, ARGV[1]) end
end
return 0
"""


class SharedRedis:
    """The Redis client of the shared limits: short timeouts, no retries, and a pause after a
    failure during which `run` answers None at once (the caller then limits on its own)."""

    def __init__(
        self,
        settings: SharedLimitsSettings,
        password: SecretValue | None,
        fell_back: Callable[[str], None],
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        assert settings.redis_url is not None
        self.prefix = settings.key_prefix
        self.timeout_s = settings.timeout_seconds
        self.fell_back = fell_back
        self.clock = clock
        self._down_until = 0.0
        self.client = fail_fast_client(settings.redis_url, password, self.timeout_s)
        self.buckets = self.client.register_script(BUCKETS)
        self.acquire = self.client.register_script(ACQUIRE)
        self.release = self.client.register_script(RELEASE)

    async def run(self, call: Callable[[], Any], limit: str) -> Any | None:
        """`await call()` against Redis; None (counted, logged once) when Redis cannot answer now."""
        if self.clock() < self._down_until:
            self.fell_back(limit)
            return None
        try:
            result = await asyncio.wait_for(call(), self.timeout_s * 2)
        except (OSError, TimeoutError, asyncio.TimeoutError, _redis_error()) as exc:
            if self._down_until == 0.0:
                log.warning("shared limits: Redis unavailable (%s); each replica limits on its own", exc)
            self._down_until = self.clock() + RETRY_S
            self.fell_back(limit)
            return None
        if self._down_until:
            log.info("shared limits: Redis answers again; the limits are shared")
            self._down_until = 0.0
        return result

    async def close(self) -> None:
        await self.client.aclose()


def _redis_error() -> type[Exception]:
    from redis.exceptions import RedisError

    return RedisError


class RedisRateLimiter:
    """Requests per minute of a project and of a key, shared by every replica."""

    def __init__(self, redis: SharedRedis, local: RateLimiter) -> None:
        self.redis = redis
        self.local = local  # the limits used while Redis is unavailable
        self._seen: dict[str, TokenBucket] = {}  # each key's bucket as the last check left it

    async def check(self, project_id: str, key_id: str) -> LimitStatus:
        p_cap, k_cap = self.local.project_rpm(project_id), self.local.key_rpm(project_id)
        keys = [f"{self.redis.prefix}rpm:p:{project_id}", f"{self.redis.prefix}rpm:k:{key_id}"]
        result = await self.redis.run(lambda: self.redis.buckets(keys, ["all", p_cap, k_cap]), "requests")
        if result is None:
            return await self.local.check(project_id, key_id)
        now = time.monotonic()
        project = TokenBucket(p_cap, float(result[1]), now)
        key = self._seen[key_id] = TokenBucket(k_cap, float(result[2]), now)
        return limit_status(project, key, bool(int(result[0])))

    def peek(self, project_id: str, key_id: str) -> LimitStatus:
        """The key's bucket as this replica last saw it, refilled since (no Redis round trip)."""
        capacity = self.local.key_rpm(project_id)
        seen = self._seen.get(key_id)
        if seen is None or seen.capacity != capacity:
            return LimitStatus(True, "key", capacity, capacity, 0.0, 0.0)
        bucket = TokenBucket(seen.capacity, seen.tokens, seen.updated)
        bucket._refill(time.monotonic())
        return LimitStatus(True, "key", capacity, int(bucket.tokens), bucket.reset_after(), 0.0)


class RedisAuthThrottle:
    """Failed authentications per client address, counted over every replica."""

    def __init__(self, redis: SharedRedis, local: AuthFailureThrottle) -> None:
        self.redis = redis
        self.local = local

    async def blocked(self, address: str) -> float | None:
        capacity = self.local.per_minute()
        key = f"{self.redis.prefix}auth:{address}"
        result = await self.redis.run(lambda: self.redis.buckets([key], ["peek", capacity]), "auth_failures")
        if result is None:
            return await self.local.blocked(address)
        bucket = TokenBucket(capacity, float(result[1]), 0.0)
        return bucket.retry_after() if bucket.tokens < 1.0 else None

    async def failed(self, address: str) -> None:
        capacity = self.local.per_minute()
        key = f"{self.redis.prefix}auth:{address}"
        result = await self.redis.run(lambda: self.redis.buckets([key], ["take", capacity]), "auth_failures")
        if result is None:
            await self.local.failed(address)


class RedisSessionSlots:
    """Concurrent sessions of a project and of a key, summed over the replicas.

    Each replica's slots are a field of the project's and the key's Redis hash, counted only while
    the replica's lease (`<prefix>replica:<id>`, `lease_seconds`) lives. A heartbeat renews the
    lease every third of it and writes this replica's slots again, so a killed replica's slots
    stop counting when its lease expires, and a restarted (emptied) Redis has every live slot back
    within one heartbeat. The slots this replica holds are also kept here: they limit on their own
    while Redis is unavailable."""

    def __init__(self, redis: SharedRedis, local: SessionSlots, lease_s: float) -> None:
        self.redis = redis
        self.local = local
        self.lease_s = lease_s
        self.replica = uuid.uuid4().hex
        self.tasks = TaskSupervisor("shared-limits")
        self._published: set[str] = set()
        self._closed = False

    def _keys(self, project_id: str, key_id: str) -> list[str]:
        return [f"{self.redis.prefix}slots:p:{project_id}", f"{self.redis.prefix}slots:k:{key_id}"]

    async def try_acquire(self, project_id: str, key_id: str) -> str | None:
        self.local.hold(project_id, key_id)  # counted first: a heartbeat meanwhile over-counts, never under
        args: list[str | int] = [
            self.replica,
            f"{self.redis.prefix}replica:",
            int(self.lease_s * 1000),
            self.local.project_limit(project_id),
            self.local.key_limit(project_id),
        ]
        keys = self._keys(project_id, key_id)
        result = await self.redis.run(lambda: self.redis.acquire(keys, args), "sessions")
        if result is None:
            self.local.release(project_id, key_id)
            return await self.local.try_acquire(project_id, key_id)
        full = {0: None, 1: "project", 2: "key"}[int(result)]
        if full is not None:
            self.local.release(project_id, key_id)
        self.local.decided(full is None)
        return full

    def release(self, project_id: str, key_id: str) -> None:
        self.local.release(project_id, key_id)
        if self._closed:  # stopping: the lease is given up, which frees every slot of this replica
            return
        keys = self._keys(project_id, key_id)
        self.tasks.spawn(
            "release-slot", self.redis.run(lambda: self.redis.release(keys, [self.replica]), "sessions")
        )

    def start(self) -> None:
        self.tasks.spawn("heartbeat", self._heartbeat())

    async def _heartbeat(self) -> None:
        while True:
            await self.redis.run(self._renew, "heartbeat")
            await asyncio.sleep(self.lease_s / 3)

    async def _renew(self) -> None:
        """Renew the lease and write this replica's slots (the truth for its own sessions)."""
        held = {f"{self.redis.prefix}slots:{name}": count for name, count in self.local.held().items()}
        async with self.redis.client.pipeline(transaction=True) as pipe:
            pipe.set(f"{self.redis.prefix}replica:{self.replica}", "1", px=int(self.lease_s * 1000))
            for key, count in held.items():
                pipe.hset(key, self.replica, count)
            for key in self._published - held.keys():
                pipe.hdel(key, self.replica)
            await pipe.execute()
        self._published = set(held)

    async def close(self) -> None:
        """Stop the heartbeat and give this replica's lease up (its slots stop counting at once)."""
        self._closed = True
        await self.tasks.close()
        lease = f"{self.redis.prefix}replica:{self.replica}"
        await self.redis.run(lambda: self.redis.client.delete(lease), "heartbeat")


class SharedLimits:
    """The three shared limiters over one Redis client, and their lifetime (the heartbeat)."""

    def __init__(
        self,
        settings: SharedLimitsSettings,
        password: SecretValue | None,
        limiter: RateLimiter,
        slots: SessionSlots,
        throttle: AuthFailureThrottle,
        fell_back: Callable[[str], None],
    ) -> None:
        self.redis = SharedRedis(settings, password, fell_back)
        self.limiter = RedisRateLimiter(self.redis, limiter)
        self.slots = RedisSessionSlots(self.redis, slots, settings.lease_seconds)
        self.throttle = RedisAuthThrottle(self.redis, throttle)

    def start(self) -> None:
        self.slots.start()

    async def close(self) -> None:
        await self.slots.close()
        await self.redis.close()
