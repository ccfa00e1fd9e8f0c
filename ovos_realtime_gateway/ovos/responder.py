"""Answers from OVOS skills: a user turn becomes `recognizer_loop:utterance` in the realtime
session's own OVOS `Session`; that session's `speak` messages become the response.

The utterance's `source` is this gateway and its `destination` the skills, so the answers come
back addressed to us and ovos-audio does not also speak them on the device. The gateway plays
the part of ovos-audio for the session: it acknowledges each `speak` with
`recognizer_loop:audio_output_start` / `_end`, so skills that wait for their speech go on.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import OrderedDict
from collections.abc import AsyncIterator, Callable, Generator
from concurrent.futures import Executor
from typing import Any

from ovos_bus_client import Message
from ovos_bus_client.session import Session

from ..engine.responder import AudioDelta, ResponderError, ResponseChunk, TextDelta, Turn
from ..observability.tracing import NO_SPAN, Span, current_span
from ..speech.tts import Synthesize
from .bus import BUS_LOST, BusBridge
from .location import with_timezone

log = logging.getLogger("ovos_realtime.ovos")
SOURCE = "ovos-realtime"


def last_user_text(items: list[dict[str, Any]]) -> str | None:
    """The text of the conversation's last user message (typed, or transcribed)."""
    for item in reversed(items):
        if item.get("type") != "message" or item.get("role") != "user":
            continue
        parts = []
        for part in item.get("content") or []:
            text = part.get("text") if part.get("type") == "input_text" else part.get("transcript")
            if isinstance(text, str) and text.strip():
                parts.append(text.strip())
        return " ".join(parts) or None
    return None


def split_sentences(text: str) -> list[str]:
    from quebra_frases import sentence_tokenize

    return [s for s in (part.strip() for part in sentence_tokenize(text)) if s] or [text]


