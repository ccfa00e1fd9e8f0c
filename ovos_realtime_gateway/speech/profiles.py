"""Speech profiles: which STT and TTS plugins a gateway uses unless told otherwise.

`neural` (the default) hears and speaks like a current voice assistant, offline: Whisper tiny.en
(faster-whisper, int8) and a Piper voice, both from wheels. `light` is for hardware too weak for
that: pocketsphinx and espeak-ng (fast, small, but pocketsphinx mishears most voices).
docs/performance.md compares them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

SpeechProfile = Literal["neural", "light"]


@dataclass(frozen=True)
class SpeechPlugins:
    stt_plugin: str
    tts_plugin: str


SPEECH_PROFILES: dict[str, SpeechPlugins] = {
    "neural": SpeechPlugins("ovos-realtime-stt-whisper", "ovos-realtime-tts-piper"),
    "light": SpeechPlugins("ovos-stt-plugin-pocketsphinx", "ovos-realtime-tts-espeak-ng"),
}
