"""`ovos-realtime healthcheck` (the images' HEALTHCHECK) probes the gateway its settings describe,
http or https, and a gateway told SIGTERM (what `docker stop` sends) with no drain closes its sessions
and exits 0."""

from __future__ import annotations

import asyncio
import os
import signal
import sqlite3
from pathlib import Path

import aiohttp
import pytest

from ovos_realtime_gateway.ovos.stack import free_port

from .gateway_process import GatewayProcess, cli, create_key
from .realtime_helpers import realtime_socket


def test_healthy_over_http_by_flags_and_by_the_running_process(tmp_path: Path) -> None:
    port = free_port()
    with GatewayProcess(tmp_path / "data", "--port", str(port)) as gateway:
        assert gateway.proc is not None
        assert cli("healthcheck", "--port", str(port)).returncode == 0
        assert cli("healthcheck", "--like-pid", str(gateway.proc.pid)).returncode == 0
    down = cli("healthcheck", "--port", str(port), check=False)
    assert down.returncode == 1
    assert f"http://127.0.0.1:{port}/healthz" in down.stderr, down.stderr


def test_a_tls_gateway_is_healthy_when_probed_like_its_process(tmp_path: Path) -> None:
    port = free_port()
    with GatewayProcess(tmp_path / "data", "--port", str(port), "--tls-self-signed") as gateway:
        assert gateway.proc is not None and gateway.base_url.startswith("https://")
        assert cli("healthcheck", "--like-pid", str(gateway.proc.pid)).returncode == 0
        # the old image's plain-http probe is what made TLS containers unhealthy
        plain = cli("healthcheck", "--port", str(port), check=False)
        assert plain.returncode == 1 and "unhealthy" in plain.stderr, plain.stderr


def test_like_pid_of_another_program_says_so() -> None:
    done = cli("healthcheck", "--like-pid", str(os.getpid()), check=False)
    assert done.returncode == 1
    assert "is not `ovos-realtime serve` or `demo`" in done.stderr, done.stderr


@pytest.mark.slow
async def test_sigterm_tells_sessions_flushes_the_store_and_exits_0(tmp_path: Path) -> None:
    """With `drain_seconds: 0` open sessions are ended at once (test_drain.py: the drain)."""
    data = tmp_path / "data"
    data.mkdir()
    key = await asyncio.to_thread(create_key, data, "stop")
    config = tmp_path / "no-drain.json"
    config.write_text('{"drain_seconds": 0}')
    gateway = await asyncio.to_thread(GatewayProcess(data, "--config", str(config)).start)
    assert gateway.proc is not None
    proc = gateway.proc
    try:
        async with realtime_socket(gateway.api_base, key) as conn:
            session_id = (await conn.until("session.created"))["session"]["id"]
            proc.send_signal(signal.SIGTERM)
            told = await conn.until("error", timeout=30)
            assert told["error"]["code"] == "server_shutting_down", told
            closed = await asyncio.wait_for(conn.ws.receive(), 30)
            assert closed.type in (aiohttp.WSMsgType.CLOSE, aiohttp.WSMsgType.CLOSED), closed
        code = await asyncio.get_running_loop().run_in_executor(None, proc.wait, 30)
    finally:
        await asyncio.to_thread(gateway.stop)
    assert code == 0, gateway.logs()[-2000:]
    with sqlite3.connect(next(data.glob("*.db"))) as db:  # the store is whole and says the session ended
        assert db.execute("pragma integrity_check").fetchone() == ("ok",)
        status = db.execute("select status from sessions where id = ?", [session_id]).fetchone()
    assert status is not None and status[0] != "active", status
