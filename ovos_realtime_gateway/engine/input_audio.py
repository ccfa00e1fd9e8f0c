"""Input audio: `input_audio_buffer.append/commit/clear`, server turn detection (speech started
and stopped, the idle timeout) and the transcription of each committed turn."""

from __future__ import annotations

import asyncio
import binascii
import logging
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from ..audio import PIPELINE
from ..observability.tracing import Span
from ..protocol import client_events as ce
from ..protocol import ids
from ..protocol.errors import ApiError, event_error
from ..protocol.server_events import event
from .conversation_events import item_added
from .frames import PcmFrame, SpeechStarted, SpeechStopped
from .live_transcript import LiveTranscript
from .responder import Turn, needs_user_text
from .transcription import SttBackend, TranscriptionFailed, transcribe
from .turns import SpeechStarted as Started
from .turns import TurnSignal
from .voice_input import HANDOFF_MS, VadUnavailable, VoiceInput

if TYPE_CHECKING:
    from .response import ResponseRun
    from .session import RealtimeSession

log = logging.getLogger("ovos_realtime.engine")
MAX_APPEND_BYTES = 15 * 1024 * 1024
HANDOFF_SAMPLES = PIPELINE.rate * HANDOFF_MS // 1000
"""Without server VAD nothing reads the 16 kHz copy before a commit (which flushes it): appends
are resampled in blocks of this many samples."""


async def append_event(s: RealtimeSession, ev: ce.InputAudioBufferAppend) -> None:
    try:
        audio = binascii.a2b_base64(ev.audio, strict_mode=True)  # b64decode(validate=True), less a copy
    except (binascii.Error, ValueError):
        raise event_error(
            "invalid_value", "Invalid 'audio': expected base64-encoded audio bytes.", param="audio"
        ) from None
    await append_decoded(s, audio)


async def append_decoded(s: RealtimeSession, audio: bytes) -> None:
    """An append event's audio, decoded from base64."""
    if len(audio) > MAX_APPEND_BYTES:
        raise event_error(
            "audio_too_large",
            f"Invalid 'audio': {len(audio)} bytes exceeds the maximum of "
            f"{MAX_APPEND_BYTES} bytes per append.",
            param="audio",
        )
    await append_audio(s, audio)


async def append_audio(s: RealtimeSession, audio: bytes) -> None:
    """Audio in the session's input format (an append event)."""
    if s.hooks.input_audio(audio):
        return
    _check_room(s, s.input.format.duration_ms(len(audio)))
    # the session's one 16 kHz copy, for VAD and STT: resampled once the VAD has a hand-off's worth
    wanted = s.voice.wanted_samples if s.voice is not None else HANDOFF_SAMPLES
    samples = s.input.append(audio, wanted)
    if samples.size:
        await _heard(s, samples)


async def append_pcm(s: RealtimeSession, frame: PcmFrame) -> None:
    """A call's caller audio, as PCM at its own rate: resampled for VAD/STT straight from the PCM
    (and encoded once to the session's input format, which items keep), never decoded back."""
    _check_room(s, frame.duration_ms)
    await _heard(s, s.input.append_pcm(frame.samples, frame.rate))


def _check_room(s: RealtimeSession, adding_ms: float) -> None:
    limit_ms = s.options.max_input_buffer_ms
    if s.input.duration_ms + adding_ms > limit_ms:
        raise event_error(
            "input_audio_buffer_full",
            f"The input audio buffer holds {s.input.duration_ms / 1000:.0f} s; it takes at most "
            f"{limit_ms / 1000:.0f} s. Commit or clear it; this audio was not added.",
        )


async def _heard(s: RealtimeSession, samples: npt.NDArray[np.int16]) -> None:
    """New 16 kHz samples: to the live transcript and server VAD."""
    if s._live is not None:
        s._live.feed(samples.astype("<i2", copy=False).tobytes())
    if s.voice is None:
        return
    try:
        signals = await s.voice.feed(samples)
    except VadUnavailable as exc:
        s.voice = None
        raise event_error(
            "vad_unavailable",
            f"Server VAD is unavailable ({exc}); set turn_detection to null and commit manually.",
            param="session.audio.input.turn_detection",
        ) from None
    for signal in signals:
        await on_turn_signal(s, signal)
    if s.voice is not None and not s.voice.turns.in_speech:
        s.input.drop_before(s.voice.keep_from_ms)


# -- turn detection ---------------------------------------------------------------------------


