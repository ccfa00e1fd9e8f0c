"""Speech to text for realtime sessions through an ovos-plugin-manager STT plugin (`opm.stt`).

A batch plugin: one instance, loaded on first use (pocketsphinx takes a second to load its
model), with calls serialised: OVOS STT plugins are not promised to be thread-safe.

A streaming plugin (an OPM `StreamingSTT`): a pool of instances, one per utterance being spoken
at the same time (each holds one stream), up to `max_streams`; beyond that, or for a manual
commit, an utterance is streamed to an instance in one go when it is committed.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Mapping
from typing import Any


class SttUnavailable(RuntimeError):
    pass


def _streaming(plugin_class: type) -> bool:
    """An OPM StreamingSTT whose `stream_data` only queues audio for its own stream thread (OPM's
    own implementation), so feeding it never blocks the gateway's event loop."""
    from ovos_plugin_manager.templates.stt import StreamingSTT

    return (
        issubclass(plugin_class, StreamingSTT)
        and getattr(plugin_class, "stream_data", None) is StreamingSTT.stream_data
    )


class OpmTranscriber:
    def __init__(
        self,
        plugin_name: str,
        config: Mapping[str, Any] | None = None,
        lang: str = "en-US",
        max_streams: int = 2,
    ) -> None:
        self.plugin_name = plugin_name
        self.config = dict(config or {})
        self.lang = lang
        self.max_streams = max_streams
        self._class: type | None = None
        self._plugin: Any = None
        self._lock = threading.Lock()
        self._idle: list[Any] = []  # streaming plugin instances not in use
        self._instances = 0
        self._released = threading.Condition(self._lock)

    def _load_class(self) -> type:
        if self._class is None:
            from ovos_plugin_manager.stt import load_stt_plugin

            plugin_class = load_stt_plugin(self.plugin_name)
            if plugin_class is None:
                raise SttUnavailable(f"STT plugin {self.plugin_name!r} is not installed")
            self._class = plugin_class
        return self._class

    def _new(self) -> Any:
        return self._load_class()(config={"lang": self.lang, **self.config})

    @property
    def streams(self) -> bool:
        return self._class is not None and _streaming(self._class)

    @property
    def active_streams(self) -> int:
        """Streaming plugin instances decoding an utterance right now."""
        with self._lock:
            return self._instances - len(self._idle)

    def warm(self) -> None:
        """Load the plugin now (at startup) rather than on the first committed turn."""
        with self._lock:
            self._load_class()
            if self.streams:
                if self._instances == 0:
                    self._idle.append(self._new())
                    self._instances = 1
            elif self._plugin is None:
                self._plugin = self._new()

    def _acquire(self, wait: bool) -> Any:
        """A streaming instance nobody uses: an idle one, a new one, or (if `wait`) the next freed."""
        with self._lock:
            while True:
                if self._idle:
                    return self._idle.pop()
                if self._instances < self.max_streams:
                    self._instances += 1
                    break
                if not wait:
                    return None
                self._released.wait()
        try:
            return self._new()
        except BaseException:
            with self._lock:
                self._instances -= 1
            raise

    def _release(self, plugin: Any) -> None:
        with self._lock:
            self._idle.append(plugin)
            self._released.notify()

    def open_stream(self, lang: str) -> OpmTranscriptStream | None:
        if not self.streams:
            return None
        plugin = self._acquire(wait=False)
        if plugin is None:
            return None
        try:
            plugin.stream_start(lang)
        except BaseException:
            self._release(plugin)
            raise
        return OpmTranscriptStream(plugin, self._release)

    def transcribe(self, pcm16k: bytes, lang: str) -> str:
        self.warm()
        if self.streams:
            stream = OpmTranscriptStream(self._acquire(wait=True), self._release)
            stream.plugin.stream_start(lang)
            stream.feed(pcm16k)
            return stream.finish()
        from ovos_plugin_manager.utils.audio import AudioData  # the class OPM plugins check for

        with self._lock:
            text = self._plugin.execute(AudioData(pcm16k, 16000, 2), language=lang)
        return str(text or "")


class OpmTranscriptStream:
    """One utterance on one streaming plugin instance, which goes back to the pool at the end."""

    def __init__(self, plugin: Any, release: Any) -> None:
        self.plugin = plugin
        self._release = release

    def feed(self, pcm16k: bytes) -> None:
        self.plugin.stream_data(pcm16k)  # OPM's StreamingSTT: a queue put, decoded on its thread

    def finish(self) -> str:
        try:
            return str(self.plugin.stream_stop() or "")
        finally:
            self._release(self.plugin)

    def abort(self) -> None:
        with contextlib.suppress(Exception):
            self.finish()
