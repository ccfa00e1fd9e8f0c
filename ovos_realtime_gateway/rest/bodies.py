"""Reading JSON request bodies: content type, size, syntax, then the strict model."""

from __future__ import annotations

from typing import TypeVar

from aiohttp import web
from pydantic import BaseModel

from ..protocol import errors, json_text
from ..protocol.validation import validate

ModelT = TypeVar("ModelT", bound=BaseModel)


async def read_json(request: web.Request, model: type[ModelT], *, allow_empty: bool = True) -> ModelT:
    """Parse the body as `model`, raising 413/415/400 envelopes for every kind of bad input."""
    limit = request.client_max_size
    if request.content_length is not None and request.content_length > limit:
        raise errors.body_too_large(limit)
    raw = await request.read()
    if not raw.strip():
        if allow_empty:
            return validate(model, {})
        raise errors.invalid_json("the body is empty")
    content_type = request.headers.get("Content-Type", "")
    if request.content_type != "application/json":
        raise errors.unsupported_content_type(content_type or "(none)")
    try:
        data = json_text.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise errors.invalid_json(str(exc).split(":")[0]) from None
    if not isinstance(data, dict):
        raise errors.ApiError(
            400,
            f"Invalid type for the request body: expected an object, but got {type(data).__name__} instead.",
            code="invalid_type",
        )
    return validate(model, data)
