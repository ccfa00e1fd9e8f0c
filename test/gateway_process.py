"""Run the real `ovos-realtime` command in a subprocess, as a user would, for tests and benches."""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

LISTENING = re.compile(r"listening on (https?://\S+)")


def rss_kib(pid: int) -> int:
    """Resident memory of process `pid` (VmRSS, KiB)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError(f"no VmRSS for {pid}")


def cli(*args: str, data_dir: Path | None = None, check: bool = True) -> subprocess.CompletedProcess[str]:
    """Run `python -m ovos_realtime_gateway ARGS` and return the finished process."""
    command = [sys.executable, "-m", "ovos_realtime_gateway", *args]
    if data_dir is not None:
        command += ["--data-dir", str(data_dir)]
    done = subprocess.run(command, capture_output=True, text=True, timeout=60)
    if check and done.returncode != 0:
        raise AssertionError(f"{command} failed ({done.returncode}): {done.stderr}")
    return done


def create_key(data_dir: Path | None, project: str, config: Path | None = None) -> str:
    """A new project key, as `keys create` prints it on its last stdout line (`config`: a settings
    file, e.g. one naming a PostgreSQL store)."""
    options = ("--config", str(config)) if config is not None else ()
    done = cli("keys", "create", "--project", project, *options, data_dir=data_dir)
    return done.stdout.strip().splitlines()[-1]


class GatewayProcess:
    """`ovos-realtime serve --port 0` on loopback; knows its URL once it said it is listening."""

    def __init__(
        self, data_dir: Path, *extra: str, log_name: str = "gateway", env: dict[str, str] | None = None
    ) -> None:
        self.data_dir = data_dir
        self.extra = extra
        self.env = env or {}
        self.stdout_path = data_dir.parent / f"{log_name}.stdout"
        self.stderr_path = data_dir.parent / f"{log_name}.stderr"
        self.proc: subprocess.Popen[bytes] | None = None
        self.base_url = ""

    def start(self, timeout: float = 30.0) -> GatewayProcess:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        command = [
            sys.executable,
            "-m",
            "ovos_realtime_gateway",
            "serve",
            "--host",
            "127.0.0.1",
            "--port",
            "0",
        ]
        command += ["--data-dir", str(self.data_dir), *self.extra]
        with open(self.stdout_path, "wb") as out, open(self.stderr_path, "wb") as err:
            self.proc = subprocess.Popen(
                command, stdout=out, stderr=err, env={**os.environ, "PYTHONUNBUFFERED": "1", **self.env}
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            match = LISTENING.search(self.stdout_path.read_text())
            if match:
                self.base_url = match.group(1)
                return self
            if self.proc.poll() is not None:
                break
            time.sleep(0.05)
        self.stop()
        raise AssertionError(f"gateway did not start: {self.stderr_path.read_text()}")

    @property
    def api_base(self) -> str:
        return f"{self.base_url}/v1"

    def logs(self) -> str:
        return self.stderr_path.read_text()

    def stop(self) -> int | None:
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
        code = self.proc.returncode
        self.proc = None
        return code

    def __enter__(self) -> GatewayProcess:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    async def __aenter__(self) -> GatewayProcess:
        """`async with`: started and stopped on a worker thread, off the test's event loop."""
        return await asyncio.to_thread(self.start)

    async def __aexit__(self, *exc: object) -> None:
        await asyncio.to_thread(self.stop)


@dataclass
class HttpResult:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


def http(
    method: str,
    url: str,
    *,
    body: bytes | None = None,
    json_body: Any = None,
    headers: dict[str, str] | None = None,
    key: str | None = None,
    timeout: float = 30.0,
) -> HttpResult:
    """A raw HTTP request (stdlib), for what an SDK would not send: no key, bad bodies, …"""
    hdrs = dict(headers or {})
    if json_body is not None:
        body = json.dumps(json_body).encode()
        hdrs.setdefault("Content-Type", "application/json")
    if key is not None:
        hdrs["Authorization"] = f"Bearer {key}"
    request = urllib.request.Request(url, data=body, method=method, headers=hdrs)
    try:
        with urllib.request.urlopen(request, timeout=timeout) as resp:
            return HttpResult(resp.status, {k.lower(): v for k, v in resp.headers.items()}, resp.read())
    except urllib.error.HTTPError as err:
        return HttpResult(err.code, {k.lower(): v for k, v in err.headers.items()}, err.read())


def configured_gateway(
    root: Path,
    settings: dict[str, Any],
    project: str,
    log_name: str,
    *extra: str,
    env: dict[str, str] | None = None,
) -> tuple[GatewayProcess, str]:
    """A gateway (not started yet) reading `settings` from a config file, and a key of `project`."""
    root.mkdir(parents=True, exist_ok=True)
    config = root / f"{log_name}.json"
    config.write_text(json.dumps(settings))
    data_dir = root / f"{log_name}-data"
    data_dir.mkdir()
    key = create_key(data_dir, project)
    return GatewayProcess(data_dir, "--config", str(config), *extra, log_name=log_name, env=env), key
