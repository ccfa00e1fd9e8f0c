"""The gateway's connection to the OVOS messagebus.

ovos-bus-client runs the websocket on its own thread; a supervisor thread keeps it connected
(reconnecting with backoff when the bus goes away and comes back). Messages that carry a
realtime session's id in `context.session` are handed to that session's asyncio queue.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from ovos_bus_client import Message, MessageBusClient

log = logging.getLogger("ovos_realtime.bus")
BUS_LOST = "ovos-realtime.messagebus.lost"
"""Put on every session's queue when the connection drops: turns in flight fail at once."""


@dataclass(frozen=True)
class BusAddress:
    host: str
    port: int
    route: str
    ssl: bool

    @classmethod
    def parse(cls, url: str) -> BusAddress:
        """`ws://127.0.0.1:8181/core` (the OVOS default) or `wss://…`."""
        parts = urlsplit(url)
        if parts.scheme not in ("ws", "wss") or not parts.hostname:
            raise ValueError(f"messagebus_url must look like ws://host:8181/core, not {url!r}")
        return cls(parts.hostname, parts.port or 8181, parts.path or "/core", parts.scheme == "wss")

    def __str__(self) -> str:
        return f"{'wss' if self.ssl else 'ws'}://{self.host}:{self.port}{self.route}"


class _Client(MessageBusClient):  # type: ignore[misc]  # OVOS's base class is untyped
    def on_error(self, *args: Any) -> None:
        """Log only: the supervisor reconnects (the base class sleeps and recurses instead)."""
        log.info("messagebus connection error: %s", args[-1] if args else "?")


class BusBridge:
    def __init__(self, address: BusAddress, retry_max_s: float = 10.0) -> None:
        self.address = address
        self._retry_max_s = retry_max_s
        self._client: _Client | None = None
        self._stopped = threading.Event()
        self._connected = threading.Event()
        self._routes: dict[str, tuple[asyncio.AbstractEventLoop, asyncio.Queue[Message]]] = {}
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._supervise, name="ovos-realtime-bus", daemon=True)
        self.last_error: str | None = None
        self._skills_ready = threading.Event()

    # -- lifecycle --------------------------------------------------------------------------

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stopped.set()
        client = self._client
        if client is not None:
            try:
                client.close()
            except Exception:  # closing a dead socket
                log.debug("closing the messagebus client failed", exc_info=True)
        self._thread.join(timeout=5)

    @property
    def connected(self) -> bool:
        return self._connected.is_set()

    @property
    def skills_ready(self) -> bool:
        """ovos-core answered `mycroft.skills.is_ready` with true on this connection."""
        return self._connected.is_set() and self._skills_ready.is_set()

    def _watch_skills(self, client: _Client) -> None:
        while self._connected.is_set() and not self._stopped.is_set() and self._client is client:
            try:
                answer = client.wait_for_response(Message("mycroft.skills.is_ready"), timeout=2)
            except Exception:  # the connection went away mid-question
                answer = None
            if answer is not None and answer.data.get("status"):
                self._skills_ready.set()
                return
            self._stopped.wait(1)

    def wait_connected(self, timeout: float) -> bool:
        return self._connected.wait(timeout)

    def _supervise(self) -> None:
        delay = 0.5
        while not self._stopped.is_set():
            client = _Client(
                host=self.address.host, port=self.address.port, route=self.address.route, ssl=self.address.ssl
            )
            client.on("open", self._on_open)
            client.on("message", self._on_raw)
            self._client = client
            try:
                client.run_forever()  # returns when the connection ends
            except Exception as exc:  # the socket library raising: try again
                self.last_error = str(exc)
            if self._connected.is_set():
                log.warning("lost the OVOS messagebus at %s; reconnecting", self.address)
                self._connected.clear()
                self._tell_everyone(Message(BUS_LOST))
                delay = 0.5
            else:
                self.last_error = (
                    self.last_error or f"cannot connect to the OVOS messagebus at {self.address}"
                )
            self._connected.clear()
            self._skills_ready.clear()
            self._stopped.wait(delay)
            delay = min(delay * 2, self._retry_max_s)

    def _on_open(self, *_: Any) -> None:
        log.info("connected to the OVOS messagebus at %s", self.address)
        self.last_error = None
        self._connected.set()
        client = self._client
        if client is not None:
            threading.Thread(
                target=self._watch_skills, args=(client,), name="ovos-realtime-skills", daemon=True
            ).start()

    # -- messages ---------------------------------------------------------------------------

    def emit(self, message: Message) -> None:
        """Send a message (blocking for at most a moment: call it off the event loop)."""
        client = self._client
        if client is None or not self.connected:
            raise ConnectionError(f"the OVOS messagebus at {self.address} is not connected")
        client.emit(message)

    def subscribe(self, session_id: str) -> asyncio.Queue[Message]:
        """Messages of this realtime session (by `context.session.session_id`), until unsubscribed."""
        queue: asyncio.Queue[Message] = asyncio.Queue()
        with self._lock:
            self._routes[session_id] = (asyncio.get_running_loop(), queue)
        return queue

    def unsubscribe(self, session_id: str) -> None:
        with self._lock:
            self._routes.pop(session_id, None)

    def _tell_everyone(self, message: Message) -> None:
        """Hand a message to every subscribed session (e.g. that the bus went away mid-turn)."""
        with self._lock:
            routes = list(self._routes.values())
        for loop, queue in routes:
            loop.call_soon_threadsafe(queue.put_nowait, message)

    def _on_raw(self, raw: str) -> None:
        if not self._routes:
            return
        try:
            message = Message.deserialize(raw)
        except Exception:  # not ours to judge: skip what cannot be read
            return
        session = message.context.get("session") if isinstance(message.context, dict) else None
        session_id = session.get("session_id") if isinstance(session, dict) else None
        if not isinstance(session_id, str):
            return
        with self._lock:
            route = self._routes.get(session_id)
        if route is not None:
            loop, queue = route
            loop.call_soon_threadsafe(queue.put_nowait, message)
