"""An in-process session engine for tests: a scripted responder stands in for OVOS's skills
(the real one is tested end to end with the messagebus); every emitted event is parsed by the
installed SDK's own model for its type."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

from ovos_realtime_gateway.engine.frames import Frame, wire_event
from ovos_realtime_gateway.engine.responder import AudioDelta, ResponderError, TextDelta, Turn
from ovos_realtime_gateway.engine.session import RealtimeSession, SessionHooks, SessionOptions
from ovos_realtime_gateway.engine.transcription import SttBackend
from ovos_realtime_gateway.engine.voice_input import VadBackend
from ovos_realtime_gateway.protocol.client_events import CLIENT_EVENT_ADAPTER
from ovos_realtime_gateway.protocol.session_config import SessionDefaults, default_realtime_session

from .loop_guards import close_at_test_end
from .server_event_check import check_server_event


class ScriptedResponder:
    """Answers every turn with the given text (and, for audio responses, 24 kHz PCM)."""

    def __init__(self, text: str = "It is ten past four.", audio_ms: int = 600, delay: float = 0.0) -> None:
        self.text = text
        self.audio_ms = audio_ms
        self.delay = delay
        self.turns: list[Turn] = []

    async def respond(self, turn: Turn) -> AsyncIterator[TextDelta | AudioDelta]:
        self.turns.append(turn)
        for word in self.text.split(" "):
            await asyncio.sleep(self.delay)
            yield TextDelta(word + " ")
            if turn.output_modalities == ["audio"]:
                samples = int(24 * self.audio_ms / len(self.text.split(" ")))
                yield AudioDelta(b"\x10\x00" * samples, 24000)


class FailingResponder:
    async def respond(self, turn: Turn) -> AsyncIterator[TextDelta]:
        yield TextDelta("half an ")
        raise ResponderError("the skill crashed", code="skill_error")


class Rates(SessionHooks):
    def rate_limits(self) -> list[dict[str, Any]]:
        return [{"name": "requests", "limit": 10, "remaining": 9, "reset_seconds": 6.0}]


class Harness:
    def __init__(
        self,
        responder: Any,
        modalities: str = "text",
        vad: VadBackend | None = None,
        turn_detection: dict[str, Any] | None | str = "default",
        stt: SttBackend | None = None,
        **options: Any,
    ) -> None:
        self.events: list[dict[str, Any]] = []
        config = default_realtime_session(SessionDefaults())
        config["output_modalities"] = [modalities]
        if turn_detection != "default":
            config["audio"]["input"]["turn_detection"] = turn_detection
        self.session = RealtimeSession(
            session_id="sess_test",
            project_id="proj_test",
            config=config,
            expires_at=0,
            responder=responder,
            emit=self._emit,
            options=SessionOptions(audio_lead_ms=10_000, **options),
            hooks=Rates(),
            vad=vad,
            stt=stt,
        )
        self.session.start()
        close_at_test_end(self.session.close)

    def _emit(self, frame: Frame) -> None:
        event = wire_event(frame)  # as the transport's edge encodes it
        check_server_event(event)
        self.events.append(event)

    async def send(self, event: dict[str, Any]) -> None:
        await self.session.handle(CLIENT_EVENT_ADAPTER.validate_python(event))

    async def settle(self) -> None:
        for run in [self.session.active, *self.session.out_of_band]:
            if run is not None:
                await run.wait()
        await asyncio.sleep(0)

    def types(self) -> list[str]:
        return [e["type"] for e in self.events]

    def of(self, type_: str) -> list[dict[str, Any]]:
        return [e for e in self.events if e["type"] == type_]

    def clear(self) -> None:
        self.events.clear()


def user_text(text: str, **extra: Any) -> dict[str, Any]:
    item = {"type": "message", "role": "user", "content": [{"type": "input_text", "text": text}]}
    return {"type": "conversation.item.create", "item": item, **extra}
