"""A call's audio is PCM end to end (issue 14): the caller's decoded RTP reaches the engine as PCM
and the engine's output reaches the playout as PCM, whatever the session's wire format; the
session-format bytes exist only for the items (and the WebSocket edge). The engine here is the
real one with a responder that speaks a tone; the media path is the calls' own `CallAudio` and
`Playout`, and the RTP payloads are real G.711 from the SIP endpoint's codec."""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest

from ovos_realtime_gateway.audio import AudioFormat, g711
from ovos_realtime_gateway.audio.resample import StreamResampler
from ovos_realtime_gateway.audio.transcode import encode
from ovos_realtime_gateway.calls.call_audio import CallAudio
from ovos_realtime_gateway.calls.playout import Playout
from ovos_realtime_gateway.calls.sip.rtp import PACKET_SAMPLES, decode_payload
from ovos_realtime_gateway.engine.frames import Frame, OutputAudio
from ovos_realtime_gateway.engine.responder import AudioDelta, TextDelta, Turn
from ovos_realtime_gateway.engine.session import RealtimeSession, SessionOptions
from ovos_realtime_gateway.protocol import client_events as ce
from ovos_realtime_gateway.protocol.client_events import CLIENT_EVENT_ADAPTER
from ovos_realtime_gateway.protocol.session_config import SessionDefaults, default_realtime_session

PCM24K = {"type": "audio/pcm", "rate": 24000}
SIP_RATE = 8000


def sine(freq: float, rate: int, seconds: float) -> npt.NDArray[np.int16]:
    t = np.arange(int(rate * seconds)) / rate
    return (np.sin(2 * np.pi * freq * t) * 0.4 * 32767).astype(np.int16)


def resampled(samples: npt.NDArray[np.int16], source: int, target: int) -> npt.NDArray[np.int16]:
    """`samples` resampled once, tail included."""
    resampler = StreamResampler(source, target)
    return np.concatenate([resampler.feed(samples), resampler.flush()])


class ToneResponder:
    """Answers with a word and 22.05 kHz audio (a TTS voice's native rate), in pieces."""

    def __init__(self) -> None:
        self.audio = sine(440, 22050, 0.6)

    async def respond(self, turn: Turn) -> AsyncIterator[TextDelta | AudioDelta]:
        yield TextDelta("Hello.")
        for start in range(0, len(self.audio), 2205):
            yield AudioDelta(self.audio[start : start + 2205].tobytes(), 22050)


def call_session(fmt: dict[str, Any], emit: Any) -> RealtimeSession:
    config = default_realtime_session(SessionDefaults())
    config["audio"]["input"]["format"] = fmt
    config["audio"]["input"]["turn_detection"] = None
    config["audio"]["output"]["format"] = fmt
    return RealtimeSession(
        session_id="sess_call",
        project_id="proj_test",
        config=config,
        expires_at=0,
        responder=ToneResponder(),
        emit=emit,
        options=SessionOptions(audio_lead_ms=60_000, is_call=True),
    )


@pytest.mark.parametrize("fmt", [PCM24K, {"type": "audio/pcmu"}], ids=["pcm16-24k", "pcmu"])
async def test_the_playout_gets_the_engines_pcm_never_the_wire_bytes(fmt: dict[str, Any]) -> None:
    playout = Playout(SIP_RATE, PACKET_SAMPLES, lambda what, response_id: None)
    audio = CallAudio(playout)
    frames: list[OutputAudio] = []

    def emit(frame: Frame) -> None:  # what `Call._emit` does with the engine's frames
        if isinstance(frame, OutputAudio):
            frames.append(frame)
            audio.play(dataclasses.replace(frame, data=b""))  # a call needs no session-format bytes
        elif isinstance(frame, dict) and frame["type"] == "response.done":
            audio.response_done(frame["response"]["id"])

    session = call_session(fmt, emit)
    run = session.start_response(ce.ResponseParams())
    await run.wait()
    assert run.status == "completed" and frames
    wire = AudioFormat.from_session(fmt)
    for frame in frames:  # PCM at the session's output rate; its bytes are that PCM, encoded once
        assert frame.pcm.rate == wire.rate and frame.data == encode(wire, frame.pcm.samples)
    pcm = np.concatenate([f.pcm.samples for f in frames])
    expected = resampled(pcm, wire.rate, SIP_RATE)  # the one resample, to the RTP clock
    packets = -(-len(expected) // PACKET_SAMPLES)
    played = np.concatenate([playout.next_frame().copy() for _ in range(packets)])
    assert np.array_equal(played[: len(expected)], expected)
    assert not played[len(expected) :].any(), "then silence"
    stored = session.conversation.audio.get((frames[0].item_id, 0))
    assert stored is not None and bytes(stored) == b"".join(f.data for f in frames)


@pytest.mark.parametrize("fmt", [PCM24K, {"type": "audio/pcmu"}], ids=["pcm16-24k", "pcmu"])
async def test_the_callers_rtp_reaches_the_engine_as_pcm(fmt: dict[str, Any]) -> None:
    events: list[Frame] = []
    session = call_session(fmt, events.append)
    audio = CallAudio(Playout(SIP_RATE, PACKET_SAMPLES, lambda what, response_id: None))
    caller = decode_payload(0, g711.ulaw_encode(sine(300, SIP_RATE, 1.0)))  # PCMU, as RTP carries it
    for start in range(0, len(caller), PACKET_SAMPLES):  # one RTP packet at a time, as `RtpEndpoint`
        frame = audio.caller(caller[start : start + PACKET_SAMPLES], SIP_RATE)
        if frame is not None:
            await session.append_pcm(frame)
    # VAD and STT read a 16 kHz copy resampled from the caller's PCM itself, not from wire bytes
    # (via the session's 24 kHz format it would be resampled twice and differ)
    to_16k = StreamResampler(SIP_RATE, 16000)
    assert session.input.peek_pcm() == to_16k.feed(caller).tobytes()
    await session.handle(CLIENT_EVENT_ADAPTER.validate_python({"type": "input_audio_buffer.commit"}))
    committed = [e for e in events if isinstance(e, dict) and e["type"] == "input_audio_buffer.committed"]
    stored = session.conversation.audio.get((committed[0]["item_id"], 0))
    wire = AudioFormat.from_session(fmt)
    # the item keeps it in the session's format, encoded once from the PCM
    assert stored is not None and bytes(stored) == encode(wire, resampled(caller, SIP_RATE, wire.rate))
    await session.close()
