"""Headless Chromium (Debian's `chromium`) driven over the DevTools protocol, for the talk page.

Its microphone is a WAV file (`--use-file-for-fake-audio-capture`) and media permission is granted
without a prompt: the page runs exactly as a person's browser would, minus the person.
"""

from __future__ import annotations

import asyncio
import base64
import itertools
import json
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

import aiohttp
import pytest


class Chromium:
    def __init__(self, profile: Path, microphone_wav: Path) -> None:
        binary = shutil.which("chromium")
        if binary is None:
            pytest.fail("chromium is missing: scripts/install-system-deps installs it")
        self.profile = profile
        self.command = [
            binary,
            "--headless=new",
            "--no-sandbox",  # tests may run as root in containers
            "--disable-gpu",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--use-fake-ui-for-media-stream",
            "--use-fake-device-for-media-stream",
            f"--use-file-for-fake-audio-capture={microphone_wav}%noloop",
            "--allow-loopback-in-peer-connection",
            "--autoplay-policy=no-user-gesture-required",
            "--remote-debugging-port=0",
            f"--user-data-dir={profile}",
            "about:blank",
        ]
        self.process: subprocess.Popen[bytes] | None = None
        self._ids = itertools.count(1)
        self._http: aiohttp.ClientSession | None = None
        self._ws: aiohttp.ClientWebSocketResponse | None = None
        self._log: Any = None

    def launch(self) -> Chromium:
        self._log = (self.profile.parent / "chromium.log").open("wb")
        self.process = subprocess.Popen(self.command, stdout=self._log, stderr=subprocess.STDOUT)
        return self

    async def connect(self, timeout: float = 30.0) -> Chromium:
        assert self.process is not None, "launch() first"
        log = self._log
        port_file = self.profile / "DevToolsActivePort"
        deadline = time.monotonic() + timeout
        while not port_file.exists() or len(port_file.read_text().splitlines()) < 2:
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"chromium did not start; see {log.name}")
            await asyncio.sleep(0.1)
        port = port_file.read_text().splitlines()[0]
        self._http = aiohttp.ClientSession()
        async with self._http.get(f"http://127.0.0.1:{port}/json/list") as listing:
            page = next(t for t in await listing.json() if t["type"] == "page")
        self._ws = await self._http.ws_connect(page["webSocketDebuggerUrl"], max_msg_size=64 * 1024 * 1024)
        return self

    async def send(self, method: str, **params: Any) -> dict[str, Any]:
        assert self._ws is not None
        call_id = next(self._ids)
        await self._ws.send_str(json.dumps({"id": call_id, "method": method, "params": params}))
        while True:
            message = json.loads((await self._ws.receive(timeout=60)).data)
            if message.get("id") == call_id:
                if "error" in message:
                    raise AssertionError(f"{method}: {message['error']}")
                result: dict[str, Any] = message["result"]
                return result

    async def open(self, url: str) -> None:
        await self.send("Page.enable")
        await self.send("Page.navigate", url=url)
        await self.wait_for("document.readyState === 'complete' && document.getElementById('talk') !== null")

    async def evaluate(self, expression: str) -> Any:
        result = await self.send(
            "Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=True
        )
        if "exceptionDetails" in result:
            raise AssertionError(f"{expression}: {result['exceptionDetails']}")
        return result["result"].get("value")

    async def wait_for(self, condition: str, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while not await self.evaluate(f"Boolean({condition})"):
            if time.monotonic() > deadline:
                status = await self.evaluate("document.getElementById('status')?.textContent")
                events = await self.evaluate("document.getElementById('events')?.textContent")
                raise AssertionError(
                    f"not true within {timeout}s: {condition}; status {status!r}; events {events!r}"
                )
            await asyncio.sleep(0.2)

    async def screenshot(self) -> bytes:
        """The page as PNG."""
        shot = await self.send("Page.captureScreenshot", format="png")
        return base64.b64decode(shot["data"])

    async def close(self) -> None:
        if self._ws is not None:
            await self._ws.close()
        if self._http is not None:
            await self._http.close()
        if self.process is not None:
            self.process.terminate()
            try:
                await asyncio.to_thread(self.process.wait, 10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                await asyncio.to_thread(self.process.wait)
        if self._log is not None:
            self._log.close()
