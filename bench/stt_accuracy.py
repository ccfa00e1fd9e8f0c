"""How well each STT plugin hears an assistant's users: word error rate, "the intent's keywords all
heard", and decode time per second of audio, side by side in one run.

45 assistant-style utterances (times, timers, alarms, weather, greetings, questions with names and
numbers), each spoken by voices no STT here was tuned on (espeak-ng en-us and its f3 variant,
flite's slt and awb, the Piper voice `en_US-joe-medium`), clean and with white noise at 10 dB SNR,
decoded by pocketsphinx (batch and streaming: the `light` profile) and Whisper tiny.en (the
default). Text is compared after normalising both sides: lower case, no punctuation, digits
spelled out ("5" → "five", "7:30" → "seven thirty").

Usage: .venv/bin/python bench/stt_accuracy.py [--quick] [--plugins a,b] [--voices a,b]
"""

from __future__ import annotations

import argparse
import io
import re
import shutil
import subprocess
import sys
import tempfile
import time
import wave
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import soxr

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from ovos_realtime_gateway.speech.stt import OpmTranscriber  # noqa: E402
from test.speech import with_noise  # noqa: E402

# (what the user says, the words the intent needs)
UTTERANCES: list[tuple[str, str]] = [
    ("what time is it", "time"),
    ("what's the time in London", "time london"),
    ("what day is it today", "day today"),
    ("what is the date tomorrow", "date tomorrow"),
    ("what year is it", "year"),
    ("set a timer for five minutes", "timer five minutes"),
    ("set a timer for ten minutes", "timer ten minutes"),
    ("start a timer for thirty seconds", "timer thirty seconds"),
    ("cancel the timer", "cancel timer"),
    ("how much time is left on my timer", "left timer"),
    ("set an alarm for seven thirty", "alarm seven thirty"),
    ("wake me up at six in the morning", "wake six morning"),
    ("what's the weather like today", "weather today"),
    ("will it rain tomorrow", "rain tomorrow"),
    ("what's the weather in Berlin", "weather berlin"),
    ("how cold is it outside", "cold outside"),
    ("what is the temperature in Paris", "temperature paris"),
    ("hello", "hello"),
    ("good morning", "good morning"),
    ("hi there how are you", "how are you"),
    ("thank you", "thank"),
    ("goodbye", "goodbye"),
    ("tell me a joke", "joke"),
    ("what is your name", "your name"),
    ("who are you", "who you"),
    ("what can you do", "can you do"),
    ("call Maria", "call maria"),
    ("send a message to John", "message john"),
    ("remind me to call mom at five", "remind call mom five"),
    ("add milk to my shopping list", "milk shopping list"),
    ("play some music", "play music"),
    ("turn up the volume", "volume"),
    ("stop", "stop"),
    ("pause the music", "pause music"),
    ("turn on the kitchen lights", "on kitchen lights"),
    ("turn off the bedroom light", "off bedroom light"),
    ("what is two plus two", "two plus two"),
    ("how many days until Christmas", "days christmas"),
    ("how tall is Mount Everest", "tall everest"),
    ("who is the president of France", "president france"),
    ("what is the capital of Germany", "capital germany"),
    ("spell the word cat", "spell cat"),
    ("count to ten", "count ten"),
    ("how far away is the moon", "far moon"),
    ("repeat after me hello world", "repeat hello world"),
]
PLUGINS = {
    "pocketsphinx": "ovos-stt-plugin-pocketsphinx",
    "pocketsphinx-streaming": "ovos-realtime-stt-pocketsphinx-streaming",
    "whisper (default)": "ovos-realtime-stt-whisper",
}
SNR_DB = 10.0


def _wav_pcm(data: bytes) -> tuple[np.ndarray, int]:
    with wave.open(io.BytesIO(data)) as reader:
        return np.frombuffer(reader.readframes(reader.getnframes()), dtype="<i2"), reader.getframerate()


def _espeak(variant: str) -> Callable[[str], tuple[np.ndarray, int]]:
    def say(text: str) -> tuple[np.ndarray, int]:
        command = [shutil.which("espeak-ng") or "espeak-ng", "-v", variant, "--stdout", text]
        return _wav_pcm(subprocess.run(command, capture_output=True, check=True).stdout)

    return say


def _flite(voice: str) -> Callable[[str], tuple[np.ndarray, int]]:
    def say(text: str) -> tuple[np.ndarray, int]:
        with tempfile.TemporaryDirectory() as tmp:
            subprocess.run(["flite", "-voice", voice, "-t", text, "-o", f"{tmp}/s.wav"], check=True)
            return _wav_pcm(Path(f"{tmp}/s.wav").read_bytes())

    return say


def _piper() -> Callable[[str], tuple[np.ndarray, int]]:
    from ovos_realtime_gateway.speech.tts import SpeechSynthesizer

    speech = SpeechSynthesizer("ovos-realtime-tts-piper")

    def say(text: str) -> tuple[np.ndarray, int]:
        pcm, rate = speech.synthesize(text)
        return np.frombuffer(pcm, dtype="<i2"), rate

    return say


VOICES: dict[str, Callable[[], Callable[[str], tuple[np.ndarray, int]]]] = {
    "espeak-ng en-us": lambda: _espeak("en-us"),
    "espeak-ng en-us+f3": lambda: _espeak("en-us+f3"),
    "flite slt": lambda: _flite("slt"),
    "flite awb": lambda: _flite("awb"),
    "piper joe": _piper,
}