def configure_voice(s: RealtimeSession) -> None:
    """(Re)build server VAD after the session's input format or turn detection changed."""
    params = s.vad_params
    if params is None or s._vad is None:
        s.voice = None
        drop_live(s)
        return
    if s.voice is not None and s.voice.params == params and s.voice.format == s.input.format:
        return
    drop_live(s)
    s.input.release_held()  # the new VAD hears the audio from `total_ms` on, not audio held before it
    s.voice = VoiceInput(s.input_format, params, s._vad, s.input.total_ms)


async def on_turn_signal(s: RealtimeSession, signal: TurnSignal) -> None:
    assert s.voice is not None
    params = s.voice.params
    if isinstance(signal, Started):
        cancel_idle_timer(s)
        s.input.drop_before(signal.audio_start_ms)  # the turn's item starts at its prefix
        s._turn_item_id = ids.item_id()
        log.debug("session %s: speech started at %d ms", s.id, signal.audio_start_ms)
        turn = s.begin_turn(s._turn_item_id)
        s._vad_span = turn.child("vad", ovos_realtime__audio_start_ms=signal.audio_start_ms)
        start_live(s)
        s.emit(SpeechStarted(signal.audio_start_ms, s._turn_item_id))
        if s.kind == "realtime" and params.interrupt_response and s.active is not None:
            # barge-in: the response ends where its audio stopped, `turn_detected`
            await s.active.cancel("turn_detected")
        return
    item_id = s._turn_item_id or ids.item_id()
    s._turn_item_id = None
    log.debug("session %s: speech stopped at %d ms", s.id, signal.audio_end_ms)
    if s._vad_span is not None:  # the VAD's end of speech: the turn goes on to STT
        s._vad_span.set(ovos_realtime__audio_end_ms=signal.audio_end_ms)
        s._vad_span.end()
        s._vad_span = None
    s.emit(SpeechStopped(signal.audio_end_ms, item_id))
    live, s._live = s._live, None
    commit_audio(s, *s.input.take_until(signal.audio_end_ms), item_id, live)
    if s.kind == "realtime" and params.create_response:
        auto_response(s)


def auto_response(s: RealtimeSession) -> None:
    if s.closed:
        return
    if s.active is not None:
        s.queued.append(ce.ResponseCreate(type="response.create"))
        return
    s.start_response(ce.ResponseParams())


def cancel_idle_timer(s: RealtimeSession) -> None:
    if s._idle_timer is not None:
        s._idle_timer.cancel()
        s._idle_timer = None


def arm_idle_timer(s: RealtimeSession, run: ResponseRun) -> None:
    """`idle_timeout_ms`: counted from when the response's audio has finished playing."""
    params = s.vad_params
    if params is None or params.idle_timeout_ms is None or s.closed or s.voice is None:
        return
    if s.voice.turns.in_speech:
        return
    playout = run.audio_out.remaining_playout_s() if run.audio_out is not None else 0.0
    cancel_idle_timer(s)
    s._idle_timer = asyncio.get_running_loop().call_later(
        playout + params.idle_timeout_ms / 1000.0, _idle_timeout, s
    )


def _idle_timeout(s: RealtimeSession) -> None:
    s._idle_timer = None
    if s.closed or s.active is not None or (s.voice is not None and s.voice.turns.in_speech):
        return
    item_id = ids.item_id()
    s.emit(
        event(
            "input_audio_buffer.timeout_triggered",
            audio_start_ms=round(s.input.start_ms),
            audio_end_ms=round(s.input.total_ms),
            item_id=item_id,
        )
    )
    commit_audio(s, *s.input.take(), item_id)
    if s.kind == "realtime":
        auto_response(s)


# -- commit and clear -------------------------------------------------------------------------


async def commit_event(s: RealtimeSession, ev: ce.InputAudioBufferCommit) -> None:
    duration = s.input.duration_ms
    if duration < 100:
        raise event_error(
            "input_audio_buffer_commit_empty",
            "Error committing input audio buffer: buffer too small. Expected at least 100ms of audio, "
            f"but buffer only has {duration:.2f}ms of audio.",
        )
    item_id = s._turn_item_id or ids.item_id()
    live, s._live = s._live, None
    commit_audio(s, *s.input.take(), item_id, live)
    if s._turn_item_id is not None:  # a manual commit during speech splits the turn
        s._turn_item_id = ids.item_id()
        start_live(s)


async def clear_event(s: RealtimeSession, ev: ce.InputAudioBufferClear) -> None:
    s.input.clear()
    if s._live is not None:  # the turn goes on, from here
        start_live(s)
    s.emit(event("input_audio_buffer.cleared"))


