"""Speech for answers through the OPM TTS plugin the gateway loads (the bundled espeak-ng one)."""

from __future__ import annotations

import io
import os
import wave
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
from ovos_plugin_manager.tts import find_tts_plugins

from ovos_realtime_gateway.speech.tts import SpeechSynthesizer, TtsUnavailable
from ovos_realtime_gateway.speech.wav_stream import WavStream, WavStreamError
from ovos_realtime_tts_plugin.espeak import EspeakNgTTS


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


LONG_SENTENCE = (
    "The quick brown fox jumps over the lazy dog, and then it runs far away into the forest "
    "where nobody can find it again for a very long time."
)


def test_a_streaming_plugin_speaks_a_sentence_in_pieces(speech: SpeechSynthesizer) -> None:
    whole, rate = speech.synthesize(LONG_SENTENCE, "en-US", "alloy")
    pieces = list(speech.speak(LONG_SENTENCE, "en-US", "alloy"))
    assert speech.streams()
    assert len(pieces) > 5, "espeak-ng's stdout arrives in pieces, each sent on as it comes"
    assert {piece_rate for _, piece_rate in pieces} == {rate}
    assert b"".join(pcm for pcm, _ in pieces) == whole, "streamed audio is the same speech, sample for sample"


def _espeak_children() -> list[int]:
    children = Path(f"/proc/{os.getpid()}/task/{os.getpid()}/children").read_text().split()
    return [int(pid) for pid in children if Path(f"/proc/{pid}/comm").read_text().strip() == "espeak-ng"]


def test_abandoning_a_streamed_sentence_stops_the_synthesizer(speech: SpeechSynthesizer) -> None:
    pieces = speech.speak(LONG_SENTENCE * 20, "en-US")
    next(pieces)
    pieces.close()
    assert _espeak_children() == [], "no espeak-ng left running for a sentence nobody hears"
    pcm, _ = speech.synthesize("Hello world", "en-US")  # and the synthesizer is free for the next one
    assert pcm


def test_transformers_need_the_whole_sentence_so_it_comes_in_one_piece() -> None:
    transformed = SpeechSynthesizer(
        "ovos-realtime-tts-espeak-ng", transformers={"ovos-tts-transformer-sox-plugin": {}}
    )
    pieces = list(transformed.speak(LONG_SENTENCE, "en-US"))
    assert not transformed.streams()
    assert len(pieces) == 1


def test_wav_stream_takes_any_chunking_and_mixes_stereo_down() -> None:
    frames = np.array([[1000, 3000], [-2000, -4000], [7, 9]], dtype="<i2")
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as writer:
        writer.setnchannels(2)
        writer.setsampwidth(2)
        writer.setframerate(16000)
        writer.writeframes(frames.tobytes())
    data = buffer.getvalue()
    stream = WavStream()
    pcm = b"".join(stream.feed(data[i : i + 1]) for i in range(len(data)))
    assert stream.rate == 16000
    assert np.frombuffer(pcm, dtype="<i2").tolist() == [2000, -3000, 8]


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"ID3\x04" + bytes(60), "not a WAV"),
        (
            b"RIFF\x00\x00\x00\x00WAVEfmt \x10\x00\x00\x00\x01\x00\x01\x00\x40\x1f\x00\x00"
            b"\x40\x1f\x00\x00\x01\x00\x08\x00data\x00\x00\x00\x00",
            "not 16-bit PCM",
        ),
        (b"RIFF\x00\x00\x00\x00WAVEdata\x00\x00\x00\x00", "no fmt chunk"),
    ],
)
def test_wav_stream_refuses_what_it_cannot_play(data: bytes, message: str) -> None:
    with pytest.raises(WavStreamError, match=message):
        WavStream().feed(data)


def test_a_stream_waiting_for_its_listener_does_not_hold_up_other_sentences(
    speech: SpeechSynthesizer,
) -> None:
    """Session A's sentence is half heard (its consumer has not asked for the next piece); session
    B's sentence must still be synthesized meanwhile, not wait for A (the gateway fetches pieces
    on a bounded pool of worker threads: waiting there for A would starve A itself)."""
    first = speech.speak(LONG_SENTENCE, "en-US")
    next(first)
    pool = ThreadPoolExecutor(1)
    try:
        second = pool.submit(lambda: b"".join(pcm for pcm, _ in speech.speak("Hello world", "en-US")))
        assert second.result(timeout=10), "B's sentence came while A's stream was open"
        assert sum(len(pcm) for pcm, _ in first) > 0, "and A's stream goes on where it stopped"
    finally:
        first.close()  # (were B stuck behind A, this lets it finish: the test fails, it does not hang)
        pool.shutdown()
