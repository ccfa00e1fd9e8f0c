"""The signals behind the new metrics (issue 16), each on its own: turn latency read off a
session's events, event-loop lag, a call's outcome and an STT failure's kind. End to end,
test_prometheus.py checks them through a real Prometheus."""

from __future__ import annotations

import asyncio
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from ovos_realtime_gateway.engine.transcription import SttBackend, TranscriptionFailed, transcribe
from ovos_realtime_gateway.observability.loop_lag import watch_loop_lag
from ovos_realtime_gateway.observability.metrics import call_outcome
from ovos_realtime_gateway.observability.turn_latency import TurnLatency
from ovos_realtime_gateway.tasks import TaskSupervisor


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_a_spoken_turn_is_timed_from_its_commit_to_transcript_answer_and_audio() -> None:
    clock = Clock()
    sent: list[dict[str, Any]] = []
    seen: list[tuple[str, float]] = []
    watch = TurnLatency(sent.append, lambda stage, s: seen.append((stage, round(s, 3))), clock)
    script: list[tuple[float, dict[str, Any]]] = [
        (0.0, {"type": "input_audio_buffer.committed", "item_id": "item_1"}),
        (0.1, {"type": "response.created"}),
        (0.3, {"type": "conversation.item.input_audio_transcription.completed", "item_id": "item_1"}),
        (0.9, {"type": "response.output_audio_transcript.delta"}),
        (1.0, {"type": "response.output_audio_transcript.delta"}),
        (1.2, {"type": "response.output_audio.delta"}),
        (1.3, {"type": "response.output_audio.delta"}),
        (1.5, {"type": "response.done"}),
    ]
    for at, ev in script:
        clock.now = 100.0 + at
        watch(ev)
    assert sent == [ev for _, ev in script], "every event goes on, unchanged and in order"
    assert seen == [("transcript", 0.3), ("first_answer", 0.9), ("first_audio", 1.2)]


def test_a_typed_turn_is_timed_from_its_response() -> None:
    clock, seen = Clock(), []
    watch: TurnLatency[dict[str, Any]] = TurnLatency(
        lambda ev: None, lambda stage, s: seen.append((stage, round(s, 3))), clock
    )
    for at, kind in [(5.0, "response.created"), (5.4, "response.output_text.delta"), (5.6, "response.done")]:
        clock.now = 100.0 + at
        watch({"type": kind})
    assert seen == [("first_answer", 0.4)]


@pytest.mark.loop_may_block("the fault under test: the loop is blocked on purpose")
async def test_a_blocked_event_loop_shows_as_lag() -> None:
    """A deliberately blocking call on the loop (the fault the metric is for) is measured."""
    lags: list[float] = []
    blocked = asyncio.Event()

    def observe(lag: float) -> None:
        lags.append(lag)
        if lag >= 0.25:
            blocked.set()

    tasks = TaskSupervisor("lag-test")
    try:
        tasks.spawn("watch", watch_loop_lag(observe, interval_s=0.05))
        await asyncio.sleep(0)  # the watcher takes its first reading
        time.sleep(0.3)  # noqa: TID251, ASYNC251 - the fault under test: the loop is blocked
        await asyncio.wait_for(blocked.wait(), 30)
    finally:
        await tasks.close()
    assert max(lags) < 5


@pytest.mark.parametrize(
    ("reason", "outcome"),
    [("hangup", "completed"), ("session_closed", "completed"), ("connect_timeout", "failed")]
    + [("ring_timeout", "failed"), ("rejected", "rejected"), ("caller_cancelled", "abandoned")],
)
def test_a_call_ends_with_an_outcome_a_success_ratio_can_divide(reason: str, outcome: str) -> None:
    assert call_outcome(reason) == outcome


class Faulty:
    """A deliberately injected fault: an STT plugin that raises, or hangs until released."""

    loaded = True
    streams = False

    def __init__(self, fault: str) -> None:
        self.fault = fault
        self.release = threading.Event()

    def warm(self) -> None:
        return None

    def transcribe(self, pcm16k: bytes, lang: str) -> str:
        if self.fault == "raise":
            raise RuntimeError("injected fault")
        self.release.wait(30)
        return "late"

    def open_stream(self, lang: str) -> None:
        return None


@pytest.mark.parametrize(
    ("fault", "kind", "code"),
    [("raise", "error", "transcription_failed")] + [("hang", "timeout", "transcription_timeout")],
)
async def test_an_stt_failure_is_reported_as_error_or_timeout(fault: str, kind: str, code: str) -> None:
    told: list[str] = []
    plugin = Faulty(fault)
    executor = ThreadPoolExecutor(1)
    try:
        backend = SttBackend(plugin, executor, timeout_s=0.2, failed=told.append)
        with pytest.raises(TranscriptionFailed) as failed:
            await transcribe(backend, b"\0\0" * 1600, "en-US")
    finally:
        plugin.release.set()
        await asyncio.to_thread(executor.shutdown)  # joins the worker thread: off the loop
    assert failed.value.code == code and told == [kind]
