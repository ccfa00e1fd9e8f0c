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
from .engine.voice_input import (
    DEFAULT_FRAME_MS,
    BatchingDetector,
    SpeechDetector,
    VadBackend,
    VadUnavailable,
)
from .vad_batch import batched_detectors

log = logging.getLogger("ovos_realtime.vad")


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
    if batch:
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
