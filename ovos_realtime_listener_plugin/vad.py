"""Speech detection for realtime sessions through an ovos-plugin-manager VAD plugin.

Any `opm.VAD` plugin works (its `is_silence` is the interface); the session's `threshold` is
passed as the plugin's `threshold` config, which for silero (the default) is the speech
probability cutoff — the same meaning OpenAI gives `server_vad.threshold`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np
import numpy.typing as npt
from ovos_plugin_manager.vad import load_vad_plugin

from ovos_realtime_gateway.engine.turns import VadParams
from ovos_realtime_gateway.engine.voice_input import SpeechDetector, SpeechDetectorFactory, VadUnavailable

DEFAULT_VAD_PLUGIN = "ovos-vad-plugin-silero"


class OpmSpeechDetector:
    """One plugin instance per session (VAD plugins keep per-stream state)."""

    def __init__(self, plugin: Any) -> None:
        self._plugin = plugin

    def is_speech(self, frame: npt.NDArray[np.int16]) -> bool:
        return not self._plugin.is_silence(frame.astype("<i2", copy=False).tobytes())


def opm_speech_detectors(
    plugin_name: str = DEFAULT_VAD_PLUGIN, config: Mapping[str, Any] | None = None
) -> SpeechDetectorFactory:
    """A factory of per-session detectors from the named OPM VAD plugin (checked now, built later)."""
    plugin_class = load_vad_plugin(plugin_name)
    if plugin_class is None:
        raise VadUnavailable(f"VAD plugin {plugin_name!r} is not installed")
    base = dict(config or {})

    def create(params: VadParams) -> SpeechDetector:
        return OpmSpeechDetector(plugin_class({**base, "threshold": params.threshold}, sample_rate=16000))

    return create
