"""Speech to text for realtime sessions through an ovos-plugin-manager STT plugin (`opm.stt`):
the engine's `Transcriber` (engine/transcription.py).

A batch plugin: one instance, loaded on first use (pocketsphinx takes a second to load its
model), with calls serialised: OVOS STT plugins are not promised to be thread-safe.

A streaming plugin (an OPM `StreamingSTT`): a pool of instances, one per utterance being spoken
at the same time (each holds one stream), up to `max_streams`; beyond that, or for a manual
commit, an utterance is streamed in one go when it is committed, to an idle pooled instance or
else to one more instance kept for that (serialised). Nothing ever waits for a pooled instance
to come back: that would be a worker thread waiting on work that needs a worker thread.
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
        self._lock = threading.Lock()  # the pool's bookkeeping
        self._batch_lock = threading.Lock()  # serialises calls on `_plugin`
        self._idle: list[Any] = []  # streaming plugin instances not in use
        self._instances = 0

    def _load_class(self) -> type:
        if self._class is None:
            from ovos_plugin_manager.stt import load_stt_plugin

            from .plugin_probe import check_plugin

            check_plugin("stt", self.plugin_name)  # one that crashes natively is refused, not loaded
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

    @property
    def loaded(self) -> bool:
        """What `warm` loads is loaded: the plugin class and a first instance (its model)."""
        if self._class is None:
            return False
        return self._instances > 0 if self.streams else self._plugin is not None

    def warm(self) -> None:
        """Load the plugin now (at startup) rather than on the first committed turn."""
        with self._lock:
            self._load_class()
            if self.streams:
                if self._instances == 0:
                    self._idle.append(self._new())
                    self._instances = 1
                return
        with self._batch_lock:
            if self._plugin is None:
                self._plugin = self._new()

    def _acquire(self) -> Any:
        """A streaming instance nobody uses (an idle one, or a new one), or None: all are busy."""
        with self._lock:
            if self._idle:
                return self._idle.pop()
            if self._instances >= self.max_streams:
                return None
            self._instances += 1
        try:
            return self._new()
        except BaseException:
            with self._lock:
                self._instances -= 1
            raise

    def _release(self, plugin: Any, healthy: bool = True) -> None:
        """Back to the pool; an instance whose utterance failed is dropped (OPM leaves its dead
        stream in place, and every later `stream_start` would fail on it)."""
        with self._lock:
            if healthy:
                self._idle.append(plugin)
            else:
                self._instances -= 1

    def _release_extra(self, plugin: Any, healthy: bool = True) -> None:
        if not healthy:
            self._plugin = None  # built afresh next time

    def open_stream(self, lang: str) -> OpmTranscriptStream | None:
        if not self.streams:
            return None
        plugin = self._acquire()
        if plugin is None:
            return None
        try:
            plugin.stream_start(lang)
        except BaseException:
            self._release(plugin, False)  # as a failed utterance: its stream state is not to be trusted
            raise
        return OpmTranscriptStream(plugin, self._release)

    def transcribe(self, pcm16k: bytes, lang: str) -> str:
        self.warm()
        if self.streams:
            pooled = self._acquire()
            if pooled is not None:
                return _stream_whole(OpmTranscriptStream(pooled, self._release), pcm16k, lang)
        with self._batch_lock:
            if self._plugin is None:
                self._plugin = self._new()
            if self.streams:
                return _stream_whole(OpmTranscriptStream(self._plugin, self._release_extra), pcm16k, lang)
            from ovos_plugin_manager.utils.audio import AudioData  # the class OPM plugins check for

            text = self._plugin.execute(AudioData(pcm16k, 16000, 2), language=lang)
        return str(text or "")


def _stream_whole(stream: OpmTranscriptStream, pcm16k: bytes, lang: str) -> str:
    try:
        stream.plugin.stream_start(lang)
    except BaseException:
        stream.abort()
        raise
    stream.feed(pcm16k)
    return stream.finish()


class OpmTranscriptStream:
    """One utterance on one streaming plugin instance, which goes back to the pool at the end."""

    def __init__(self, plugin: Any, release: Any) -> None:
        self.plugin = plugin
        self._release = release
        self._ended = False

    def feed(self, pcm16k: bytes) -> None:
        self.plugin.stream_data(pcm16k)  # OPM's StreamingSTT: a queue put, decoded on its thread

    def finish(self) -> str:
        if self._ended:
            raise RuntimeError("this utterance has already ended")
        self._ended = True
        try:
            text = str(self.plugin.stream_stop() or "")
        except BaseException:
            self._release(self.plugin, False)
            raise
        self._release(self.plugin, True)
        return text

    def abort(self) -> None:
        with contextlib.suppress(Exception):
            self.finish()
