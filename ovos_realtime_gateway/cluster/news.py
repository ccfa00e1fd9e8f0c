"""The news every replica must hear at once: a key revoked (or rotated), a policy applied. Published
on the Redis channel `<cluster.key_prefix>news` by the command that changed the store, after its
commit; every replica listens (`NewsListener`) and acts on it.

A message is a hint to check now, never trusted as such: a replica asks the store which of the
keys named its live things hold are no longer usable, or which policy is the newest stored. Redis
pub/sub delivers to those subscribed at the time, so after each (re)subscription a replica checks
everything once (`News` None), in case it missed news; the periodic checks stay as the fallback
while Redis is down (within `revocation_check_seconds`). News is acted on one check at a time, and
what arrives meanwhile is merged into the next check (`Due`): a flood of news, forged or a script
revoking many keys, costs the store a few checks, not one per message."""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import Callable, Collection, Coroutine
from dataclasses import dataclass, field
from typing import Any, Literal

from ..security.live_credentials import LiveCredentials, Unusable
from ..security.policy_updates import PolicyUpdates
from ..security.redis_client import fail_fast_client
from ..security.secret_refs import SecretResolver, SecretValue
from ..settings import GatewaySettings
from ..settings.cluster import ClusterSettings
from ..tasks import TaskSupervisor

log = logging.getLogger("ovos_realtime.cluster")

Kind = Literal["revoked", "policy"]
RETRY_S = (0.2, 0.5, 1.0, 2.0)  # pauses before reconnecting to Redis: the last one repeats
PUBLISH_TIMEOUT_S = 2.0
PING_S = 5.0  # a quiet subscription pings Redis this often; no answer by the next: reconnect
MAX_NAMED = 1000  # more keys named while a check runs: the next check looks at every key held


@dataclass(frozen=True, slots=True)
class News:
    kind: Kind
    credentials: tuple[str, ...] = ()  # revoked: the key ids to check

    def encode(self) -> str:
        return json.dumps({"kind": self.kind, "credentials": list(self.credentials)})

    @classmethod
    def decode(cls, text: str | bytes) -> News | None:
        """The news in a message; None (logged) for what is not news of ours."""
        try:
            data = json.loads(text)
            kind = data["kind"]
            credentials = tuple(str(c) for c in data.get("credentials") or ())
        except (ValueError, KeyError, TypeError):
            log.warning("ignored a message on the news channel that is not news")
            return None
        if kind not in ("revoked", "policy"):
            log.warning("ignored news of an unknown kind %r", kind)
            return None
        return cls(kind, credentials)


def channel(settings: ClusterSettings) -> str:
    return f"{settings.key_prefix}news"


def _client(settings: ClusterSettings, password: SecretValue | None, **options: Any) -> Any:
    assert settings.redis_url is not None
    return fail_fast_client(settings.redis_url, password, **options)


async def publish(settings: ClusterSettings, password: SecretValue | None, news: News) -> int:
    """Tell every replica listening; how many heard it. Raises (OSError, RedisError, TimeoutError)
    when Redis cannot be reached: the caller says the replicas learn it by their periodic check."""
    client = _client(
        settings, password, socket_timeout=PUBLISH_TIMEOUT_S, socket_connect_timeout=PUBLISH_TIMEOUT_S
    )
    try:
        return int(
            await asyncio.wait_for(client.publish(channel(settings), news.encode()), PUBLISH_TIMEOUT_S * 2)
        )
    finally:
        await client.aclose()


OnNews = Callable[["News | None"], Coroutine[Any, Any, None]]


@dataclass
class Due:
    """The news heard and not acted on yet, merged: check everything, the keys named, the policy."""

    everything: bool = False
    revoked: set[str] = field(default_factory=set)
    policy: bool = False

    def add(self, news: News | None) -> None:
        if news is None:
            self.everything = True
        elif news.kind == "policy":
            self.policy = True
        else:
            self.revoked.update(news.credentials)
        if len(self.revoked) > MAX_NAMED:  # one look at every key held costs less than naming them
            self.everything = True
        if self.everything:
            self.revoked.clear()

    def take(self) -> list[News | None]:
        """What to act on now, in as few checks as it merges into; empties the backlog."""
        due: list[News | None]
        if self.everything:
            due = [None]  # a check of everything covers the keys named and the policy
        else:
            due = [News("revoked", tuple(sorted(self.revoked)))] if self.revoked else []
            due += [News("policy")] if self.policy else []
        self.everything, self.revoked, self.policy = False, set(), False
        return due


