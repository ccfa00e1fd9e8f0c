"""JSON decoding for request bodies and client events, with JSON's own number semantics.

`NaN` and `Infinity` are not JSON and are refused. A number with no fractional part (`10.0`)
is an integer in JSON Schema, so it decodes as an int and passes the strict models' integer
fields; float fields accept ints, so nothing else changes.

Hostile documents are refused here, as JSON errors (400 / `invalid_json`), before anything
deeper sees them: nesting deeper than MAX_DEPTH (50k levels raised RecursionError, a 500, in
the parser or later in validation and storage), and strings holding a lone UTF-16 surrogate
(`"\ud800"` decodes, but no UTF-8 store or log can write it).
"""

from __future__ import annotations

import json
import re
from typing import Any

_EXACT_INT_LIMIT = 2**53  # beyond this a float no longer holds every integer
MAX_DEPTH = 64
"""Deeper than any real request or event (OpenAI's deepest bodies are under 10 levels)."""
_SURROGATE = re.compile("[\ud800-\udfff]")


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def _number(text: str) -> float | int:
    value = float(text)
    if value.is_integer() and abs(value) < _EXACT_INT_LIMIT:
        return int(value)
    return value


_DECODER = json.JSONDecoder(parse_constant=_reject_constant, parse_float=_number)
"""Built once: `json.loads` with hooks builds a decoder per call, half the cost of decoding an
audio append (50 a second per session)."""


def loads(text: str | bytes) -> Any:
    """Decode JSON text (raises ValueError or UnicodeDecodeError when invalid or hostile)."""
    if not isinstance(text, str):  # the rest as json.loads does it
        text = text.decode(json.detect_encoding(text), "surrogatepass")
    elif text.startswith("\ufeff"):
        raise json.JSONDecodeError("Unexpected UTF-8 BOM (decode using utf-8-sig)", text, 0)
    try:
        data = _decode(text)
    except RecursionError:
        raise ValueError(f"JSON nested deeper than {MAX_DEPTH} levels") from None
    _check(data)
    return data


def _decode(text: str) -> Any:
    """`_DECODER.decode(text)`: a document with no whitespace around it (every client event an
    SDK sends) skips the two whitespace scans; any other goes the usual way, errors included."""
    try:
        data, end = _DECODER.raw_decode(text)
    except json.JSONDecodeError:
        return _DECODER.decode(text)
    if end != len(text):
        return _DECODER.decode(text)
    return data


def _check(data: Any) -> None:
    """Refuse nesting deeper than MAX_DEPTH and lone surrogates, without recursion."""
    if type(data) is dict and _flat_ascii(data):  # an audio append: nothing to walk
        return
    stack: list[tuple[Any, int]] = [(data, 1)]
    while stack:
        value, depth = stack.pop()
        if isinstance(value, str):
            _check_text(value)
        elif isinstance(value, dict | list):
            if depth > MAX_DEPTH:
                raise ValueError(f"JSON nested deeper than {MAX_DEPTH} levels")
            if isinstance(value, dict):
                for key in value:
                    _check_text(key)
                stack.extend((item, depth + 1) for item in value.values())
            else:
                stack.extend((item, depth + 1) for item in value)


def _flat_ascii(data: dict[str, Any]) -> bool:
    """Every value an ASCII string (and so every key: JSON keys are strings, checked below if not)."""
    for key, value in data.items():
        if type(value) is not str or not value.isascii() or not key.isascii():
            return False
    return True


def _check_text(text: str) -> None:
    if not text.isascii() and _SURROGATE.search(text):  # isascii() is O(1): audio costs nothing
        raise ValueError("a string holds a lone UTF-16 surrogate, which is not text")
