"""Inside OVOS: the real `ovos_PHAL` service loads the gateway from its `PHAL.ovos-realtime-gateway`
section of mycroft.conf, the gateway takes the device's messagebus and STT/TTS from the same file,
answers a realtime client from the skills, and stops when PHAL stops."""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from ovos_realtime_gateway.ovos.stack import OvosStack, free_port

from .gateway_process import create_key, http
from .test_demo import _ask

pytestmark = pytest.mark.slow


@pytest.fixture
def device(tmp_path: Path) -> Iterator[tuple[OvosStack, int, Path]]:
    port, data_dir = free_port(), tmp_path / "realtime"
    extra = {
        "stt": {"module": "ovos-stt-plugin-pocketsphinx", "ovos-stt-plugin-pocketsphinx": {}},
        "tts": {"module": "ovos-realtime-tts-espeak-ng", "ovos-realtime-tts-espeak-ng": {"voice": "m3"}},
        "PHAL": {
            "ovos-realtime-gateway": {"host": "127.0.0.1", "port": port, "data_dir": str(data_dir)},
        },
    }
    with OvosStack(tmp_path / "ovos", extra_config=extra) as stack:
        stack.wait_ready(180)
        yield stack, port, data_dir


def test_phal_runs_the_gateway_from_mycroft_conf(device: tuple[OvosStack, int, Path]) -> None:
    stack, port, data_dir = device
    stack.start(services=("ovos_PHAL",))
    base_url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while True:
        try:
            if http("GET", f"{base_url}/readyz").status == 200:
                break
        except OSError:
            pass
        stack._check_alive()
        assert time.monotonic() < deadline, (stack.root / "logs" / "ovos_PHAL.log").read_text()[-3000:]
        time.sleep(0.5)
    ready = http("GET", f"{base_url}/readyz").json()["checks"]
    assert ready["messagebus"]["url"] == stack.bus_url, "the device's bus, from mycroft.conf"
    assert set(ready["speech"]) == {"ok"}
    key = create_key(data_dir, "device")
    assert asyncio.run(_ask(f"{base_url}/v1", key, "hello world")) == "Hello world"

    phal = stack.processes.pop("ovos_PHAL")
    phal.send_signal(2)
    assert phal.wait(30) is not None
    with socket.socket() as probe:
        assert probe.connect_ex(("127.0.0.1", port)) != 0, "the gateway stopped with PHAL"
