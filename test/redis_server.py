"""A real `redis-server` (Debian's) on a loopback port, for the event bridge's tests: started,
frozen (SIGSTOP), thawed, killed and restarted on the same port, as a faulty Redis would be."""

from __future__ import annotations

import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

import redis


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class RedisServer:
    """`redis-server` without persistence (`--save "" --appendonly no`) in `work_dir`."""

    def __init__(self, work_dir: Path) -> None:
        self.work_dir = work_dir
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None
        # One pool behind every client() the tests ask for: a client dropped without close() then
        # leaves no socket of its own for the garbage collector to find open (a ResourceWarning,
        # an error here, in whichever later test the collection happens to run)
        self._pool: redis.ConnectionPool | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self, timeout: float = 30.0) -> RedisServer:
        binary = shutil.which("redis-server")
        assert binary, "redis-server is not installed (scripts/install-system-deps test)"
        self.work_dir.mkdir(parents=True, exist_ok=True)
        command = [
            binary,
            "--port",
            str(self.port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
        ]
        command += ["--dir", str(self.work_dir)]
        log = open(self.work_dir / "redis.log", "ab")  # noqa: SIM115 (the process writes it)
        self.proc = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
        log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"redis-server exited: {(self.work_dir / 'redis.log').read_text()}")
            try:
                if self.client().ping():
                    return self
            except redis.ConnectionError:
                time.sleep(0.05)
        raise AssertionError(f"redis-server did not answer PING within {timeout}s")

    def client(self) -> redis.Redis:
        if self._pool is None:
            self._pool = redis.ConnectionPool.from_url(self.url, socket_timeout=5, decode_responses=True)
        return redis.Redis(connection_pool=self._pool)

    def freeze(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGSTOP)

    def thaw(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGCONT)

    def kill(self) -> None:
        if self._pool is not None:  # its connections are to the process going away
            self._pool.disconnect()
        if self.proc is not None:
            self.proc.kill()
            self.proc.wait(10)
            self.proc = None

    def __enter__(self) -> RedisServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.kill()
