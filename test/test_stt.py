"""Speech recognition through the OPM STT plugin the gateway loads (pocketsphinx, offline)."""

from __future__ import annotations

import pytest

from ovos_realtime_listener_plugin.stt import OpmTranscriber

from .speech import speech_pcm, user_speech_pcm

QUESTIONS = ["what time is it", "hello world", "what day is it"]


@pytest.fixture(scope="module")
def pocketsphinx() -> OpmTranscriber:
    return OpmTranscriber("ovos-stt-plugin-pocketsphinx")


@pytest.mark.parametrize("text", QUESTIONS)
def test_pocketsphinx_recognises_a_spoken_question(pocketsphinx: OpmTranscriber, text: str) -> None:
    pcm = user_speech_pcm(text, rate=16000, lead_ms=300, tail_ms=300)
    assert pocketsphinx.transcribe(pcm, "en-US") == text


@pytest.mark.xfail(
    strict=True,
    reason="pocketsphinx's English models do not recognise espeak-ng's voice "
    "(it hears 'why not' for 'what time is it'); tests speak to it with flite instead",
)
def test_pocketsphinx_recognises_espeak_ng(pocketsphinx: OpmTranscriber) -> None:
    pcm = speech_pcm("what time is it", rate=16000, lead_ms=300, tail_ms=300)
    assert pocketsphinx.transcribe(pcm, "en-US") == "what time is it"


def test_a_missing_plugin_is_a_clear_error() -> None:
    with pytest.raises(RuntimeError, match="not installed"):
        OpmTranscriber("ovos-stt-plugin-nonexistent").transcribe(b"\0" * 3200, "en-US")
