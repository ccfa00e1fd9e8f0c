"""Audio formats and the streaming transcoders between a session's format and the pipeline's."""

from .chunking import DeltaChunker
from .formats import PCM16_24K, PCMA, PCMU, PIPELINE, AudioFormat
from .transcode import InputTranscoder, OutputTranscoder

__all__ = [
    "PCM16_24K",
    "PCMA",
    "PCMU",
    "PIPELINE",
    "AudioFormat",
    "DeltaChunker",
    "InputTranscoder",
    "OutputTranscoder",
]
