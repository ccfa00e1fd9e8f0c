"""The gateway's VAD backend: speech detectors from the configured OPM plugin, on their own threads."""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
import numpy.typing as npt

from .engine.turns import VadParams
from .engine.voice_input import DEFAULT_FRAME_MS, SpeechDetector, VadBackend, VadUnavailable

log = logging.getLogger("ovos_realtime.vad")


def vad_backend(
    plugin_name: str,
    config: Mapping[str, Any],
    silence_floor_dbfs: float | None = -50.0,
    frame_ms: int = DEFAULT_FRAME_MS,
    failed: Callable[[], None] = lambda: None,
) -> VadBackend:
    """Detectors from `plugin_name`; if it cannot load, sessions that ask for server VAD get an
    error event naming the cause (the gateway still starts: manual turns keep working). `failed`
    is told of each detector that could not be made or raised."""
    from ovos_realtime_listener_plugin.vad import opm_speech_detectors

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

    def counted(params: VadParams) -> SpeechDetector:
        try:
            return _Counted(detectors(params), failed)
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
