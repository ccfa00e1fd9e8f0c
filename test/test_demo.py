"""The main job: `ovos-realtime demo` brings up a whole assistant (messagebus, ovos-core with its
skills, the gateway with offline VAD/STT/TTS) in one command; /readyz says 200 only when all of
it is ready; an SDK client is answered by a skill; Ctrl-C stops every part."""

from __future__ import annotations

import asyncio
import json
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import openai
import pytest

from .browser import Chromium
from .gateway_process import LISTENING, create_key, http
from .speech import user_speech_wav
from .test_ovos_answers import HOURS
from .test_talk_page import ARTIFACTS

pytestmark = pytest.mark.slow


def test_demo_runs_the_whole_assistant_and_stops_cleanly(tmp_path: Path) -> None:
    data_dir = tmp_path / "demo"
    out, err = tmp_path / "demo.stdout", tmp_path / "demo.stderr"
    command = [sys.executable, "-m", "ovos_realtime_gateway", "demo", "--host", "127.0.0.1", "--port", "0"]
    with open(out, "wb") as stdout, open(err, "wb") as stderr:
        demo = subprocess.Popen([*command, "--data-dir", str(data_dir)], stdout=stdout, stderr=stderr)
    try:
        deadline = time.monotonic() + 240
        while not (match := LISTENING.search(out.read_text())):
            assert demo.poll() is None, f"demo exited: {err.read_text()[-3000:]}"
            assert time.monotonic() < deadline, f"demo never listened: {out.read_text()}"
            time.sleep(0.5)
        base_url = match.group(1)
        while "keys create" not in (printed := out.read_text()):  # after the speech models load
            assert demo.poll() is None, f"demo exited: {err.read_text()[-3000:]}"
            assert time.monotonic() < deadline, f"never said how to make a key: {printed}"
            time.sleep(0.5)
        assert "waiting for ovos-core to load its skills" in printed, "it says what it waits for"
        assert re.search(r"OVOS skills are ready \(\d+ s\)", printed), printed
        assert "loading speech: ovos-realtime-stt-whisper, ovos-realtime-tts-piper" in printed, printed
        assert "speech is ready" in printed, "it says what is loading, then that it is ready"
        assert "answers are for time zone" in printed, "it says which time zone it answers for"
        assert f"{base_url}/talk" in printed, "it tells the user where to talk to it"
        while (ready := http("GET", f"{base_url}/readyz")).status != 200:
            assert time.monotonic() < deadline, f"never ready: {ready.body!r}"
            time.sleep(0.5)
        checks = ready.json()["checks"]
        assert checks["messagebus"]["ok"] and checks["skills"]["ok"] and checks["speech"]["ok"]

        key = create_key(data_dir, "demo")
        answer = asyncio.run(_ask(f"{base_url}/v1", key, "hello world"))
        assert answer == "Hello world"
        asyncio.run(_talk_in_a_browser(base_url, tmp_path))
        bus_port = json.loads((data_dir / "ovos" / "config" / "mycroft" / "mycroft.conf").read_text())[
            "websocket"
        ]["port"]
    finally:
        demo.send_signal(signal.SIGINT)
        code = demo.wait(60)
    assert code == 0, err.read_text()[-3000:]
    assert re.search(r"stopped", out.read_text())
    with socket.socket() as probe:
        assert probe.connect_ex(("127.0.0.1", bus_port)) != 0, "the messagebus stopped with the demo"


async def _ask(api_base: str, key: str, text: str) -> str:
    client = openai.AsyncOpenAI(base_url=api_base, api_key=key, max_retries=0)
    async with client.realtime.connect(model="gpt-realtime") as conn:
        await conn.recv()
        await conn.session.update(session={"type": "realtime", "output_modalities": ["text"]})
        await conn.recv()
        item: object = {"type": "message", "role": "user", "content": [{"type": "input_text", "text": text}]}
        await conn.conversation.item.create(item=item)  # type: ignore[arg-type]  # a plain dict where the SDK wants its item union
        await conn.response.create()
        async for event in conn:
            if event.type == "response.done":
                await client.close()
                return str(event.response.output[0].content[0].text)  # type: ignore[union-attr,index]  # output and content: the SDK's unions of item kinds and parts
    raise AssertionError("no response.done")


async def _talk_in_a_browser(base_url: str, tmp_path: Path) -> None:
    """The demo's talk page in headless Chromium: a spoken question, the skill's spoken answer,
    its transcript and the turn latency on the page (screenshot: test-artifacts/demo-talk-page.png)."""
    wav = user_speech_wav(tmp_path / "question.wav", "what time is it", tail_ms=6000)
    browser = await Chromium(tmp_path / "profile", wav).launch().connect()
    try:
        await browser.open(f"{base_url}/talk")
        await browser.evaluate("document.getElementById('talk').click()")
        await browser.wait_for("document.querySelector('#transcript .assistant') !== null", timeout=60)
        await browser.wait_for("document.getElementById('latency').textContent.includes('ms')", timeout=30)
        await browser.wait_for(
            "document.getElementById('status').textContent.startsWith('connected')", timeout=30
        )
        said = await browser.evaluate("document.querySelector('#transcript .user').textContent")
        answer = await browser.evaluate("document.querySelector('#transcript .assistant').textContent")
        assert "time" in said.lower(), said
        assert re.search(rf"\b({HOURS})\b", answer.lower()), answer
        ARTIFACTS.mkdir(exist_ok=True)
        (ARTIFACTS / "demo-talk-page.png").write_bytes(await browser.screenshot())  # noqa: ASYNC240
    finally:
        await browser.close()
