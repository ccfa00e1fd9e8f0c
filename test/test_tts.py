"""Speech for answers through the OPM TTS plugin the gateway loads (the bundled espeak-ng one)."""

from __future__ import annotations

import pytest
from ovos_plugin_manager.tts import find_tts_plugins

from ovos_realtime_tts_plugin.espeak import EspeakNgTTS
from ovos_realtime_tts_plugin.synthesizer import SpeechSynthesizer, TtsUnavailable


@pytest.fixture(scope="module")
def speech() -> SpeechSynthesizer:
    return SpeechSynthesizer("ovos-realtime-tts-espeak-ng", voices={"house": "f5"})


def test_the_plugin_is_found_under_its_entry_point() -> None:
    assert find_tts_plugins()["ovos-realtime-tts-espeak-ng"] is EspeakNgTTS


def test_speaks_pcm_at_the_plugins_rate(speech: SpeechSynthesizer) -> None:
    pcm, rate = speech.synthesize("Hello world", "en-US")
    assert rate == 22050
    assert 0.5 < len(pcm) / 2 / rate < 2.5


def test_a_sessions_voice_picks_a_voice(speech: SpeechSynthesizer) -> None:
    alloy, _ = speech.synthesize("Hello world", "en-US", "alloy")
    assert speech.synthesize("Hello world", "en-US", "alloy")[0] == alloy, "the same voice, the same audio"
    assert speech.synthesize("Hello world", "en-US", "coral")[0] != alloy
    assert speech.synthesize("Hello world", "en-US", "house")[0] != alloy  # mapped by tts_voices
    assert speech.plugin_voice("house") == "f5" and speech.plugin_voice(None) is None


def test_a_missing_plugin_is_a_clear_error() -> None:
    with pytest.raises(TtsUnavailable, match="not installed"):
        SpeechSynthesizer("ovos-tts-plugin-missing").synthesize("Hello", "en-US")
