"""A session's memory is bounded (issue 12, defect 8): committed audio no longer stays in memory
for the whole conversation — the newest `session_audio_memory_mb` of it is kept — and the input
buffer takes at most `max_input_buffer_seconds` before a commit."""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator, Iterator

import numpy as np
import pytest

from ovos_realtime_gateway.engine.item_audio import ItemAudio

from .gateway_process import GatewayProcess, configured_gateway, rss_kib
from .realtime_helpers import EventReader, realtime_socket

RATE = 24_000
TURN_S = 60
TURNS = 12  # 12 minutes of speech: 34.6 MB of PCM16 at 24 kHz
HALF = 6
MANUAL = {
    "type": "realtime",
    "audio": {"input": {"turn_detection": None, "transcription": None}},
}


@pytest.fixture(scope="module")
def bounded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[GatewayProcess, str]]:
    settings = {"session_audio_memory_mb": 1, "max_input_buffer_seconds": 70}
    gateway, key = configured_gateway(tmp_path_factory.mktemp("memory"), settings, "talker", "memory")
    with gateway:
        yield gateway, key


@pytest.fixture
async def conversation(bounded: tuple[GatewayProcess, str]) -> AsyncIterator[EventReader]:
    gateway, key = bounded
    # a retrieved minute of audio is a 4 MB event
    async with realtime_socket(gateway.api_base, key, max_msg_size=64 * 1024 * 1024) as reader:
        await reader.until("session.created")
        await reader.send({"type": "session.update", "session": MANUAL})
        await reader.until("session.updated")
        yield reader


def _speech(seconds: float, seed: int) -> list[str]:
    """`seconds` of noise-like PCM16 in 4 s appends (base64), different for every turn."""
    samples = np.random.default_rng(seed).integers(-8000, 8000, int(seconds * RATE), dtype=np.int16)
    step = 4 * RATE
    return [base64.b64encode(samples[i : i + step].tobytes()).decode() for i in range(0, len(samples), step)]


async def _turn(reader: EventReader, seconds: float, seed: int) -> str:
    for chunk in _speech(seconds, seed):
        await reader.send({"type": "input_audio_buffer.append", "audio": chunk})
    await reader.send({"type": "input_audio_buffer.commit"})
    return str((await reader.until("input_audio_buffer.committed", timeout=60))["item_id"])


async def _retrieve(reader: EventReader, item_id: str) -> dict[str, object]:
    await reader.send({"type": "conversation.item.retrieve", "item_id": item_id})
    item: dict[str, object] = (await reader.until("conversation.item.retrieved", timeout=60))["item"]
    return item


async def test_a_long_conversation_keeps_only_its_newest_audio_in_memory(
    bounded: tuple[GatewayProcess, str], conversation: EventReader
) -> None:
    gateway, _ = bounded
    assert gateway.proc is not None
    first = await _turn(conversation, TURN_S, seed=0)  # warm-up: transcoder, buffers, allocator
    before = rss_kib(gateway.proc.pid)
    items = [first] + [await _turn(conversation, TURN_S, seed=n) for n in range(1, HALF)]
    halfway = rss_kib(gateway.proc.pid)
    items += [await _turn(conversation, TURN_S, seed=n) for n in range(HALF, TURNS)]
    # (each turn waited for its commit's event: its audio is stored)
    after = rss_kib(gateway.proc.pid)
    turn_mb = TURN_S * RATE * 2 / 1e6
    # kept whole, the conversation's audio made the gateway grow by what was appended: 2.9 MB a
    # turn, 31.7 MB in all. Early growth is the allocator settling (more of it on a loaded
    # machine); the second half's slope is what keeping the audio would show
    grown_mb, slope_mb = (after - before) / 1024, (after - halfway) / 1024 / (TURNS - HALF)
    assert slope_mb < turn_mb / 3, f"the gateway grew {slope_mb:.2f} MB a turn of {turn_mb:.2f} MB"
    assert grown_mb < (TURNS - 1) * turn_mb * 0.6, f"the gateway grew {grown_mb:.1f} MB in all"

    newest = await _retrieve(conversation, items[-1])
    audio = base64.b64decode(newest["content"][0]["audio"])  # type: ignore[index]  # a stored item: dict[str, object]
    assert len(audio) == TURN_S * RATE * 2  # the latest turn is there, whole
    oldest = await _retrieve(conversation, items[0])
    assert "audio" not in oldest["content"][0]  # type: ignore[index]  # a stored item: dict[str, object]

    # usage still counts every turn's audio, dropped or not: a text response sees them all
    await conversation.send({"type": "response.create", "response": {"output_modalities": ["text"]}})
    done = await conversation.until("response.done", timeout=60)
    details = done["response"]["usage"]["input_token_details"]
    assert details["audio_tokens"] >= TURNS * TURN_S * 10 * 0.9, details  # ~10 audio tokens a second


async def test_the_input_buffer_refuses_audio_past_its_limit_and_keeps_what_it_has(
    conversation: EventReader,
) -> None:
    for chunk in _speech(68, seed=99):
        await conversation.send({"type": "input_audio_buffer.append", "audio": chunk})
    await conversation.send({"type": "input_audio_buffer.append", "audio": _speech(4, seed=100)[0]})
    error = await conversation.until("error", timeout=60)
    assert error["error"]["code"] == "input_audio_buffer_full", error
    assert "70 s" in error["error"]["message"]
    await conversation.send({"type": "input_audio_buffer.commit"})
    item_id = (await conversation.until("input_audio_buffer.committed", timeout=60))["item_id"]
    kept = await _retrieve(conversation, item_id)
    audio = base64.b64decode(kept["content"][0]["audio"])  # type: ignore[index]  # a stored item: dict[str, object]
    assert len(audio) == 68 * RATE * 2


def test_an_answer_being_played_stays_whole_and_truncatable_while_older_audio_goes() -> None:
    kept = ItemAudio(budget_bytes=1000)
    kept.put(("item_user", 0), b"u" * 600)
    for _ in range(8):  # an answer streaming in: it never evicts itself
        kept.extend(("item_answer", 0), b"a" * 100)
    assert kept.get(("item_user", 0)) is None and kept.length(("item_user", 0)) == 600
    assert kept.get(("item_answer", 0)) == b"a" * 800 and kept.kept_bytes == 800
    kept.extend(("item_answer", 0), b"a" * 400)  # bigger than the budget alone: still whole
    assert kept.length(("item_answer", 0)) == 1200 and kept.get(("item_answer", 0)) == b"a" * 1200
    kept.truncate(("item_answer", 0), 300)  # barge-in: the answer ends where it was heard
    assert kept.get(("item_answer", 0)) == b"a" * 300 and kept.kept_bytes == 300
    kept.truncate(("item_user", 0), 100)  # a dropped part still truncates (its length)
    assert kept.length(("item_user", 0)) == 100
    kept.delete_item("item_answer")
    assert kept.length(("item_answer", 0)) == 0 and kept.kept_bytes == 0
