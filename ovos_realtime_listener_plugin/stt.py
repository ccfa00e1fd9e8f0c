"""Speech to text for realtime sessions through an ovos-plugin-manager STT plugin (`opm.stt`).

One plugin instance, loaded on first use (pocketsphinx takes a second to load its model), with
calls serialised: OVOS STT plugins are not promised to be thread-safe.
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from typing import Any


class SttUnavailable(RuntimeError):
    pass


class OpmTranscriber:
    def __init__(
        self, plugin_name: str, config: Mapping[str, Any] | None = None, lang: str = "en-US"
    ) -> None:
        self.plugin_name = plugin_name
        self.config = dict(config or {})
        self.lang = lang
        self._plugin: Any = None
        self._lock = threading.Lock()

    def _load(self) -> Any:
        from ovos_plugin_manager.stt import load_stt_plugin

        plugin_class = load_stt_plugin(self.plugin_name)
        if plugin_class is None:
            raise SttUnavailable(f"STT plugin {self.plugin_name!r} is not installed")
        return plugin_class(config={"lang": self.lang, **self.config})

    def warm(self) -> None:
        """Load the plugin now (at startup) rather than on the first committed turn."""
        with self._lock:
            if self._plugin is None:
                self._plugin = self._load()

    def transcribe(self, pcm16k: bytes, lang: str) -> str:
        from ovos_plugin_manager.utils.audio import AudioData  # the class OPM plugins check for

        with self._lock:
            if self._plugin is None:
                self._plugin = self._load()
            text = self._plugin.execute(AudioData(pcm16k, 16000, 2), language=lang)
        return str(text or "")
