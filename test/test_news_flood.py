"""A flood on the cluster's news channel (probe of issue 18): a real redis-server and a replica's
real `NewsListener`. Anyone who can publish there (a forged message, or a script revoking many keys)
makes a replica check the store; 400 news while one check runs must cost a few checks, not 400,
and none of the keys named may be left unchecked. What is not news (not JSON, an unknown kind) is
ignored, and the listener goes on."""

from __future__ import annotations

import asyncio

from redis.asyncio import Redis

from ovos_realtime_gateway.cluster.news import MAX_NAMED, Due, News, NewsListener, channel
from ovos_realtime_gateway.settings.cluster import ClusterSettings
from ovos_realtime_gateway.tasks import TaskSupervisor

from .redis_server import RedisServer
from .waiting import wait_until_async

FLOOD = 400
MOST_CHECKS = 10  # the catch-up, the check in flight, then the rest merged (a few batches at most)


async def test_a_flood_of_news_is_merged_into_a_few_checks(redis_server: RedisServer) -> None:
    settings = ClusterSettings(redis_url=redis_server.url, key_prefix="test-flood:", hop_secret="s")
    checks: list[News | None] = []
    in_flight, go_on = asyncio.Event(), asyncio.Event()

    async def check_store(news: News | None) -> None:  # stands for act_on: counts the checks
        checks.append(news)
        if news is not None and not in_flight.is_set():
            in_flight.set()
            await go_on.wait()  # a slow store: the flood arrives while this check runs

    listener = NewsListener(settings, None, check_store)
    tasks = TaskSupervisor("test-news-flood")
    tasks.spawn("listener", listener.run())
    publisher = Redis.from_url(redis_server.url)
    try:
        await wait_until_async(lambda: None in checks, "the catch-up check after subscribing", 30)
        await publisher.publish(channel(settings), News("revoked", ("key_0",)).encode())
        await asyncio.wait_for(in_flight.wait(), 30)
        for number in range(1, FLOOD):
            await publisher.publish(channel(settings), News("revoked", (f"key_{number}",)).encode())
        await publisher.publish(channel(settings), b"not json")
        await publisher.publish(channel(settings), b'{"kind": "gossip"}')
        await publisher.publish(channel(settings), News("policy").encode())
        go_on.set()

        def named() -> set[str]:
            return {key for news in checks if news is not None for key in news.credentials}

        everything = {f"key_{number}" for number in range(FLOOD)}
        await wait_until_async(
            lambda: named() >= everything and any(n is not None and n.kind == "policy" for n in checks),
            "every key named and the policy checked",
            30,
        )
        assert len(checks) <= MOST_CHECKS, f"{len(checks)} store checks for {FLOOD} news"
    finally:
        go_on.set()
        await publisher.aclose()
        await tasks.close()


def test_what_is_due_merges_into_the_fewest_checks() -> None:
    due = Due()
    assert due.take() == []
    due.add(News("revoked", ("key_b", "key_a")))
    due.add(News("revoked", ("key_a",)))
    due.add(News("policy"))
    assert due.take() == [News("revoked", ("key_a", "key_b")), News("policy")]
    assert due.take() == [], "taken once"
    due.add(News("revoked", tuple(f"key_{n}" for n in range(MAX_NAMED + 1))))
    assert due.take() == [None], "past MAX_NAMED keys, one look at every key held"
    due.add(None)
    due.add(News("policy"))
    due.add(News("revoked", ("key_a",)))
    assert due.take() == [None], "a check of everything covers the rest"
