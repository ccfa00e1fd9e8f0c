"""Speech for realtime responses through the device's ovos-plugin-manager TTS plugin.

`SpeechSynthesizer.synthesize(sentence, lang)` is blocking (the gateway runs it in an executor)
and returns 16-bit mono PCM at the plugin's native rate; the engine's transcoder takes it to the
session's format.
`speak(sentence, lang)` yields the same audio in pieces: as the plugin produces them when it is
an OPM `StreamingTTS` writing WAV (and no TTS transformer needs the whole file), else in one.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import logging
import os
import tempfile
import threading
import wave
from collections.abc import AsyncIterator, Callable, Generator, Mapping
from typing import Any

import numpy as np

from .tts_transformers import TtsTransformers
from .wav_stream import WavStream

log = logging.getLogger("ovos_realtime.tts")

Synthesize = Callable[[str, str, str | None], Generator[tuple[bytes, int], None, None]]
"""(sentence, lang, voice) → pieces of (16-bit mono PCM, sample rate), as a streaming TTS plugin
produces them (one piece from other plugins). Each `next` blocks: it runs in an executor."""


PIECE_TIMEOUT_S = 30.0
"""A streaming plugin that sends nothing for this long is stopped (its stream is cancelled), as a
batch espeak-ng call is: the plugin lock must not stay held by a stuck stream."""


class TtsUnavailable(RuntimeError):
    pass


def _load(plugin_name: str | None, config: Mapping[str, Any], lang: str) -> Any:
    from ovos_plugin_manager.tts import OVOSTTSFactory, load_tts_plugin

    from .plugin_probe import check_plugin

    if plugin_name is None:  # the device's own `tts` section of mycroft.conf
        return OVOSTTSFactory.create()
    check_plugin("tts", plugin_name)  # a plugin that crashes natively is refused, not loaded here
    plugin_class = load_tts_plugin(plugin_name)
    if plugin_class is None:
        raise TtsUnavailable(f"TTS plugin {plugin_name!r} is not installed")
    return plugin_class(config={"lang": lang, **config})


def read_wav(data: bytes) -> tuple[bytes, int]:
    """16-bit mono PCM and its rate from WAV bytes (stereo is mixed down, 8/32-bit converted)."""
    with wave.open(io.BytesIO(data)) as reader:
        channels, width, rate = reader.getnchannels(), reader.getsampwidth(), reader.getframerate()
        frames = reader.readframes(reader.getnframes())
    if width == 2:
        samples = np.frombuffer(frames, dtype="<i2").astype(np.int32)
    elif width == 1:
        samples = (np.frombuffer(frames, dtype=np.uint8).astype(np.int32) - 128) << 8
    elif width == 4:
        samples = np.frombuffer(frames, dtype="<i4") >> 16
    else:
        raise ValueError(f"unsupported WAV sample width {width}")
    if channels > 1:
        samples = samples.reshape(-1, channels).mean(axis=1).astype(np.int32)
    return samples.astype("<i2").tobytes(), rate


class SpeechSynthesizer:
    """One plugin instance for the gateway, loaded on first use; calls are serialised (for a
    streaming plugin, each piece is one call: sentences of different sessions interleave)."""

    def __init__(
        self,
        plugin_name: str | None,
        config: Mapping[str, Any] | None = None,
        lang: str = "en-US",
        voices: Mapping[str, str] | None = None,
        transformers: Mapping[str, Mapping[str, Any]] | None = None,
    ) -> None:
        self.voices = dict(voices or {})
        self.transformers = TtsTransformers(transformers)
        self.plugin_name = plugin_name
        self.config = dict(config or {})
        self.lang = lang
        self._plugin: Any = None
        self._lock = threading.Lock()

    def warm(self) -> None:
        """Load the plugin now (at startup) rather than on the first spoken answer."""
        with self._lock:
            if self._plugin is None:
                self._plugin = _load(self.plugin_name, self.config, self.lang)
            self.transformers.load()

    def plugin_voice(self, voice: str | None) -> str | None:
        """The plugin's voice for a session's `audio.output.voice`: mapped by `tts_voices`, passed
        as it is to plugins that know realtime voice names, else the plugin's own default."""
        if voice is None:
            return None
        if voice in self.voices:
            return self.voices[voice]
        return voice if getattr(self._plugin, "accepts_realtime_voices", False) else None

    def _loaded(self, lang: str | None) -> Any:
        if self._plugin is None:
            self._plugin = _load(self.plugin_name, self.config, lang or self.lang)
        return self._plugin

    def streams(self) -> bool:
        """Whether `speak` yields audio as the plugin produces it (the plugin must be loaded)."""
        from ovos_plugin_manager.templates.tts import StreamingTTS

        return (
            isinstance(self._plugin, StreamingTTS)
            and getattr(self._plugin, "audio_ext", "wav") == "wav"
            and not self.transformers.active
        )

    def speak(
        self, sentence: str, lang: str | None = None, voice: str | None = None
    ) -> Generator[tuple[bytes, int], None, None]:
        """(PCM16 mono, rate) pieces of the sentence; blocking between pieces (run each `next` in
        an executor). Close the iterator when abandoning it: that stops the plugin's stream."""
        with self._lock:
            self._loaded(lang)
            streaming = self.streams()
        if not streaming:
            yield self.synthesize(sentence, lang, voice)
            return
        # The lock is held per plugin call, never across a yield: a stream waiting for its
        # consumer must not keep other sessions' sentences (and the worker threads they hold) out.
        with self._lock:
            chosen = self.plugin_voice(voice)
            kwargs = {} if chosen is None else {"lang": lang or self.lang, "voice": chosen}
            chunks: AsyncIterator[bytes] = self._plugin.stream_tts(sentence, **kwargs)
        loop = asyncio.new_event_loop()  # the plugin's coroutines run here, on the caller's thread
        wav = WavStream()
        produced = False
        try:
            while True:
                try:
                    with self._lock:
                        chunk = loop.run_until_complete(asyncio.wait_for(anext(chunks), PIECE_TIMEOUT_S))
                except StopAsyncIteration:
                    break
                pcm = wav.feed(chunk)
                if pcm:
                    produced = True
                    yield pcm, wav.rate
        finally:
            with contextlib.suppress(Exception), self._lock:
                loop.run_until_complete(chunks.aclose())  # type: ignore[attr-defined]  # an async iterator's aclose() is on the generator type mypy does not see here
            loop.close()
        if not produced:
            raise RuntimeError(f"the TTS plugin produced no audio for {sentence!r}")

    def synthesize(
        self, sentence: str, lang: str | None = None, voice: str | None = None
    ) -> tuple[bytes, int]:
        with self._lock:
            self._loaded(lang)
            handle, path = tempfile.mkstemp(suffix=".wav", prefix="ovos-realtime-tts-")
            os.close(handle)
            produced = [path]
            try:
                chosen = self.plugin_voice(voice)
                if chosen is None:
                    self._plugin.get_tts(sentence, path)
                else:
                    self._plugin.get_tts(sentence, path, lang=lang or self.lang, voice=chosen)
                produced = self.transformers.apply(path)
                with open(produced[-1], "rb") as wav:
                    data = wav.read()
            finally:
                for made in produced:
                    with contextlib.suppress(FileNotFoundError):
                        os.unlink(made)
        if not data:
            raise RuntimeError(f"the TTS plugin produced no audio for {sentence!r}")
        return read_wav(data)