def commit_audio(
    s: RealtimeSession, audio: bytes, pcm16k: bytes, item_id: str, live: LiveTranscript | None = None
) -> dict[str, Any]:
    """Turn committed input audio (and its 16 kHz copy) into a user item (also used by turn
    detection); `live` is the turn's transcription already under way, if any."""
    item = {
        "id": item_id,
        "object": "realtime.item",
        "type": "message",
        "status": "completed",
        "role": "user",
        "content": [{"type": "input_audio", "transcript": None}],
    }
    previous = s.conversation.insert(item, None)
    s.conversation.audio.put((item_id, 0), audio)
    s.emit(event("input_audio_buffer.committed", previous_item_id=previous, item_id=item_id))
    item_added(s, item, previous)
    s.persist_items()
    turn = s._turn or s.begin_turn(item_id)
    if s.kind != "realtime":  # nothing answers: the turn ends with its transcript
        s._turn = None
    if s._stt is not None and transcripts_needed(s):
        task = s.tasks.spawn(f"transcribe-{item_id}", _transcribe(s, item, audio, pcm16k, s._stt, live, turn))
        s._transcriptions[item_id] = task
        task.add_done_callback(lambda _: s._transcriptions.pop(item_id, None))
    else:
        if live is not None:
            live.abort()
        if s._turn is not turn:
            turn.end()
    return item


# -- transcription ----------------------------------------------------------------------------


def transcripts_needed(s: RealtimeSession) -> bool:
    """Committed audio is transcribed when the session asked for it or the responder answers
    from text (OVOS does); with nothing to answer, unrequested turns cost no STT."""
    return s.transcription_requested or needs_user_text(s.responder)


def start_live(s: RealtimeSession) -> None:
    """Stream the turn's audio so far to a streaming STT plugin, if the session has one."""
    drop_live(s)
    if s._stt is not None and s._stt.transcriber.streams and transcripts_needed(s):
        s._live = LiveTranscript(s._stt, s.view.input.language, s.input.peek_pcm(), tasks=s.tasks)


def drop_live(s: RealtimeSession) -> None:
    if s._live is not None:
        s._live.abort()
        s._live = None


async def _transcribe(
    s: RealtimeSession,
    item: dict[str, Any],
    audio: bytes,
    pcm16k: bytes,
    stt: SttBackend,
    live: LiveTranscript | None,
    turn: Span,
) -> None:
    item_id = item["id"]
    span = turn.child("stt", ovos_realtime__item_id=item_id, ovos_realtime__streamed=live is not None)
    try:
        if live is not None:
            text = await live.finish(pcm16k)
        else:
            text = await transcribe(stt, pcm16k, s.view.input.language)
    except TranscriptionFailed as exc:
        span.fail(exc.code)
        log.warning("session %s: transcription of %s failed: %s", s.id, item_id, exc)
        if s.transcription_requested and not s.closed:
            error = {"type": "transcription_error", "code": exc.code, "message": str(exc), "param": None}
            s.emit(
                event(
                    "conversation.item.input_audio_transcription.failed",
                    item_id=item_id,
                    content_index=0,
                    error=error,
                )
            )
        return
    finally:
        span.end()
        if s._turn is not turn and s.kind != "realtime":
            turn.end()
    log.debug("session %s: %s transcribed (%d characters)", s.id, item_id, len(text))
    item["content"][0]["transcript"] = text
    if s.transcription_requested and not s.closed:
        s.emit(
            event(
                "conversation.item.input_audio_transcription.delta",
                item_id=item_id,
                content_index=0,
                delta=text,
            )
        )
        seconds = round(s.input.format.duration_ms(len(audio)) / 1000, 3)
        s.emit(
            event(
                "conversation.item.input_audio_transcription.completed",
                item_id=item_id,
                content_index=0,
                transcript=text,
                usage={"type": "duration", "seconds": seconds},
            )
        )
    s.persist_items()


async def await_transcripts(s: RealtimeSession, turn: Turn) -> None:
    """Before answering: the transcripts of the turn's audio items (OVOS answers text)."""
    pending = [s._transcriptions[i["id"]] for i in turn.items if i.get("id") in s._transcriptions]
    if pending:
        timeout = (s._stt.timeout_s if s._stt is not None else 30.0) + 5
        await asyncio.wait([asyncio.shield(t) for t in pending], timeout=timeout)
    for public in turn.items:
        try:
            stored = s.conversation.get(public["id"])
        except ApiError:  # deleted meanwhile
            continue
        for part, source in zip(public.get("content") or [], stored.get("content") or [], strict=False):
            if "transcript" in source:
                part["transcript"] = source["transcript"]
