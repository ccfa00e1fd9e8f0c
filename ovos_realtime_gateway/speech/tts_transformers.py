"""OVOS TTS transformers (`opm.transformer.tts`) applied to the synthesized speech, as ovos-audio
applies them on the device: the plugins named in a `tts_transformers` section (name → config;
`active: false` skips one), by ascending priority; a transformer that fails is logged and skipped."""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from typing import Any

log = logging.getLogger("ovos_realtime.tts")


class TransformerUnavailable(RuntimeError):
    pass


class TtsTransformers:
    def __init__(self, section: Mapping[str, Mapping[str, Any]] | None = None) -> None:
        self.section = {name: dict(config) for name, config in (section or {}).items()}
        self._plugins: list[Any] | None = None

    @property
    def active(self) -> bool:
        """Whether any transformer is configured to run (then speech needs the whole WAV)."""
        return any(config.get("active", True) is not False for config in self.section.values())

    def load(self) -> None:
        if self._plugins is not None:
            return
        from ovos_plugin_manager.dialog_transformers import load_tts_transformer_plugin

        plugins = []
        for name, config in self.section.items():
            if config.get("active", True) is False:
                continue
            plugin_class = load_tts_transformer_plugin(name)
            if plugin_class is None:
                raise TransformerUnavailable(f"TTS transformer {name!r} is not installed")
            plugins.append(plugin_class(config=config))
        self._plugins = sorted(plugins, key=lambda p: getattr(p, "priority", 50))

    def apply(self, wav_path: str) -> list[str]:
        """Transform the WAV at `wav_path`; every file produced, the last one is the result."""
        self.load()
        assert self._plugins is not None
        produced = [wav_path]
        for plugin in self._plugins:
            try:
                out, _ = plugin.transform(produced[-1], {})
            except Exception:  # as ovos-audio: one broken transformer does not silence the answer
                log.exception("TTS transformer %s failed; skipped", getattr(plugin, "name", plugin))
                continue
            if isinstance(out, str) and out != produced[-1] and os.path.exists(out):
                produced.append(out)
        return produced
