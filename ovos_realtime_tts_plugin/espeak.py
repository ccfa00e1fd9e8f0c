"""A small espeak-ng TTS plugin for ovos-plugin-manager (`opm.tts`).

The published `ovos-tts-plugin-espeakng` 0.0.2 fails to construct under ovos-plugin-manager 2.x
(it passes a `lang` keyword the TTS template no longer takes), so the demo and the tests use
this one: espeak-ng from Debian, nothing downloaded.
"""

from __future__ import annotations

import shutil
import subprocess
from typing import Any

from ovos_plugin_manager.templates.tts import TTS, TTSValidator

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


class EspeakNgTTS(TTS):  # type: ignore[misc]
    accepts_realtime_voices = True  # the gateway may pass a session's `audio.output.voice`

    def __init__(self, config: dict[str, Any] | None = None) -> None:
        super().__init__(config=config or {}, audio_ext="wav")
        self.validator = EspeakNgValidator(self)

    def get_tts(
        self, sentence: str, wav_file: str, lang: str | None = None, voice: str | None = None
    ) -> tuple[str, None]:
        language = (lang or self.config.get("lang") or "en-us").lower()
        voice_name = OPENAI_VOICES.get(voice or "", voice) or self.config.get("voice")
        espeak_voice = f"{language}+{voice_name}" if voice_name else language
        speed = str(self.config.get("speed", 160))
        subprocess.run(
            ["espeak-ng", "-v", espeak_voice, "-s", speed, "-w", wav_file, sentence],
            check=True,
            capture_output=True,
            timeout=30,
        )
        return wav_file, None


class EspeakNgValidator(TTSValidator):  # type: ignore[misc]
    def validate_lang(self) -> None:
        return None

    def validate_connection(self) -> None:
        if shutil.which("espeak-ng") is None:
            raise RuntimeError("espeak-ng is not installed (Debian: apt-get install espeak-ng)")

    def get_tts_class(self) -> type[EspeakNgTTS]:
        return EspeakNgTTS
