"""A small espeak-ng TTS plugin for ovos-plugin-manager (`opm.tts`).

The published `ovos-tts-plugin-espeakng` 0.0.2 fails to construct under ovos-plugin-manager 2.x
(it passes a `lang` keyword the TTS template no longer takes), so the demo and the tests use
this one: espeak-ng from Debian, nothing downloaded.

It is a `StreamingTTS`: `stream_tts` yields the WAV espeak-ng writes to its stdout as it speaks,
so the gateway can send a long sentence's first audio before the rest is synthesized.
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import subprocess
from collections.abc import AsyncIterator
from typing import Any

from ovos_plugin_manager.templates.tts import TTS, StreamingTTS, TTSValidator

# OpenAI's voice names, each given an espeak-ng variant of its own (the realtime session's
# `audio.output.voice` picks one); any other name is taken as an espeak-ng variant itself.
OPENAI_VOICES = {
    "alloy": "m3",
    "ash": "m1",
    "ballad": "m5",
    "coral": "f2",
    "echo": "m2",
    "sage": "f3",
    "shimmer": "f4",
    "verse": "m4",
    "marin": "f1",
    "cedar": "m6",
}


STREAM_READ_BYTES = 8192


class EspeakNgTTS(StreamingTTS):  # type: ignore[misc]  # OVOS's base class is untyped
    accepts_realtime_voices = True  # the gateway may pass a session's `audio.output.voice`

    def __init__(self, config: dict[str, Any] | None = None) -> None:
        super().__init__(config=config or {}, audio_ext="wav")
        self.validator = EspeakNgValidator(self)

    def init(self, bus: Any = None, playback: Any = None, callbacks: Any = None) -> None:
        """As OVOS's audio service calls it. OPM's streaming playback callbacks (which need a
        command-line player) are made only when `enable_streaming` asks for them."""
        if callbacks is None and not self.config.get("enable_streaming"):
            TTS.init(self, bus, playback)
            self.callbacks = None
            return
        super().init(bus, playback, callbacks)

    def _command(self, lang: str | None, voice: str | None) -> list[str]:
        language = (lang or self.config.get("lang") or "en-us").lower()
        voice_name = OPENAI_VOICES.get(voice or "", voice) or self.config.get("voice")
        espeak_voice = f"{language}+{voice_name}" if voice_name else language
        return ["espeak-ng", "-v", espeak_voice, "-s", str(self.config.get("speed", 160))]

    def get_tts(
        self, sentence: str, wav_file: str, lang: str | None = None, voice: str | None = None
    ) -> tuple[str, None]:
        subprocess.run(
            [*self._command(lang, voice), "-w", wav_file, sentence],
            check=True,
            capture_output=True,
            timeout=30,
        )
        return wav_file, None

    async def stream_tts(
        self, sentence: str, lang: str | None = None, voice: str | None = None
    ) -> AsyncIterator[bytes]:
        process = await asyncio.create_subprocess_exec(
            *self._command(lang, voice),
            "--stdout",
            sentence,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
        )
        assert process.stdout is not None and process.stderr is not None
        try:
            while chunk := await process.stdout.read(STREAM_READ_BYTES):
                yield chunk
            if await process.wait() != 0:
                error = (await process.stderr.read()).decode(errors="replace").strip()
                raise RuntimeError(f"espeak-ng failed: {error or process.returncode}")
        finally:
            if process.returncode is None:  # the listener went away mid-sentence
                with contextlib.suppress(ProcessLookupError):
                    process.kill()
                await process.wait()


class EspeakNgValidator(TTSValidator):  # type: ignore[misc]  # OVOS's base class is untyped
    def validate_lang(self) -> None:
        return None

    def validate_connection(self) -> None:
        if shutil.which("espeak-ng") is None:
            raise RuntimeError("espeak-ng is not installed (Debian: apt-get install espeak-ng)")

    def get_tts_class(self) -> type[EspeakNgTTS]:
        return EspeakNgTTS
