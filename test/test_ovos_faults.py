"""Faults on the OVOS side (issue 4): the messagebus going away and coming back, and a speech
plugin that cannot load. The gateway lives on, says why in /readyz, and fails only the responses
that need the missing part, with a clear `status_details.error`."""

from __future__ import annotations

import asyncio
import json
import time
from pathlib import Path

import pytest

from ovos_realtime_gateway.ovos.stack import OvosStack

from .gateway_process import GatewayProcess, create_key, http
from .test_ovos_answers import ask

pytestmark = pytest.mark.slow


def wait_for(check: object, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():  # type: ignore[operator]
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.2)


def messagebus_ok(gateway: GatewayProcess) -> bool:
    return bool(http("GET", f"{gateway.base_url}/readyz").json()["checks"]["messagebus"]["ok"])


def test_the_gateway_outlives_the_messagebus_and_reconnects(tmp_path: Path) -> None:
    bus = OvosStack(tmp_path / "ovos").start(services=("ovos-messagebus",))
    config = tmp_path / "gateway.json"
    config.write_text(json.dumps({"messagebus_url": bus.bus_url}))
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    key = create_key(data_dir, "home")
    try:
        with GatewayProcess(data_dir, "--config", str(config), log_name="faults") as gateway:
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


def test_a_tts_plugin_that_cannot_load_fails_audio_answers_only(tmp_path: Path) -> None:
    """A real fault, not a fake: the configured TTS plugin is not installed."""
    with OvosStack(tmp_path / "ovos") as stack:
        stack.wait_ready(180)
        config = tmp_path / "gateway.json"
        config.write_text(
            json.dumps({"messagebus_url": stack.bus_url, "tts_plugin": "ovos-tts-plugin-missing"})
        )
        data_dir = tmp_path / "data"
        data_dir.mkdir()
        key = create_key(data_dir, "home")
        with GatewayProcess(data_dir, "--config", str(config), log_name="notts") as gateway:
            wait_for(
                lambda: (
                    "failed" in str(http("GET", f"{gateway.base_url}/readyz").json()["checks"].get("speech"))
                )
            )
            ready = http("GET", f"{gateway.base_url}/readyz")
            assert ready.status == 503
            assert "not installed" in ready.json()["checks"]["speech"]["pending"]["ovos-tts-plugin-missing"]
            spoken, _ = asyncio.run(ask(gateway, key, "hello world", modality="audio"))
            assert spoken.status == "failed" and spoken.status_details.error.code == "tts_failed"
            assert "not installed" in spoken.status_details.error.message
            typed, _ = asyncio.run(ask(gateway, key, "hello world"))
            assert typed.status == "completed" and typed.output[0].content[0].text == "Hello world"
