"""Faults on the OVOS side (issue 4): the messagebus going away and coming back, and a speech
plugin that cannot load. The gateway lives on, says why in /readyz, and fails only the responses
that need the missing part, with a clear `status_details.error`."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from pathlib import Path
from typing import Any

import openai
import pytest

from ovos_realtime_gateway.ovos.stack import OvosStack

from .gateway_process import GatewayProcess, configured_gateway, http
from .realtime_helpers import say_and_ask
from .test_ovos_answers import ask

pytestmark = pytest.mark.slow


def wait_for(check: object, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():  # type: ignore[operator]  # check: object, called as a function
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.2)


def messagebus_ok(gateway: GatewayProcess) -> bool:
    return bool(http("GET", f"{gateway.base_url}/readyz").json()["checks"]["messagebus"]["ok"])


def test_the_gateway_outlives_the_messagebus_and_reconnects(tmp_path: Path) -> None:
    bus = OvosStack(tmp_path / "ovos").start(services=("ovos-messagebus",))
    gateway, key = configured_gateway(tmp_path, {"messagebus_url": bus.bus_url}, "home", "faults")
    try:
        with gateway:
            wait_for(lambda: messagebus_ok(gateway))
            bus.stop()
            wait_for(lambda: not messagebus_ok(gateway))
            ready = http("GET", f"{gateway.base_url}/readyz")
            assert ready.status == 503 and ready.json()["checks"]["messagebus"]["error"]
            response, _ = asyncio.run(ask(gateway, key, "what time is it"))
            assert response.status == "failed"
            assert response.status_details.error.code == "messagebus_unavailable"

            bus.start(services=("ovos-messagebus",))  # the same port: the device's bus restarted
            wait_for(lambda: messagebus_ok(gateway), timeout=40)
            assert gateway.proc is not None and gateway.proc.poll() is None
    finally:
        bus.stop()


def test_a_tts_plugin_that_cannot_load_fails_audio_answers_only(tmp_path: Path, ovos: OvosStack) -> None:
    """A real fault, not a fake: the configured TTS plugin is not installed."""
    stack = ovos  # the shared stack (conftest): these faults are the gateway's, not OVOS's
    settings = {"messagebus_url": stack.bus_url, "tts_plugin": "ovos-tts-plugin-missing"}
    gateway, key = configured_gateway(tmp_path, settings, "home", "notts")
    with gateway:
        wait_for(
            lambda: "failed" in str(http("GET", f"{gateway.base_url}/readyz").json()["checks"].get("speech"))
        )
        ready = http("GET", f"{gateway.base_url}/readyz")
        assert ready.status == 503
        assert "not installed" in ready.json()["checks"]["speech"]["pending"]["ovos-tts-plugin-missing"]
        spoken, _ = asyncio.run(ask(gateway, key, "hello world", modality="audio"))
        assert spoken.status == "failed" and spoken.status_details.error.code == "tts_failed"
        assert "not installed" in spoken.status_details.error.message
        typed, _ = asyncio.run(ask(gateway, key, "hello world"))
        assert typed.status == "completed" and typed.output[0].content[0].text == "Hello world"


def test_the_messagebus_killed_mid_turn_fails_that_turn_at_once(tmp_path: Path) -> None:
    """The messagebus dies while the skills work on an answer (killed as the response is created;
    they take ~0.5 s): the response ends `failed` with `messagebus_unavailable` right away, not
    after the response timeout, and the session lives on. (An answer OVOS already finished giving
    completes: `ovos.utterance.handled` came before the bus went.)"""
    stack = OvosStack(tmp_path / "ovos").start()
    try:
        stack.wait_ready(180)
        gateway, key = configured_gateway(tmp_path, {"messagebus_url": stack.bus_url}, "home", "midturn")
        with gateway:
            wait_for(lambda: messagebus_ok(gateway))
            failed, elapsed, alive = asyncio.run(_kill_bus_during_answer(gateway, key, stack))
            assert failed.status == "failed", failed.status
            assert failed.status_details.error.code == "messagebus_unavailable"
            assert elapsed < 10, "failed at once, not after response_timeout_seconds (30 s)"
            assert alive, "the session still answered a session.update afterwards"
    finally:
        stack.stop()


async def _kill_bus_during_answer(
    gateway: GatewayProcess, key: str, stack: OvosStack
) -> tuple[Any, float, bool]:
    client = openai.AsyncOpenAI(base_url=gateway.api_base, api_key=key, max_retries=0)
    async with client.realtime.connect(model="gpt-realtime") as conn:
        await conn.recv()
        await say_and_ask(conn, "what is the date")
        loop = asyncio.get_running_loop()
        killed_at = 0.0
        async for event in conn:
            if event.type == "response.created" and not killed_at:
                bus = stack.processes["ovos-messagebus"]
                os.killpg(bus.pid, signal.SIGKILL)  # killed, not stopped: no goodbye on the socket
                killed_at = loop.time()
            if event.type == "response.done":
                done = event.response
                break
        elapsed = loop.time() - killed_at
        await conn.session.update(session={"type": "realtime", "instructions": "still here"})
        alive = False
        async for event in conn:
            if event.type == "session.updated":
                alive = True
                break
    await client.close()
    return done, elapsed, alive


INJECTED = Path(__file__).parent / "opm_test_plugins"


@pytest.mark.parametrize(
    ("fault", "code", "says"),
    [("hang", "tts_timeout", "longer than"), ("raise", "tts_failed", "injected fault")],
)
def test_a_tts_plugin_that_hangs_or_raises_fails_that_answer_only(
    tmp_path: Path, ovos: OvosStack, fault: str, code: str, says: str
) -> None:
    """A deliberately injected fault (test/opm_test_plugins: an OPM TTS plugin that hangs or
    raises on demand): the spoken answer fails with a clear reason within the response timeout,
    and the session and the gateway go on answering."""
    stack = ovos  # the shared stack (conftest): these faults are the gateway's, not OVOS's
    settings = {
        "messagebus_url": stack.bus_url,
        "tts_plugin": "ovos-tts-plugin-injected-fault",
        "tts_config": {"fault": fault},
        "response_timeout_seconds": 4,
    }
    env = {"PYTHONPATH": os.pathsep.join(filter(None, [str(INJECTED), os.environ.get("PYTHONPATH")]))}
    gateway, key = configured_gateway(tmp_path, settings, "home", f"tts-{fault}", env=env)
    with gateway:
        wait_for(lambda: http("GET", f"{gateway.base_url}/readyz").status == 200, timeout=60)
        started = time.monotonic()
        spoken, _ = asyncio.run(ask(gateway, key, "hello world", modality="audio"))
        assert time.monotonic() - started < 20
        assert spoken.status == "failed" and spoken.status_details.error.code == code, spoken
        assert says in spoken.status_details.error.message
        metrics = http("GET", f"{gateway.base_url}/metrics").body.decode()
        kind = "timeout" if fault == "hang" else "error"
        labels = f'component="tts",kind="{kind}",plugin="ovos-tts-plugin-injected-fault"'
        assert f"ovos_realtime_speech_failures_total{{{labels}}} 1.0" in metrics
        typed, _ = asyncio.run(ask(gateway, key, "hello world"))
        assert typed.status == "completed" and typed.output[0].content[0].text == "Hello world"


def test_a_whisper_model_that_does_not_exist_is_named_at_start(tmp_path: Path, ovos: OvosStack) -> None:
    """A typo in `stt_config.model`: the start output says which setting and why, /readyz names
    it, and the gateway still answers typed questions (text does not need the STT)."""
    stack = ovos  # the shared stack (conftest): these faults are the gateway's, not OVOS's
    settings = {"messagebus_url": stack.bus_url, "stt_config": {"model": str(tmp_path / "no-such-model")}}
    gateway, key = configured_gateway(tmp_path, settings, "home", "badmodel")
    with gateway:
        wait_for(lambda: "speech is NOT ready" in gateway.stdout_path.read_text())
        printed = gateway.stdout_path.read_text()
        assert (
            "error: stt_plugin 'ovos-realtime-stt-whisper' could not be loaded: stt_config.model:" in printed
        )
        ready = http("GET", f"{gateway.base_url}/readyz")
        assert ready.status == 503
        assert "stt_config.model" in ready.json()["checks"]["speech"]["pending"]["ovos-realtime-stt-whisper"]
        typed, _ = asyncio.run(ask(gateway, key, "hello world"))
        assert typed.status == "completed" and typed.output[0].content[0].text == "Hello world"


CRASHING = Path(__file__).parent / "opm_crashing_plugin"


def test_a_plugin_that_crashes_natively_is_refused_and_the_gateway_starts(tmp_path: Path) -> None:
    """A deliberately injected fault (test/opm_crashing_plugin: an OPM VAD plugin whose import
    aborts its process, as onnxruntime's did under QEMU): the gateway starts anyway, names the
    plugin and the setting, /readyz says why it is not ready, and what does not need VAD works."""
    env = {
        "PYTHONPATH": os.pathsep.join(filter(None, [str(CRASHING), os.environ.get("PYTHONPATH")])),
        "XDG_CACHE_HOME": str(tmp_path / "cache"),  # no remembered probe
    }
    settings = {"vad_plugin": "ovos-vad-plugin-injected-crash"}
    gateway, key = configured_gateway(tmp_path, settings, "home", "crashing", env=env)
    with gateway:
        wait_for(lambda: "create a key" in gateway.stdout_path.read_text())
        printed = gateway.stdout_path.read_text()
        assert (
            "error: vad_plugin 'ovos-vad-plugin-injected-crash' could not be loaded: "
            "loading it crashed a probe process (SIGABRT)" in printed
        ), printed
        ready = http("GET", f"{gateway.base_url}/readyz")
        assert ready.status == 503
        assert "ovos-vad-plugin-injected-crash" in ready.json()["checks"]["vad"]["error"]
        assert "SIGABRT" in ready.json()["checks"]["vad"]["error"]
        assert http("GET", f"{gateway.api_base}/models", key=key).status == 200
        opened = asyncio.run(_opens_a_session(gateway, key))
        assert opened == "session.created"
        assert gateway.proc is not None and gateway.proc.poll() is None, "the gateway is still up"


async def _opens_a_session(gateway: GatewayProcess, key: str) -> str:
    client = openai.AsyncOpenAI(base_url=gateway.api_base, api_key=key, max_retries=0)
    async with client.realtime.connect(model="gpt-realtime") as conn:
        first = await conn.recv()
    await client.close()
    return first.type
