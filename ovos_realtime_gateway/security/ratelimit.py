"""Per-project and per-key limits: requests per minute (token buckets) and concurrent sessions."""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol


@dataclass(slots=True)
class TokenBucket:
    """`capacity` requests, refilled continuously over one minute."""

    capacity: int
    tokens: float
    updated: float

    def _refill(self, now: float) -> None:
        rate = self.capacity / 60.0
        self.tokens = min(self.capacity, self.tokens + (now - self.updated) * rate)
        self.updated = now

    def take(self, now: float) -> bool:
        self._refill(now)
        if self.tokens >= 1.0:
            self.tokens -= 1.0
            return True
        return False

    def retry_after(self) -> float:
        """Seconds until one request is available."""
        return max(0.0, (1.0 - self.tokens) * 60.0 / self.capacity)

    def reset_after(self) -> float:
        """Seconds until the bucket is full again."""
        return (self.capacity - self.tokens) * 60.0 / self.capacity


@dataclass(frozen=True, slots=True)
class LimitStatus:
    """What the `x-ratelimit-*-requests` headers report: the tighter of project and key."""

    allowed: bool
    scope: str
    limit: int
    remaining: int
    reset_s: float
    retry_after_s: float

    def headers(self) -> dict[str, str]:
        return {
            "x-ratelimit-limit-requests": str(self.limit),
            "x-ratelimit-remaining-requests": str(self.remaining),
            "x-ratelimit-reset-requests": format_duration(self.reset_s),
        }


def format_duration(seconds: float) -> str:
    """OpenAI's reset format: `1s`, `6m0s`, `1h2m3s`, `120ms`."""
    if seconds < 1:
        return f"{max(0, int(seconds * 1000))}ms"
    total = math.ceil(seconds)
    hours, rest = divmod(total, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours}h{minutes}m{secs}s"
    if minutes:
        return f"{minutes}m{secs}s"
    return f"{secs}s"


class RequestLimits(Protocol):
    """Requests per minute: in this process (`RateLimiter`) or shared through Redis."""

    async def check(self, project_id: str, key_id: str) -> LimitStatus: ...
    def peek(self, project_id: str, key_id: str) -> LimitStatus: ...


class SessionLimits(Protocol):
    """Concurrent sessions: in this process (`SessionSlots`) or shared through Redis."""

    async def try_acquire(self, project_id: str, key_id: str) -> str | None: ...
    def release(self, project_id: str, key_id: str) -> None: ...


class FailureThrottle(Protocol):
    """Failed authentications per address: in this process (`AuthFailureThrottle`) or shared."""

    async def blocked(self, address: str) -> float | None: ...
    async def failed(self, address: str) -> None: ...


@dataclass
class RateLimiter:
    """Token buckets keyed by project and by key; limits come from a per-project lookup."""

    project_rpm: Callable[[str], int]
    key_rpm: Callable[[str], int]
    clock: Callable[[], float] = time.monotonic
    _buckets: dict[str, TokenBucket] = field(default_factory=dict)

    def _bucket(self, name: str, capacity: int, now: float) -> TokenBucket:
        bucket = self._buckets.get(name)
        if bucket is None or bucket.capacity != capacity:
            bucket = TokenBucket(capacity, float(capacity), now)
            self._buckets[name] = bucket
        return bucket

    def peek(self, project_id: str, key_id: str) -> LimitStatus:
        """The key's bucket as it stands, without taking a request."""
        now = self.clock()
        key = self._bucket(f"k:{key_id}", self.key_rpm(project_id), now)
        key._refill(now)
        return LimitStatus(True, "key", key.capacity, int(key.tokens), key.reset_after(), 0.0)

    async def check(self, project_id: str, key_id: str) -> LimitStatus:
        """Take one request from both buckets (only if both have one) and report the tighter."""
        now = self.clock()
        project = self._bucket(f"p:{project_id}", self.project_rpm(project_id), now)
        key = self._bucket(f"k:{key_id}", self.key_rpm(project_id), now)
        project._refill(now)
        key._refill(now)
        allowed = project.tokens >= 1.0 and key.tokens >= 1.0
        if allowed:
            project.take(now)
            key.take(now)
        return limit_status(project, key, allowed)


