"""The Redis sink: each event is one entry (its flat fields) of a capped Redis stream."""

from __future__ import annotations

from collections.abc import Sequence

from .event import GatewayEvent


class RedisStreamSink:
    """XADD to `stream`, trimmed to about `max_length` entries (`MAXLEN ~`), one pipeline per batch.

    Errors are not retried here (the exporter backs off and counts the drops); a connection that
    broke is replaced by the client's pool on the next send, so a restarted Redis is picked up."""

    name = "redis"

    def __init__(self, url: str, stream: str, max_length: int, timeout_s: float = 2.0) -> None:
        from redis.asyncio import Redis
        from redis.asyncio.retry import Retry
        from redis.backoff import NoBackoff

        self.stream = stream
        self.max_length = max_length
        self.client = Redis.from_url(
            url,
            socket_timeout=timeout_s,
            socket_connect_timeout=timeout_s,
            retry=Retry(NoBackoff(), 0),
            health_check_interval=0,
        )

    async def send(self, batch: Sequence[GatewayEvent]) -> None:
        async with self.client.pipeline(transaction=False) as pipe:
            for event in batch:
                pipe.xadd(self.stream, event.fields(), maxlen=self.max_length, approximate=True)  # type: ignore[arg-type]  # redis-py's stubs want a narrower mapping type than our str→str fields
            await pipe.execute()

    async def close(self) -> None:
        await self.client.aclose()
