"""Audio formats, G.711 and the streaming transcoders the engine's audio path depends on."""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import numpy.typing as npt
import pytest

from ovos_realtime_gateway.audio import (
    PCM16_24K,
    PCMA,
    PCMU,
    AudioFormat,
    DeltaChunker,
    InputTranscoder,
    OutputTranscoder,
    g711,
)

ALL_SAMPLES = np.arange(-32768, 32768, dtype=np.int16)


def sine(freq: float, rate: int, seconds: float, amplitude: float = 0.5) -> npt.NDArray[np.int16]:
    t = np.arange(int(rate * seconds)) / rate
    return (np.sin(2 * np.pi * freq * t) * amplitude * 32767).astype(np.int16)


def random_chunks(data: bytes, seed: int = 7) -> list[bytes]:
    """Split `data` at random points, odd sizes included (clients do not align appends)."""
    rng = np.random.default_rng(seed)
    cuts = sorted(set(rng.integers(1, len(data), size=len(data) // 997).tolist()))
    return [data[a:b] for a, b in zip([0, *cuts], [*cuts, len(data)], strict=True)]


@pytest.mark.parametrize(
    ("session_format", "expected"),
    [
        ({"type": "audio/pcm", "rate": 24000}, PCM16_24K),
        ({"type": "audio/pcm"}, PCM16_24K),
        ({"type": "audio/pcmu"}, PCMU),
        ({"type": "audio/pcma"}, PCMA),
        ("pcm16", PCM16_24K),
        ("g711_ulaw", PCMU),
        ("g711_alaw", PCMA),
        (None, PCM16_24K),
    ],
)
def test_session_formats_map_to_encodings(session_format: object, expected: AudioFormat) -> None:
    assert AudioFormat.from_session(session_format) == expected  # type: ignore[arg-type]  # a table of plain dicts standing in for the SDK's formats


def test_unknown_format_is_refused() -> None:
    with pytest.raises(ValueError, match="audio/opus"):
        AudioFormat.from_session({"type": "audio/opus"})


def test_byte_arithmetic() -> None:
    assert PCM16_24K.bytes_for_ms(100) == 4800
    assert PCM16_24K.duration_ms(4800) == 100
    assert PCMU.bytes_for_ms(20) == 160
    assert PCM16_24K.bytes_for_ms(0.03) == 0  # rounds down to a whole sample
    assert PCM16_24K.bytes_for_ms(10.5) % 2 == 0


def _audioop() -> Any:  # the stdlib's audioop (deprecated, untyped in typeshed for 3.13+)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        return pytest.importorskip("audioop")


def test_g711_matches_the_reference_codec_for_every_sample() -> None:
    audioop = _audioop()
    pcm = ALL_SAMPLES.astype("<i2").tobytes()
    assert g711.ulaw_encode(ALL_SAMPLES) == audioop.lin2ulaw(pcm, 2)
    assert g711.alaw_encode(ALL_SAMPLES) == audioop.lin2alaw(pcm, 2)
    every_byte = bytes(range(256))
    assert g711.ulaw_decode(every_byte).astype("<i2").tobytes() == audioop.ulaw2lin(every_byte, 2)
    assert g711.alaw_decode(every_byte).astype("<i2").tobytes() == audioop.alaw2lin(every_byte, 2)


def test_g711_silence_bytes_and_round_trip_error() -> None:
    assert g711.ulaw_encode(np.zeros(1, np.int16)) == b"\xff"
    assert g711.alaw_encode(np.zeros(1, np.int16)) == b"\xd5"
    signal = sine(440, 8000, 0.5)
    for encode, decode in ((g711.ulaw_encode, g711.ulaw_decode), (g711.alaw_encode, g711.alaw_decode)):
        back = decode(encode(signal)).astype(np.int32)
        error = np.abs(back - signal.astype(np.int32))
        # logarithmic quantisation: the error stays within ~3% of the sample's magnitude
        assert np.all(error <= np.abs(signal.astype(np.int32)) * 0.07 + 16)


def _spectral_purity(samples: npt.NDArray[np.int16], rate: int, freq: float) -> float:
    """Fraction of the signal's energy within ±20 Hz of `freq` (1.0 = a pure tone)."""
    spectrum = np.abs(np.fft.rfft(samples.astype(np.float64) * np.hanning(len(samples)))) ** 2
    bins = np.fft.rfftfreq(len(samples), 1 / rate)
    return float(spectrum[np.abs(bins - freq) <= 20].sum() / spectrum.sum())


@pytest.mark.parametrize(
    "session_format", [{"type": "audio/pcm", "rate": 24000}, {"type": "audio/pcmu"}, {"type": "audio/pcma"}]
)
def test_input_transcoder_streams_without_clicks(session_format: dict[str, object]) -> None:
    """Odd-sized chunks through the streaming transcoder give the same clean tone as one block."""
    fmt = AudioFormat.from_session(session_format)
    tone = sine(440, fmt.rate, 2.0)
    if fmt.encoding == "pcm16":
        wire = tone.astype("<i2").tobytes()
    else:
        wire = OutputTranscoder(fmt.rate, session_format).feed(tone)
    streamed = InputTranscoder(session_format)
    parts = [streamed.feed(chunk) for chunk in random_chunks(wire)]
    out = np.concatenate([*parts, streamed.flush()])
    assert abs(len(out) - 2.0 * 16000) <= 2  # 16 kHz, nothing lost or duplicated
    steady = out[1600:-1600]  # skip the filter's edges
    assert _spectral_purity(steady, 16000, 440) > 0.99
    # a click at a chunk edge would show as a jump far beyond a 440 Hz sine's largest step
    max_step = 2 * np.pi * 440 / 16000 * 0.5 * 32767
    assert np.max(np.abs(np.diff(steady.astype(np.int32)))) < max_step * 1.2


@pytest.mark.parametrize("source_rate", [16000, 22050, 24000])
@pytest.mark.parametrize("session_format", [{"type": "audio/pcm", "rate": 24000}, {"type": "audio/pcmu"}])
def test_output_transcoder_resamples_tts_audio(source_rate: int, session_format: dict[str, object]) -> None:
    fmt = AudioFormat.from_session(session_format)
    tone = sine(300, source_rate, 1.0)
    transcoder = OutputTranscoder(source_rate, session_format)
    wire = b"".join(transcoder.feed(tone[i : i + 333]) for i in range(0, len(tone), 333)) + transcoder.flush()
    assert abs(fmt.duration_ms(len(wire)) - 1000) <= 1
    samples = InputTranscoder(session_format, target_rate=fmt.rate).feed(wire)
    assert _spectral_purity(samples[400:-400], fmt.rate, 300) > 0.98


def test_odd_byte_of_pcm16_waits_for_its_pair() -> None:
    transcoder = InputTranscoder({"type": "audio/pcm", "rate": 16000}, target_rate=16000)
    pcm = np.array([1000, -2000, 3000], dtype=np.int16).astype("<i2").tobytes()
    first = transcoder.feed(pcm[:3])
    second = transcoder.feed(pcm[3:])
    assert np.concatenate([first, second]).tolist() == [1000, -2000, 3000]


def test_delta_chunker_is_even_and_lossless() -> None:
    chunker = DeltaChunker(PCM16_24K, 100)
    data = bytes(range(256)) * 101
    chunks = [c for part in random_chunks(data) for c in chunker.push(part)]
    last = chunker.flush()
    assert {len(c) for c in chunks} == {4800}
    assert last is not None and 0 < len(last) < 4800
    assert b"".join([*chunks, last]) == data
    assert chunker.flush() is None


def test_the_input_buffer_keeps_one_16k_copy_aligned_with_the_bytes() -> None:
    """VAD and STT read the buffer's 16 kHz copy (made once, as audio arrives): a turn cut at a
    position holds the same time span in both, and its 16 kHz audio is what resampling the
    committed bytes in one go gives, sample for sample."""
    from ovos_realtime_gateway.engine.input_buffer import InputAudioBuffer

    audio = sine(440, 24000, 2.0).astype("<i2").tobytes()
    buffer = InputAudioBuffer({"type": "audio/pcm", "rate": 24000})
    for part in random_chunks(audio):
        buffer.append(part)
    buffer.drop_before(300)
    data, pcm = buffer.take_until(1500)
    assert len(data) == 1200 * 48 and len(pcm) == 1200 * 32
    whole = InputTranscoder({"type": "audio/pcm", "rate": 24000})
    reference = np.concatenate([whole.feed(audio), whole.flush()]).astype("<i2").tobytes()
    assert pcm == reference[300 * 32 : 1500 * 32]
    rest, rest_pcm = buffer.take()
    assert len(rest) == 500 * 48 and abs(len(rest_pcm) - 500 * 32) <= 2