class SkillsResponder:
    def __init__(
        self,
        bridge: BusBridge,
        synthesize: Synthesize | None,
        executor: Executor,
        default_lang: str = "en-US",
        timeout_s: float = 30.0,
        on_first_speak: Callable[[float], None] | None = None,
        persona: str | None = None,
        timezone: str | None = None,
        city: str | None = None,
        converse_skills: tuple[str, ...] | None = None,
    ) -> None:
        self.converse_skills = converse_skills
        self.place = (timezone, city) if timezone else None  # overrides OVOS's configured location
        self._location: dict[str, Any] | None = None
        self.on_first_speak = on_first_speak
        self.persona = persona  # the default persona; a session's `prompt.id` names its own
        self.bridge = bridge
        self.synthesize = synthesize
        self.executor = executor
        self.default_lang = default_lang
        self.timeout_s = timeout_s
        self._sessions: OrderedDict[str, dict[str, Any]] = (
            OrderedDict()
        )  # OVOS session state per realtime session

    def _session(self, turn: Turn, lang: str) -> dict[str, Any]:
        known = self._sessions.get(turn.session_id)
        if known is not None:
            self._sessions.move_to_end(turn.session_id)
            return dict(known, lang=lang, active_skills=self._conversing(known.get("active_skills") or []))
        return Session(  # type: ignore[no-any-return]  # ovos_bus_client's Session is untyped
            turn.session_id, lang=lang, location_prefs=self.location()
        ).serialize()

    def _conversing(self, active: list[Any]) -> list[Any]:
        """The active skills OVOS should ask to converse. ovos-core pings each one and waits up
        to 0.5 s for all to answer, and (ovos-workshop 7) only conversational skills answer: one
        plain skill left active costs every later turn the whole 0.5 s."""
        if self.converse_skills is None:
            return active
        return [entry for entry in active if entry and entry[0] in self.converse_skills]

    def location(self) -> dict[str, Any] | None:
        """The `location` new OVOS sessions carry: OVOS's own, with the configured time zone."""
        if self.place is None:
            return None
        if self._location is None:
            from ovos_config import Configuration

            timezone, city = self.place
            self._location = with_timezone(Configuration().get("location"), timezone, city)
        return self._location

    def _remember(self, session_id: str, message: Message) -> None:
        session = message.context.get("session")
        if isinstance(session, dict) and session.get("session_id") == session_id:
            self._sessions[session_id] = session
            self._sessions.move_to_end(session_id)
            while len(self._sessions) > 1000:
                self._sessions.popitem(last=False)

    async def _emit(self, message: Message) -> None:
        try:
            await asyncio.get_running_loop().run_in_executor(self.executor, self.bridge.emit, message)
        except ConnectionError as exc:
            raise ResponderError(str(exc), code="messagebus_unavailable") from None

    def _ask(self, turn: Turn, text: str, lang: str, context: dict[str, Any]) -> Message:
        """The utterance for the skills' intent pipeline — or, for a session with a persona, the
        question for ovos-persona directly (per session: ovos-persona's own summoning is global)."""
        persona = turn.prompt_id or self.persona
        if persona:
            return Message("persona:query", {"utterance": text, "lang": lang, "persona": persona}, context)
        return Message("recognizer_loop:utterance", {"utterances": [text], "lang": lang}, context)

    async def respond(self, turn: Turn) -> AsyncIterator[ResponseChunk]:
        if not self.bridge.connected:
            raise ResponderError(
                f"The OVOS messagebus at {self.bridge.address} is not reachable; "
                "the gateway reconnects when it is back.",
                code="messagebus_unavailable",
            )
        text = last_user_text(turn.items)
        if text is None:
            raise ResponderError(
                "The conversation has no user text to answer (typed, or transcribed from audio).",
                code="no_user_input",
            )
        lang = turn.language or self.default_lang
        context = {"session": self._session(turn, lang), "source": SOURCE, "destination": ["skills"]}
        turn_span = current_span.get()
        span = turn_span.child("ovos.skills", ovos_realtime__persona=turn.prompt_id or self.persona)
        if span.traceparent is not None:  # the skills' own logs and spans can join the trace
            context["traceparent"] = span.traceparent
        queue = self.bridge.subscribe(turn.session_id)
        spoke = False
        tts: Span | None = None
        try:
            loop = asyncio.get_running_loop()
            asked_at = loop.time()
            await self._emit(self._ask(turn, text, lang, context))
            deadline = loop.time() + self.timeout_s
            while True:
                try:
                    message = await asyncio.wait_for(queue.get(), max(0.0, deadline - loop.time()))
                except asyncio.TimeoutError:
                    raise ResponderError(
                        f"OVOS did not finish answering within {self.timeout_s:.0f} s.", code="ovos_timeout"
                    ) from None
                if message.msg_type == BUS_LOST:
                    raise ResponderError(
                        f"The OVOS messagebus at {self.bridge.address} went away during this turn.",
                        code="messagebus_unavailable",
                    )
                self._remember(turn.session_id, message)
                if message.msg_type == "speak":
                    utterance = str(message.data.get("utterance") or "").strip()
                    if not utterance:
                        continue
                    if not spoke:
                        span.event("first_speak")
                        if self.on_first_speak is not None:
                            self.on_first_speak(loop.time() - asked_at)
                        if turn.output_modalities == ["audio"] and self.synthesize is not None:
                            tts = turn_span.child("tts.first_audio")
                    async for chunk in self._speak(message, utterance, turn, lang, spoke):
                        if tts is not None and isinstance(chunk, AudioDelta):
                            tts.end()
                            tts = None
                        yield chunk
                    spoke = True
                    deadline = loop.time() + self.timeout_s
                elif message.msg_type == "ovos.utterance.handled":
                    break
                elif message.msg_type == "complete_intent_failure" and not spoke:
                    raise ResponderError(
                        "No OVOS skill or fallback could answer that.", code="no_skill_matched"
                    )
        except ResponderError as exc:
            span.fail(exc.code)
            raise
        finally:
            self.bridge.unsubscribe(turn.session_id)
            for open_span in (tts or NO_SPAN, span):
                open_span.end()

    async def _speak(
        self, message: Message, utterance: str, turn: Turn, lang: str, continued: bool
    ) -> AsyncIterator[ResponseChunk]:
        """One `speak`: its text, its audio sentence by sentence, framed by audio_output_start/end."""
        await self._emit(message.reply("recognizer_loop:audio_output_start", {}))
        try:
            yield TextDelta((" " if continued else "") + utterance)
            if turn.output_modalities == ["audio"] and self.synthesize is not None:
                for sentence in split_sentences(utterance):
                    async for pcm, rate in self._synthesized(sentence, lang, turn.voice):
                        yield AudioDelta(pcm, rate)
        finally:
            with contextlib.suppress(ResponderError):  # the bus went away: the turn fails on BUS_LOST
                await self._emit(message.reply("recognizer_loop:audio_output_end", {}))

    async def _synthesized(
        self, sentence: str, lang: str, voice: str | None
    ) -> AsyncIterator[tuple[bytes, int]]:
        """The sentence's audio piece by piece, each fetched on a worker thread; a plugin that
        makes no progress for `timeout_s` fails the turn (`tts_timeout`)."""
        assert self.synthesize is not None
        loop = asyncio.get_running_loop()
        pieces = self.synthesize(sentence, lang, voice)
        pending: asyncio.Future[tuple[bytes, int] | None] | None = None
        try:
            while True:
                pending = loop.run_in_executor(self.executor, next, pieces, None)
                try:
                    piece = await asyncio.wait_for(asyncio.shield(pending), self.timeout_s)
                except asyncio.TimeoutError:
                    raise ResponderError(
                        f"Speech synthesis took longer than {self.timeout_s:.0f} s.", code="tts_timeout"
                    ) from None
                except Exception as exc:
                    raise ResponderError(f"Speech synthesis failed: {exc}", code="tts_failed") from exc
                if piece is None:
                    return
                yield piece
        finally:  # stop the plugin's stream, on a worker thread once its current piece is done
            if pending is not None and not pending.done():
                pending.add_done_callback(lambda _: self._close_on_worker(pieces))
            else:
                self._close_on_worker(pieces)

    def _close_on_worker(self, pieces: Generator[tuple[bytes, int], None, None]) -> None:
        with contextlib.suppress(RuntimeError):  # the executor is shut down: the gateway is stopping
            self.executor.submit(pieces.close)
