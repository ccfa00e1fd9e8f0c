"""Turn pydantic validation errors into OpenAI's error codes and dotted `param` paths.

OpenAI reports the first problem only, as `unknown_parameter`, `missing_required_parameter`,
`invalid_value`, `invalid_type`, `integer_below_min_value`, … with `param` such as
`session.tools[3].description`. Discriminated-union tags that pydantic adds to an error's
location are dropped by walking the location alongside the input.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError
from pydantic_core import ErrorDetails

from .errors import ApiError, quote_list

ModelT = TypeVar("ModelT", bound=BaseModel)

_TYPE_NAMES = {
    "int": "an integer",
    "float": "a number",
    "str": "a string",
    "string": "a string",
    "bool": "a boolean",
    "dict": "an object",
    "list": "an array",
    "model": "an object",
    "typed_dict": "an object",
    "none": "null",
}


def json_type_name(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int):
        return "an integer"
    if isinstance(value, float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "an array"
    if isinstance(value, dict):
        return "an object"
    return type(value).__name__


def param_path(loc: Sequence[int | str], data: Any) -> str:
    """Dotted path of `loc` in `data`, skipping the union-tag parts pydantic adds.

    A string that is not a key of the current object is a union tag unless it is the last
    element (then it names a missing field); below a scalar, the rest are union member names.
    """
    parts: list[str] = []
    current = data
    last = len(loc) - 1
    for index, element in enumerate(loc):
        if isinstance(current, list) and isinstance(element, int):
            parts.append(f"[{element}]")
            current = current[element] if 0 <= element < len(current) else None
        elif isinstance(current, dict) and isinstance(element, str):
            if element in current or index == last:
                parts.append(("." if parts else "") + element)
                current = current.get(element)
        else:
            break
    return "".join(parts)


def _expected_for(error: ErrorDetails) -> str:
    kind = error["type"].split("_")[0]
    return _TYPE_NAMES.get(kind, "a valid value")


def api_error_from(error: ErrorDetails, data: Any, prefix: str = "") -> ApiError:
    """The ApiError OpenAI would give for one pydantic error."""
    param = param_path(error["loc"], data)
    if prefix:
        param = f"{prefix}.{param}" if param else prefix
    kind = error["type"]
    value = error.get("input")
    ctx = error.get("ctx") or {}
    if kind == "extra_forbidden":
        return ApiError(400, f"Unknown parameter: '{param}'.", code="unknown_parameter", param=param)
    if kind == "missing":
        return ApiError(
            400, f"Missing required parameter: '{param}'.", code="missing_required_parameter", param=param
        )
    if kind == "union_tag_not_found":
        tag = ctx.get("discriminator", "'type'").strip("'")
        param = f"{param}.{tag}" if param else tag
        return ApiError(
            400, f"Missing required parameter: '{param}'.", code="missing_required_parameter", param=param
        )
    if kind in ("literal_error", "union_tag_invalid", "enum"):
        expected = ctx.get("expected_tags") or ctx.get("expected") or ""
        options = [o.strip().strip("'\"") for o in str(expected).replace(" or ", ",").split(",") if o.strip()]
        if kind == "union_tag_invalid":
            value = ctx.get("tag", value)
            tag = str(ctx.get("discriminator", "'type'")).strip("'")
            if tag.endswith("()"):  # a callable discriminator: our tags are `type` or `message:<role>`
                tag = "type"
                if ":" in str(value):
                    tag, value = "role", str(value).split(":", 1)[1]
                    options = [o.split(":", 1)[1] for o in options if ":" in o]
                else:
                    options = [o for o in options if ":" not in o] + (
                        ["message"] if any(":" in o for o in options) else []
                    )
            param = f"{param}.{tag}" if param else tag
        return ApiError(
            400,
            f"Invalid value: '{value}'. Supported values are: {quote_list(options)}.",
            code="invalid_value",
            param=param,
        )
    if kind in ("greater_than_equal", "greater_than"):
        bound = ctx.get("ge", ctx.get("gt"))
        op = ">=" if kind == "greater_than_equal" else ">"
        noun = "integer" if isinstance(value, int) else "decimal"
        return ApiError(
            400,
            f"Invalid '{param}': {noun} below minimum value. Expected a value {op} {bound}, "
            f"but got {value} instead.",
            code=f"{noun}_below_min_value",
            param=param,
        )
    if kind in ("less_than_equal", "less_than"):
        bound = ctx.get("le", ctx.get("lt"))
        op = "<=" if kind == "less_than_equal" else "<"
        noun = "integer" if isinstance(value, int) else "decimal"
        return ApiError(
            400,
            f"Invalid '{param}': {noun} above maximum value. Expected a value {op} {bound}, "
            f"but got {value} instead.",
            code=f"{noun}_above_max_value",
            param=param,
        )
    if kind == "string_too_long":
        return ApiError(
            400,
            f"Invalid '{param}': string too long. Expected a string with maximum length "
            f"{ctx.get('max_length')}, but got a string with length {len(str(value))} instead.",
            code="string_above_max_length",
            param=param,
        )
    if kind == "string_too_short":
        return ApiError(
            400,
            f"Invalid '{param}': string too short. Expected a string with minimum length "
            f"{ctx.get('min_length')}, but got an empty string instead.",
            code="string_below_min_length",
            param=param,
        )
    if kind == "too_long":
        return ApiError(
            400,
            f"Invalid '{param}': array too long. Expected an array with maximum length "
            f"{ctx.get('max_length')}, but got an array with length {ctx.get('actual_length')} instead.",
            code="array_above_max_length",
            param=param,
        )
    if kind == "too_short":
        return ApiError(
            400,
            f"Invalid '{param}': array too short. Expected an array with minimum length "
            f"{ctx.get('min_length')}, but got an array with length {ctx.get('actual_length')} instead.",
            code="array_below_min_length",
            param=param,
        )
    if kind == "value_error":
        message = str(ctx.get("error") or error["msg"])
        return ApiError(400, f"Invalid value for '{param}': {message}", code="invalid_value", param=param)
    where = f"'{param}'" if param else "the request body"
    expected, got = _expected_for(error), json_type_name(value)
    return ApiError(
        400,
        f"Invalid type for {where}: expected {expected}, but got {got} instead.",
        code="invalid_type",
        param=param or None,
    )


def validate(model: type[ModelT], data: Any, prefix: str = "") -> ModelT:
    """Validate `data` as `model`, raising the first problem as an OpenAI-shaped ApiError."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        errors = exc.errors(include_url=False)
        raise api_error_from(first_error(errors), data, prefix) from None


def first_error(errors: list[ErrorDetails]) -> ErrorDetails:
    """Prefer the most specific error: unknown and missing parameters before type mismatches."""
    order = {"extra_forbidden": 0, "missing": 1, "union_tag_not_found": 1, "union_tag_invalid": 2}
    return min(errors, key=lambda e: (order.get(e["type"], 3), -len(e["loc"])))
