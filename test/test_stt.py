"""Speech recognition through the OPM STT plugins the gateway loads, offline: Whisper (the default,
`neural` profile) and pocketsphinx (the `light` profile), with the voices users bring."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from ovos_realtime_gateway.settings import GatewaySettings
from ovos_realtime_gateway.speech.stt import OpmTranscriber
from ovos_realtime_listener_plugin.whisper import WhisperModelError, WhisperSTT, bundled_model

from .speech import speech_pcm, user_speech_pcm, with_noise

QUESTIONS = ["what time is it", "hello world", "what day is it"]
WHISPER = "ovos-realtime-stt-whisper"


DIGITS = dict(enumerate("zero one two three four five six seven eight nine ten".split()))


def words(text: str) -> str:
    """Lower case, no punctuation, small numbers spelled: how OVOS's parsers read an utterance."""
    plain = "".join(c for c in text.lower() if c.isalnum() or c in " '").split()
    return " ".join(DIGITS.get(int(w), w) if w.isdigit() else w for w in plain)


@pytest.fixture(scope="module")
def whisper() -> OpmTranscriber:
    transcriber = OpmTranscriber(WHISPER)
    transcriber.warm()
    return transcriber


@pytest.fixture(scope="module")
def pocketsphinx() -> OpmTranscriber:
    return OpmTranscriber("ovos-stt-plugin-pocketsphinx")


def test_whisper_is_the_default_stt_and_pocketsphinx_the_light_one() -> None:
    assert GatewaySettings().stt_plugin == WHISPER
    assert GatewaySettings(speech_profile="light").stt_plugin == "ovos-stt-plugin-pocketsphinx"


@pytest.mark.parametrize(
    "text", ["what time is it", "hello world", "set a timer for five minutes", "tell me a joke"]
)
def test_whisper_recognises_espeak_ng(whisper: OpmTranscriber, text: str) -> None:
    """The voice pocketsphinx heard as 'why not' (the old strict xfail)."""
    pcm = speech_pcm(text, rate=16000, lead_ms=300, tail_ms=300)
    assert words(whisper.transcribe(pcm, "en-US")) == text


@pytest.mark.parametrize("voice", ["rms", "slt", "awb", "kal"])
def test_whisper_recognises_flites_voices(whisper: OpmTranscriber, voice: str) -> None:
    pcm = user_speech_pcm("tell me a joke", rate=16000, lead_ms=300, tail_ms=300, voice=voice)
    assert "joke" in words(whisper.transcribe(pcm, "en-US"))


@pytest.mark.parametrize("text", ["what time is it", "set a timer for five minutes"])
def test_whisper_hears_a_question_through_noise(whisper: OpmTranscriber, text: str) -> None:
    """At 20 dB SNR (a quiet fan); at 10 dB tiny.en often fails: bench/stt_accuracy.py measures it."""
    pcm = with_noise(speech_pcm(text, rate=16000, lead_ms=300, tail_ms=300), snr_db=20)
    assert words(whisper.transcribe(pcm, "en-US")) == text


@pytest.mark.parametrize("kind", ["silence", "hum", "noise"])
def test_whisper_hears_nothing_in_silence_or_noise(whisper: OpmTranscriber, kind: str) -> None:
    """Whisper's known failure: 'Thank you.' or 'you' out of nothing. The VAD filter and the
    no-speech probability keep such turns empty."""
    rng = np.random.default_rng(5)
    t = np.arange(16000 * 3) / 16000
    audio = {
        "silence": np.zeros(t.size),
        "hum": 2000 * np.sin(2 * np.pi * 50 * t),
        "noise": rng.normal(0, 3000, t.size),
    }[kind]
    assert whisper.transcribe(audio.astype("<i2").tobytes(), "en-US") == ""


@pytest.mark.parametrize("text", QUESTIONS)
def test_pocketsphinx_recognises_a_spoken_question(pocketsphinx: OpmTranscriber, text: str) -> None:
    pcm = user_speech_pcm(text, rate=16000, lead_ms=300, tail_ms=300)
    assert pocketsphinx.transcribe(pcm, "en-US") == text


def test_ovos_own_fasterwhisper_plugin_works_with_the_bundled_model() -> None:
    """OVOS's `ovos-stt-plugin-fasterwhisper` is a documented alternative (docs/configuration.md)."""
    ovos = OpmTranscriber("ovos-stt-plugin-fasterwhisper", {"model": str(bundled_model()), "cpu_threads": 1})
    pcm = speech_pcm("what time is it", rate=16000, lead_ms=300, tail_ms=300)
    assert words(ovos.transcribe(pcm, "en-US")) == "what time is it"


def test_a_model_directory_that_does_not_exist_names_the_setting(tmp_path: Path) -> None:
    with pytest.raises(WhisperModelError, match=r"stt_config\.model: .*neither a model directory"):
        WhisperSTT({"model": str(tmp_path / "nowhere")})


def test_a_directory_without_a_model_names_the_setting(tmp_path: Path) -> None:
    with pytest.raises(WhisperModelError, match=r"stt_config\.model: .*missing model\.bin, config\.json"):
        WhisperSTT({"model": str(tmp_path)})


def test_a_corrupt_model_names_the_setting(tmp_path: Path) -> None:
    for name in ("config.json", "tokenizer.json", "vocabulary.txt"):
        (tmp_path / name).write_bytes((bundled_model() / name).read_bytes())
    (tmp_path / "model.bin").write_bytes(b"\x00garbage" * 1000)
    with pytest.raises(WhisperModelError, match=r"stt_config\.model: cannot load Whisper model"):
        WhisperSTT({"model": str(tmp_path)})


def test_a_missing_plugin_is_a_clear_error() -> None:
    with pytest.raises(RuntimeError, match="not installed"):
        OpmTranscriber("ovos-stt-plugin-nonexistent").transcribe(b"\0" * 3200, "en-US")


def test_whispers_repeated_sentences_and_unsure_non_speech_are_dropped() -> None:
    """Whisper's segments as faster-whisper gives them (text, no-speech probability, mean log
    probability): its loop repeats a sentence; out of noise it says "Thank you." unsure."""
    from ovos_realtime_listener_plugin.whisper import join_segments

    looped = [
        (" Set a timer.", 0.01, -0.2),
        (" Set a timer.", 0.02, -0.3),
        (" For five minutes.", 0.01, -0.2),
    ]
    assert join_segments(looped, 0.6) == "Set a timer. For five minutes."
    assert join_segments([(" Thank you.", 0.9, -1.4)], 0.6) == ""
    assert join_segments([(" Hello.", 0.9, -0.1)], 0.6) == "Hello.", "sure of it: kept"
