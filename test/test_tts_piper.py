"""The default voice: Piper (`ovos-realtime-tts-piper`, a neural ONNX voice from a wheel), through
the same synthesizer the gateway uses, heard back by the default STT."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soxr
from ovos_plugin_manager.tts import find_tts_plugins

from ovos_realtime_gateway.settings import GatewaySettings
from ovos_realtime_gateway.speech.stt import OpmTranscriber
from ovos_realtime_gateway.speech.tts import SpeechSynthesizer
from ovos_realtime_tts_plugin.piper import PiperTTS, PiperVoiceError, bundled_voice

from .test_stt import words

PIPER = "ovos-realtime-tts-piper"
ANSWER = "It is seven thirteen. The weather in Berlin is sunny, with a light wind from the west."


@pytest.fixture(scope="module")
def piper() -> SpeechSynthesizer:
    speech = SpeechSynthesizer(PIPER)
    speech.warm()
    return speech


def test_piper_is_the_default_voice_and_espeak_ng_the_light_one() -> None:
    assert find_tts_plugins()[PIPER] is PiperTTS
    assert GatewaySettings().tts_plugin == PIPER
    assert GatewaySettings(speech_profile="light").tts_plugin == "ovos-realtime-tts-espeak-ng"


def test_piper_speaks_what_whisper_hears(piper: SpeechSynthesizer) -> None:
    pcm, rate = piper.synthesize("What time is it?", "en-US")
    assert rate == 22050
    samples = soxr.resample(np.frombuffer(pcm, dtype="<i2"), rate, 16000)
    heard = OpmTranscriber("ovos-realtime-stt-whisper").transcribe(samples.astype("<i2").tobytes(), "en-US")
    assert words(heard) == "what time is it"


def test_an_answer_streams_sentence_by_sentence_and_matches_the_whole(piper: SpeechSynthesizer) -> None:
    pieces = list(piper.speak(ANSWER, "en-US"))
    whole, rate = piper.synthesize(ANSWER, "en-US")
    assert piper.streams()
    assert len(pieces) == 2, "each sentence is sent as soon as it is synthesized"
    assert {piece_rate for _, piece_rate in pieces} == {rate}
    streamed = sum(len(pcm) for pcm, _ in pieces)
    assert abs(streamed - len(whole)) < 0.15 * len(whole), "the same speech (VITS samples noise)"


def test_a_voice_that_does_not_exist_names_the_setting(tmp_path: Path) -> None:
    with pytest.raises(PiperVoiceError, match=r"tts_config\.model: .*not a Piper voice"):
        PiperTTS({"model": str(tmp_path / "nobody.onnx")})


def test_a_corrupt_voice_names_the_setting(tmp_path: Path) -> None:
    onnx, config = bundled_voice()
    (tmp_path / "broken.onnx").write_bytes(b"not a model" * 100)
    (tmp_path / "broken.onnx.json").write_bytes(config.read_bytes())
    with pytest.raises(PiperVoiceError, match=r"tts_config\.model: cannot load Piper voice"):
        PiperTTS({"model": str(tmp_path / "broken.onnx")})
    assert onnx.is_file()
