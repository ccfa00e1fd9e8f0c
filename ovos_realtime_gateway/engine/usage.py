"""What `usage` means here: honest counts, documented in docs/protocol.md.

Text tokens are counted by a simple tokenizer (words and punctuation marks); audio tokens are
derived from duration the way OpenAI bills them (input: 1 token per 100 ms; output: 1 per 50 ms).
"""

from __future__ import annotations

import math
import re
from typing import Any

_TOKEN = re.compile(r"\w+|[^\w\s]", re.UNICODE)


def text_tokens(text: str) -> int:
    return len(_TOKEN.findall(text))


def input_audio_tokens(ms: float) -> int:
    return math.ceil(ms / 100) if ms > 0 else 0


def output_audio_tokens(ms: float) -> int:
    return math.ceil(ms / 50) if ms > 0 else 0


def response_usage(input_text: int, input_audio: int, output_text: int, output_audio: int) -> dict[str, Any]:
    inputs = input_text + input_audio
    outputs = output_text + output_audio
    return {
        "total_tokens": inputs + outputs,
        "input_tokens": inputs,
        "output_tokens": outputs,
        "input_token_details": {
            "text_tokens": input_text,
            "audio_tokens": input_audio,
            "image_tokens": 0,
            "cached_tokens": 0,
            "cached_tokens_details": {"text_tokens": 0, "audio_tokens": 0, "image_tokens": 0},
        },
        "output_token_details": {"text_tokens": output_text, "audio_tokens": output_audio},
    }
