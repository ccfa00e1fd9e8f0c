"""A deliberately faulty OPM TTS plugin, put on a gateway's path by the fault tests only.

`config["fault"]`: "hang" sleeps far longer than any response timeout; "raise" fails at once.
`config["load_seconds"]`: loading the plugin takes that long (a big model on a slow disk).
It is a fake on purpose: no real plugin hangs on demand.
"""

from __future__ import annotations

import time
from typing import Any

from ovos_plugin_manager.templates.tts import TTS, TTSValidator


class FaultyTTS(TTS):  # type: ignore[misc]  # the OVOS base class is untyped (Any)
    def __init__(self, config: dict[str, Any] | None = None) -> None:
        super().__init__(config=config or {}, audio_ext="wav")
        time.sleep(float(self.config.get("load_seconds", 0)))
        self.validator = _Validator(self)

    def get_tts(self, sentence: str, wav_file: str, lang: str | None = None) -> tuple[str, None]:
        if self.config.get("fault") == "hang":
            time.sleep(3600)
        raise RuntimeError("injected fault: the synthesizer crashed")


class _Validator(TTSValidator):  # type: ignore[misc]  # the OVOS base class is untyped (Any)
    def validate_lang(self) -> None:
        return None

    def validate_connection(self) -> None:
        return None

    def get_tts_class(self) -> type:
        return FaultyTTS