class NewsListener:
    """Subscribes to the news channel and hands the news to `on_news` (None after each
    subscription: check everything), one call at a time, what arrived meanwhile merged (`Due`);
    reconnects after Redis restarts or goes away."""

    def __init__(self, settings: ClusterSettings, password: SecretValue | None, on_news: OnNews) -> None:
        self._settings = settings
        self._password = password
        self._on_news = on_news
        self._tasks = TaskSupervisor("news")
        self._failures = 0  # attempts failed since it last subscribed
        self.subscriptions = 0  # how many times it subscribed (for logs)
        self._due = Due()
        self._heard = asyncio.Event()

    def _hear(self, news: News | None) -> None:
        self._due.add(news)
        self._heard.set()

    async def _act(self) -> None:
        """Forever: act on what was heard since the last check, one check at a time."""
        while True:
            await self._heard.wait()
            self._heard.clear()
            for news in self._due.take():
                try:
                    await self._on_news(news)
                except Exception:  # on_news says what failed; the next news tries again
                    log.exception("news: acting on %s failed", news)

    async def run(self) -> None:
        self._tasks.spawn("act", self._act())
        try:
            while True:
                try:
                    await self._listen()
                except asyncio.CancelledError:
                    raise
                except Exception as exc:  # Redis went away (restart, network): subscribe again
                    if self._failures == 0:
                        log.warning(
                            "news: Redis unavailable (%s); the periodic checks stand in meanwhile", exc
                        )
                    pause = RETRY_S[min(self._failures, len(RETRY_S) - 1)]
                    self._failures += 1
                    await asyncio.sleep(pause)
        finally:
            await self._tasks.close()

    async def _listen(self) -> None:
        client = _client(self._settings, self._password, socket_connect_timeout=5, socket_keepalive=True)
        pubsub = client.pubsub()
        try:
            await pubsub.subscribe(channel(self._settings))
            pinged = False
            while True:
                message = await pubsub.get_message(timeout=PING_S)
                if message is None:  # quiet: is Redis still there? (a frozen one does not close)
                    if pinged:
                        raise ConnectionError(f"Redis did not answer PING within {PING_S:g} s")
                    await pubsub.ping()
                    pinged = True
                    continue
                pinged = False
                if message["type"] == "subscribe":
                    self.subscriptions += 1
                    self._failures = 0
                    again = " again: checking everything it may have missed" if self.subscriptions > 1 else ""
                    log.info("news: listening on %s%s", channel(self._settings), again)
                    self._hear(None)
                elif message["type"] == "message":
                    news = News.decode(message["data"])
                    if news is not None:
                        self._hear(news)
        finally:
            await pubsub.aclose()
            await client.aclose()


async def announce(settings: GatewaySettings, news: News) -> str | None:
    """For a command that changed the store: publish `news` when the settings name a cluster;
    one line for the operator saying how the replicas learn it (None: no cluster)."""
    cluster = settings.cluster
    if cluster.redis_url is None:
        return None
    resolver = SecretResolver(settings.vault)
    password = resolver.add("cluster.redis_password", cluster.redis_password)
    try:
        await resolver.load()
        heard = await publish(cluster, password, news)
    except Exception as exc:  # Redis down or unreachable, a secret unreadable: the poll stands in
        return (
            f"the replicas were not told at once ({type(exc).__name__}: {exc}); each finds it within "
            f"revocation_check_seconds ({settings.revocation_check_seconds:g} s)"
        )
    finally:
        resolver.close()
    return f"told {heard} replica(s) at once through Redis"


async def act_on(news: News | None, live: LiveCredentials, unusable: Unusable, policy: PolicyUpdates) -> None:
    """What a replica does with news: check the keys named (None: every key held) and end what
    holds one that is no longer usable; load the newest stored policy."""
    try:
        if news is None or news.kind == "revoked":
            among: Collection[str] | None = None if news is None else news.credentials
            await live.check(unusable, among)
        if news is None or news.kind == "policy":
            await policy.check()
    except Exception:  # the store is busy or gone: the periodic checks try again
        log.exception("news: could not check the store")
