"""Builds the OpenAPI 3.1 document of the REST API from the route table (`routes.py`) and the
models it names.

`python -m ovos_realtime_gateway.rest.openapi` rewrites the shipped `openapi.yaml`; a test fails
when the shipped file and the models drift apart.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel
from pydantic.json_schema import JsonSchemaMode, models_json_schema

from ..settings import GatewaySettings
from ..version import __version__
from . import schemas
from .routes import ROUTES, Param, Reply, Route

REF = "#/components/schemas/{model}"
JSON = "application/json"
ERROR_STATUSES = {
    "400": "Invalid request: the body, a field or a value is wrong (the error names the `param`).",
    "401": "Missing, wrong or expired credentials.",
    "403": "The policy denied this action for this key.",
    "404": "No such resource in the caller's project.",
    "409": "The call is not in a state that allows this (already accepted, not connected).",
    "405": "Method not allowed on this path.",
    "413": "Request body too large.",
    "415": "Unsupported Content-Type (JSON; for calls, application/sdp or multipart/form-data).",
    "429": "Rate limit exceeded; see `retry-after`.",
    "500": "Unexpected server error; the x-request-id header identifies it in the logs.",
    "503": "The access policy could not be evaluated.",
}
COMMON_HEADERS = {
    "x-request-id": {
        "description": "Request id (`req_` + 32 hex), also in logs and audit rows.",
        "schema": {"type": "string", "pattern": "^req_[0-9a-f]{32}$"},
    },
    "openai-processing-ms": {
        "description": "Server processing time in milliseconds.",
        "schema": {"type": "string"},
    },
    "openai-version": {"description": "API version date.", "schema": {"type": "string"}},
}
RATE_HEADERS = {
    "x-ratelimit-limit-requests": {
        "description": "Requests per minute allowed (tighter of project and key).",
        "schema": {"type": "string"},
    },
    "x-ratelimit-remaining-requests": {
        "description": "Requests left in the current window.",
        "schema": {"type": "string"},
    },
    "x-ratelimit-reset-requests": {
        "description": "Time until the window is full again, e.g. `6m0s`.",
        "schema": {"type": "string"},
    },
}


def _schemas() -> tuple[dict[Any, Any], dict[str, Any]]:
    """The JSON schemas of every model the route table names (request bodies: as validated;
    replies: as serialized), with `$ref`s to them."""
    requests: list[type[BaseModel]] = []
    responses: list[type[BaseModel]] = [schemas.ErrorBody]
    for route in ROUTES:
        if isinstance(route.body, type) and route.body not in requests:
            requests.append(route.body)
        for reply in route.replies:
            if reply.model is not None and reply.model not in responses:
                responses.append(reply.model)
    pairs: list[tuple[type[BaseModel], JsonSchemaMode]] = [(m, "validation") for m in requests]
    pairs += [(m, "serialization") for m in responses]
    refs, defs = models_json_schema(pairs, ref_template=REF)
    return refs, _any_of_untagged(defs.get("$defs", {}))


def _any_of_untagged(node: Any) -> Any:
    """`oneOf` without a discriminator becomes `anyOf`.

    Pydantic renders callable-discriminated unions (the audio formats, where a missing `type`
    means `audio/pcm`) as `oneOf`; `{}` then matches every member and a validator would call it
    invalid, though the server (like OpenAI) accepts it as PCM.
    """
    if isinstance(node, list):
        return [_any_of_untagged(value) for value in node]
    if not isinstance(node, dict):
        return node
    out = {key: _any_of_untagged(value) for key, value in node.items()}
    if "oneOf" in out and "discriminator" not in out:
        out["anyOf"] = out.pop("oneOf")
    return out


def _json(ref: dict[str, Any]) -> dict[str, Any]:
    return {JSON: {"schema": ref}}


def _reply(reply: Reply, ref: Callable[[type[BaseModel]], dict[str, Any]]) -> dict[str, Any]:
    headers = COMMON_HEADERS
    if reply.rated or reply.headers:
        headers = {**COMMON_HEADERS, **(RATE_HEADERS if reply.rated else {}), **reply.headers}
    out: dict[str, Any] = {"description": reply.description, "headers": headers}
    if reply.model is not None:
        out["content"] = _json(ref(reply.model))
    elif reply.media is not None:
        out["content"] = {reply.media: {"schema": {"type": "string"}}}
    return out


def _param(param: Param) -> dict[str, Any]:
    return {
        "name": param.name,
        "in": param.where,
        "required": param.where == "path",
        "description": param.description,
        "schema": {"type": "string"},
    }


def _operation(route: Route, refs: dict[Any, Any], error: dict[str, Any]) -> dict[str, Any]:
    """One operation of the document, from its row in the route table."""

    def ref(model: type[BaseModel], mode: JsonSchemaMode = "serialization") -> dict[str, Any]:
        return dict(refs[(model, mode)])

    op: dict[str, Any] = {"summary": route.summary}
    if route.description is not None:
        op["description"] = route.description
    op["operationId"] = route.operation_id
    op["tags"] = [route.tag]
    if route.params:
        op["parameters"] = [_param(param) for param in route.params]
    if route.secured:
        op["security"] = [{"bearer": []}]
    if isinstance(route.body, type):
        op["requestBody"] = {"required": route.body_required, "content": _json(ref(route.body, "validation"))}
    elif route.body is not None:
        op["requestBody"] = route.body(lambda model: ref(model, "validation"))
    responses = {reply.status: _reply(reply, ref) for reply in route.replies}
    for status in route.errors:
        responses[status] = {
            "description": ERROR_STATUSES[status],
            "headers": COMMON_HEADERS,
            "content": _json(error),
        }
    op["responses"] = responses
    return op


# Request schemas whose `model` names a realtime model, and those naming a transcription model.
REALTIME_MODEL_FIELDS = ("RealtimeSessionRequest", "BetaSessionBody")
TRANSCRIPTION_MODEL_FIELDS = ("Transcription", "BetaTranscription")


def _restrict_models(components: dict[str, Any], names: tuple[str, ...], models: Sequence[str]) -> None:
    """The model names a gateway accepts are configuration: state them as an enum."""
    for name in names:
        field = components[name]["properties"]["model"]
        for option in field.get("anyOf", [field]):
            if option.get("type") == "string":
                option["enum"] = list(models)


def build(settings: GatewaySettings | None = None) -> dict[str, Any]:
    """The document for `settings` (the shipped file: the default settings)."""
    settings = settings or GatewaySettings()
    refs, components = _schemas()
    _restrict_models(components, REALTIME_MODEL_FIELDS, settings.models)
    _restrict_models(components, TRANSCRIPTION_MODEL_FIELDS, settings.transcription_models)
    error = dict(refs[(schemas.ErrorBody, "serialization")])
    paths: dict[str, Any] = {}
    for route in ROUTES:
        if route.operation_id is not None:
            paths.setdefault(route.path, {})[route.method.lower()] = _operation(route, refs, error)
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "ovos-realtime gateway",
            "version": __version__,
            "description": "OpenAI-Realtime-compatible REST API served by OpenVoiceOS. The WebSocket "
            "endpoint `/v1/realtime` is documented in docs/protocol.md.",
        },
        "servers": [{"url": "http://127.0.0.1:8080"}],
        "paths": paths,
        "components": {
            "schemas": components,
            "securitySchemes": {
                "bearer": {
                    "type": "http",
                    "scheme": "bearer",
                    "description": "A project key (`sk-ovos-…`) or, where allowed, a client secret (`ek_…`).",
                }
            },
        },
    }


def render(settings: GatewaySettings | None = None) -> str:
    return yaml.safe_dump(build(settings), sort_keys=False, width=100, allow_unicode=True)


def main() -> None:
    target = Path(__file__).with_name("openapi.yaml")
    target.write_text(render())
    sys.stderr.write(f"wrote {target}\n")


if __name__ == "__main__":
    main()
