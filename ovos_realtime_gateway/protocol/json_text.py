"""JSON decoding for request bodies and client events, with JSON's own number semantics.

`NaN` and `Infinity` are not JSON and are refused. A number with no fractional part (`10.0`)
is an integer in JSON Schema, so it decodes as an int and passes the strict models' integer
fields; float fields accept ints, so nothing else changes.
"""

from __future__ import annotations

import json
from typing import Any

_EXACT_INT_LIMIT = 2**53  # beyond this a float no longer holds every integer


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not valid JSON")


def _number(text: str) -> float | int:
    value = float(text)
    if value.is_integer() and abs(value) < _EXACT_INT_LIMIT:
        return int(value)
    return value


def loads(text: str | bytes) -> Any:
    """Decode JSON text (raises ValueError, RecursionError or UnicodeDecodeError when invalid)."""
    return json.loads(text, parse_constant=_reject_constant, parse_float=_number)