ONES = "zero one two three four five six seven eight nine ten eleven twelve thirteen fourteen fifteen "
ONES += "sixteen seventeen eighteen nineteen"
TENS = "_ _ twenty thirty forty fifty sixty seventy eighty ninety".split()


def spell(n: int) -> str:
    if n < 20:
        return ONES.split()[n]
    if n < 100:
        return TENS[n // 10] + ("" if n % 10 == 0 else " " + ONES.split()[n % 10])
    if n < 1000:
        rest = n % 100
        return ONES.split()[n // 100] + " hundred" + ("" if rest == 0 else " " + spell(rest))
    return " ".join(spell(int(d)) for d in str(n))


def normalise(text: str) -> list[str]:
    text = text.lower()
    text = re.sub(r"\b(\d{1,2})[:.](\d{2})\b", lambda m: f"{int(m[1])} {int(m[2])}", text)
    text = re.sub(
        r"\b(\d{1,2})(\d{2})\b", lambda m: f"{int(m[1])} {int(m[2])}" if int(m[2]) < 60 else m[0], text
    )
    text = re.sub(r"\d+", lambda m: f" {spell(int(m[0]))} ", text)
    text = re.sub(r"[^a-z' ]", " ", text)
    return [w.strip("'") for w in text.split() if w.strip("'")]


def word_errors(reference: list[str], hypothesis: list[str]) -> int:
    """Levenshtein distance over words (substitutions + deletions + insertions)."""
    previous = list(range(len(hypothesis) + 1))
    for i, ref in enumerate(reference, 1):
        current = [i]
        for j, hyp in enumerate(hypothesis, 1):
            current.append(min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (ref != hyp)))
        previous = current
    return previous[-1]


@dataclass
class Score:
    words: int = 0
    errors: int = 0
    utterances: int = 0
    keywords_heard: int = 0
    audio_s: float = 0.0
    decode_s: float = 0.0
    misses: list[str] = field(default_factory=list)

    def add(self, reference: str, keywords: str, heard: str, audio_s: float, decode_s: float) -> None:
        ref, hyp = normalise(reference), normalise(heard)
        self.words += len(ref)
        self.errors += word_errors(ref, hyp)
        self.utterances += 1
        if all(k in hyp for k in normalise(keywords)):
            self.keywords_heard += 1
        elif len(self.misses) < 3:
            self.misses.append(f"{reference!r} → {heard!r}")
        self.audio_s += audio_s
        self.decode_s += decode_s

    def row(self) -> str:
        wer = 100 * self.errors / max(1, self.words)
        heard = 100 * self.keywords_heard / max(1, self.utterances)
        return f"{wer:6.1f} % {heard:8.1f} % {self.decode_s / max(1e-9, self.audio_s):9.3f}"


def clips(voices: list[str], utterances: list[tuple[str, str]]) -> list[tuple[str, str, str, str, bytes]]:
    """(voice, condition, text, keywords, 16 kHz PCM with 300 ms of silence either side)."""
    out = []
    pad = np.zeros(4800, dtype=np.int16)
    for name in voices:
        say = VOICES[name]()
        for seed, (text, keywords) in enumerate(utterances):
            samples, rate = say(text)
            pcm16k = soxr.resample(samples, rate, 16000).astype(np.int16)
            clean = np.concatenate([pad, pcm16k, pad]).astype("<i2").tobytes()
            out.append((name, "clean", text, keywords, clean))
            out.append((name, f"{SNR_DB:.0f} dB SNR", text, keywords, with_noise(clean, SNR_DB, seed)))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="the first 10 utterances only")
    parser.add_argument(
        "--plugins", default=",".join(PLUGINS), help="comma-separated, from: " + ", ".join(PLUGINS)
    )
    parser.add_argument(
        "--voices", default=",".join(VOICES), help="comma-separated, from: " + ", ".join(VOICES)
    )
    args = parser.parse_args()
    utterances = UTTERANCES[:10] if args.quick else UTTERANCES
    voices = args.voices.split(",")
    audio = clips(voices, utterances)
    print(f"{len(utterances)} utterances x {len(voices)} voices x 2 conditions = {len(audio)} clips")
    scores: dict[tuple[str, str], Score] = {}
    by_voice: dict[tuple[str, str, str], Score] = {}
    for label in args.plugins.split(","):
        transcriber = OpmTranscriber(PLUGINS[label])
        transcriber.warm()
        transcriber.transcribe(audio[0][4], "en-US")  # first-call costs out of the figures
        for voice, condition, text, keywords, pcm in audio:
            start = time.perf_counter()
            heard = transcriber.transcribe(pcm, "en-US")
            elapsed = time.perf_counter() - start
            seconds = len(pcm) / 32000
            for key in ((label, condition),):
                scores.setdefault(key, Score()).add(text, keywords, heard, seconds, elapsed)
            by_voice.setdefault((label, condition, voice), Score()).add(
                text, keywords, heard, seconds, elapsed
            )
    print(f"\n{'plugin':24} {'audio':12} {'WER':>8} {'keywords':>10} {'decode s/s':>10}")
    for (label, condition), score in scores.items():
        print(f"{label:24} {condition:12} {score.row()}")
    print(
        "\nper voice:\n"
        + f"{'plugin':24} {'audio':12} {'voice':20} {'WER':>8} {'keywords':>10} {'decode s/s':>10}"
    )
    for (label, condition, voice), score in by_voice.items():
        print(f"{label:24} {condition:12} {voice:20} {score.row()}")
    print("\nexamples of missed keywords:")
    for (label, condition), score in scores.items():
        for miss in score.misses:
            print(f"  {label} / {condition}: {miss}")


if __name__ == "__main__":
    main()
