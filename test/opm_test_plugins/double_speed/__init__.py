"""A small OPM TTS transformer for the transformers test: plays the speech at double speed.

Written for the test because the one offline TTS transformer on PyPI,
ovos-tts-transformer-sox-plugin, fails on every effect in every release (it calls an undefined
`LOG`); the test uses that real plugin too, to show a broken transformer is skipped.
"""

from __future__ import annotations

import wave
from typing import Any

from ovos_plugin_manager.templates.transformers import TTSTransformer


class DoubleSpeedTransformer(TTSTransformer):  # type: ignore[misc]  # the OVOS base class is untyped (Any)
    def __init__(self, name: str = "double-speed", priority: int = 50, config: dict[str, Any] | None = None):
        super().__init__(name, priority, config)

    def transform(self, wav_file: str, context: dict[str, Any] | None = None) -> tuple[str, dict[str, Any]]:
        out = wav_file + ".fast.wav"
        with wave.open(wav_file) as reader:
            params = reader.getparams()
            frames = reader.readframes(reader.getnframes())
        width = params.sampwidth * params.nchannels
        kept = b"".join(frames[i : i + width] for i in range(0, len(frames), 2 * width))  # every other frame
        with wave.open(out, "wb") as writer:
            writer.setparams(params)
            writer.writeframes(kept)
        return out, context or {}