def limit_status(project: TokenBucket, key: TokenBucket, allowed: bool) -> LimitStatus:
    """What a check reports: the tighter bucket, and when a refused request may be retried."""
    tight_name, tight = min(
        (("project", project), ("key", key)), key=lambda item: item[1].tokens / item[1].capacity
    )
    blocking = [b for b in (project, key) if b.tokens < 1.0]
    retry = max((b.retry_after() for b in blocking), default=0.0)
    return LimitStatus(
        allowed=allowed,
        scope=tight_name,
        limit=tight.capacity,
        remaining=int(tight.tokens),
        reset_s=tight.reset_after(),
        retry_after_s=retry,
    )


@dataclass
class SessionSlots:
    """Concurrent realtime sessions per project and per key (acquired on connect, released on close)."""

    project_limit: Callable[[str], int]
    key_limit: Callable[[str], int]
    decided: Callable[[bool], None] = lambda allowed: None  # told each result (metrics)
    _counts: dict[str, int] = field(default_factory=dict)

    async def try_acquire(self, project_id: str, key_id: str) -> str | None:
        """Take a slot; return None on success or the scope ("project"/"key") that is full."""
        full = self._full(project_id, key_id)
        self.decided(full is None)
        if full is None:
            self.hold(project_id, key_id)
        return full

    def hold(self, project_id: str, key_id: str) -> None:
        """Count a slot taken (already checked)."""
        for name in (f"p:{project_id}", f"k:{key_id}"):
            self._counts[name] = self._counts.get(name, 0) + 1

    def held(self) -> dict[str, int]:
        """The slots held, by `p:<project>` and `k:<key>`."""
        return dict(self._counts)

    def _full(self, project_id: str, key_id: str) -> str | None:
        if self._counts.get(f"p:{project_id}", 0) >= self.project_limit(project_id):
            return "project"
        if self._counts.get(f"k:{key_id}", 0) >= self.key_limit(project_id):
            return "key"
        return None

    def release(self, project_id: str, key_id: str) -> None:
        for name in (f"p:{project_id}", f"k:{key_id}"):
            left = self._counts.get(name, 0) - 1
            if left > 0:
                self._counts[name] = left
            else:
                self._counts.pop(name, None)

    def in_use(self, project_id: str) -> int:
        return self._counts.get(f"p:{project_id}", 0)


@dataclass
class AuthFailureThrottle:
    """Failed authentications per client address: past `per_minute` (refilled over a minute),
    that address is refused before its credentials are even looked at."""

    per_minute: Callable[[], int]
    clock: Callable[[], float] = time.monotonic
    max_addresses: int = 10_000
    _buckets: dict[str, TokenBucket] = field(default_factory=dict)

    async def blocked(self, address: str) -> float | None:
        """Seconds until `address` may try again, or None when it may try now."""
        bucket = self._buckets.get(address)
        if bucket is None:
            return None
        bucket._refill(self.clock())
        return bucket.retry_after() if bucket.tokens < 1.0 else None

    async def failed(self, address: str) -> None:
        now = self.clock()
        bucket = self._buckets.get(address)
        if bucket is None:
            if len(self._buckets) >= self.max_addresses:
                self._forget_recovered(now)
            capacity = self.per_minute()
            bucket = self._buckets[address] = TokenBucket(capacity, float(capacity), now)
        bucket.take(now)

    def _forget_recovered(self, now: float) -> None:
        for address, bucket in list(self._buckets.items()):
            bucket._refill(now)
            if bucket.tokens >= bucket.capacity:
                del self._buckets[address]
        while len(self._buckets) >= self.max_addresses:  # under attack from many addresses
            self._buckets.pop(next(iter(self._buckets)))
