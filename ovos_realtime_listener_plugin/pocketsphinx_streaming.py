"""A streaming pocketsphinx STT plugin for ovos-plugin-manager (`opm.stt`, an OPM `StreamingSTT`).

The published ovos-stt-plugin-pocketsphinx decodes a whole utterance once it has ended, so a
turn's transcript waits for the decoding of all of it (~200 ms for a short question on a PC).
This one decodes while the user speaks: each chunk is decoded on the plugin's stream thread as
it arrives, and the end of the utterance leaves only pocketsphinx's final pass (~40 ms). The
model is the same (the English one the SpeechRecognition package ships, or the configured
`acoustic-model` / `language-model` / `pronounciation-dictionary`). Transcripts are alike but not
identical: pocketsphinx normalises each utterance by a cepstral mean carried over from the
previous ones, and a word can come out differently (docs/performance.md has a comparison).
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterable
from os.path import isdir, isfile
from queue import Queue
from typing import Any

from ovos_plugin_manager.templates.stt import StreamingSTT, StreamThread


def _model_files(config: dict[str, Any]) -> tuple[str, str, str]:
    from ovos_stt_plugin_pocketsphinx.recognizer import PocketSphinxRecognizer

    hmm, lm, dictionary = PocketSphinxRecognizer.get_default_english_model()
    configured_hmm = config.get("acoustic-model")
    configured_lm = config.get("language-model")
    configured_dict = config.get("pronounciation-dictionary")
    return (
        configured_hmm if configured_hmm and isdir(configured_hmm) else hmm,
        configured_lm if configured_lm and isfile(configured_lm) else lm,
        configured_dict if configured_dict and isfile(configured_dict) else dictionary,
    )


class PocketsphinxStream(StreamThread):  # type: ignore[misc]  # OVOS's base class is untyped
    """Decodes one utterance: 16 kHz 16-bit mono chunks from the queue until None."""

    def __init__(self, queue: Queue[bytes | None], language: str, decoder: Any) -> None:
        super().__init__(queue, language)
        self.daemon = True
        self.decoder = decoder
        self.error: BaseException | None = None
        self._done = threading.Event()

    def handle_audio_stream(self, audio: Iterable[bytes], language: str) -> None:
        try:
            self.decoder.start_utt()
            try:
                for chunk in audio:
                    self.decoder.process_raw(chunk, False, False)
            finally:
                self.decoder.end_utt()
            hypothesis = self.decoder.hyp()
            self.text = hypothesis.hypstr if hypothesis is not None else ""
        except BaseException as exc:  # handed to the caller of finalize
            self.error = exc
        finally:
            self._done.set()

    def finalize(self) -> str:
        """The utterance's transcript, once the decoder has seen all of it (OPM calls this right
        after queueing the end, before joining the thread)."""
        self._done.wait()
        if self.error is not None:
            raise RuntimeError(f"pocketsphinx failed: {self.error}") from self.error
        return str(self.text or "")


class PocketsphinxStreamingSTT(StreamingSTT):  # type: ignore[misc]  # OVOS's base class is untyped
    def __init__(self, config: dict[str, Any] | None = None) -> None:
        super().__init__(config or {})
        from pocketsphinx import Config, Decoder

        hmm, lm, dictionary = _model_files(self.config)
        decoder_config = Config(hmm=hmm, lm=lm, dict=dictionary, logfn=os.devnull)
        self.decoder = Decoder(decoder_config)

    def create_streaming_thread(self) -> PocketsphinxStream:
        return PocketsphinxStream(self.queue, self.lang, self.decoder)

    @classmethod
    def available_languages(cls) -> set[str]:
        return {"en-US"}
