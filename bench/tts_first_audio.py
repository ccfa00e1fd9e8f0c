"""Time to a sentence's first audio: streamed TTS beside the same plugin's batch synthesis.

The gateway's espeak-ng plugin is an OPM `StreamingTTS`: `SpeechSynthesizer.speak` yields audio as
espeak-ng writes it; `synthesize` (the baseline, what a batch plugin or a configured TTS
transformer gets) returns once the whole sentence is done. Both run here in turn, in the same
run, on a short and a long sentence.

Usage: .venv/bin/python bench/tts_first_audio.py [--repeats 30]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from ovos_realtime_gateway.speech.tts import SpeechSynthesizer  # noqa: E402

SENTENCES = {
    "short (1 s)": "It is ten past four.",
    "long (8 s)": "The quick brown fox jumps over the lazy dog, and then it runs far away into the "
    "forest where nobody can find it again for a very long time.",
}


def first_audio_ms(speech: SpeechSynthesizer, sentence: str, streamed: bool) -> float:
    start = time.perf_counter()
    if streamed:
        pieces = speech.speak(sentence, "en-US")
        next(pieces)
        elapsed = time.perf_counter() - start
        pieces.close()
    else:
        speech.synthesize(sentence, "en-US")
        elapsed = time.perf_counter() - start
    return elapsed * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--repeats", type=int, default=30)
    args = parser.parse_args()
    speech = SpeechSynthesizer("ovos-realtime-tts-espeak-ng")
    speech.warm()
    print(f"{'sentence':<14}{'streamed ms':>12}{'batch ms':>10}{'ratio':>8}   (median of {args.repeats})")
    for label, sentence in SENTENCES.items():
        streamed, batch = [], []
        for _ in range(args.repeats):  # interleaved, so both see the same machine
            streamed.append(first_audio_ms(speech, sentence, True))
            batch.append(first_audio_ms(speech, sentence, False))
        s, b = statistics.median(streamed), statistics.median(batch)
        print(f"{label:<14}{s:>12.1f}{b:>10.1f}{s / b:>8.2f}")


if __name__ == "__main__":
    main()
