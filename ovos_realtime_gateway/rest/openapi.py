"""Builds the OpenAPI 3.1 document of the REST API from the models the handlers use.

`python -m ovos_realtime_gateway.rest.openapi` rewrites the shipped `openapi.yaml`; a test fails
when the shipped file and the models drift apart.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel
from pydantic.json_schema import JsonSchemaMode, models_json_schema

from ..protocol.dialect import BetaSessionBody, BetaTranscriptionSessionBody
from ..protocol.session_models import (
    CallReferBody,
    CallRejectBody,
    ClientSecretCreateBody,
    RealtimeSessionRequest,
)
from ..settings import GatewaySettings
from ..version import __version__
from . import schemas

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
    requests: list[type[BaseModel]] = [
        ClientSecretCreateBody,
        BetaSessionBody,
        BetaTranscriptionSessionBody,
        RealtimeSessionRequest,
        CallRejectBody,
        CallReferBody,
    ]
    responses: list[type[BaseModel]] = [
        schemas.ErrorBody,
        schemas.ClientSecretResponse,
        schemas.BetaSessionResponse,
        schemas.BetaTranscriptionSessionResponse,
        schemas.StoredSession,
        schemas.ModelObject,
        schemas.ModelList,
        schemas.Health,
        schemas.Readiness,
    ]
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


def _responses(
    ok_ref: dict[str, Any], errors: list[str], error_ref: dict[str, Any], *, rated: bool = True
) -> dict[str, Any]:
    ok_headers = {**COMMON_HEADERS, **(RATE_HEADERS if rated else {})}
    out: dict[str, Any] = {"200": {"description": "OK", "headers": ok_headers, "content": _json(ok_ref)}}
    for status in errors:
        out[status] = {
            "description": ERROR_STATUSES[status],
            "headers": COMMON_HEADERS,
            "content": _json(error_ref),
        }
    return out


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

    def ref(model: type[BaseModel], mode: JsonSchemaMode = "serialization") -> dict[str, Any]:
        return dict(refs[(model, mode)])

    err = ref(schemas.ErrorBody)
    body_errors = ["400", "401", "403", "413", "415", "429", "500", "503"]
    read_errors = ["401", "403", "404", "429", "500", "503"]

    def post(
        summary: str, op_id: str, body: type[BaseModel], ok: type[BaseModel], tag: str
    ) -> dict[str, Any]:
        return {
            "post": {
                "summary": summary,
                "operationId": op_id,
                "tags": [tag],
                "security": [{"bearer": []}],
                "requestBody": {"required": False, "content": _json(ref(body, "validation"))},
                "responses": _responses(ref(ok), body_errors, err),
            }
        }

    def get(
        summary: str,
        op_id: str,
        ok: type[BaseModel],
        tag: str,
        errors: list[str],
        params: list[dict[str, Any]] | None = None,
        secured: bool = True,
    ) -> dict[str, Any]:
        op: dict[str, Any] = {"summary": summary, "operationId": op_id, "tags": [tag]}
        if params:
            op["parameters"] = params
        if secured:
            op["security"] = [{"bearer": []}]
        op["responses"] = _responses(ref(ok), errors, err, rated=secured)
        return {"get": op}

    def path_param(name: str, description: str) -> dict[str, Any]:
        return {
            "name": name,
            "in": "path",
            "required": True,
            "description": description,
            "schema": {"type": "string"},
        }

    paths: dict[str, Any] = {
        "/v1/realtime/client_secrets": post(
            "Create a client secret (ek_) bound to a realtime or transcription session",
            "createClientSecret",
            ClientSecretCreateBody,
            schemas.ClientSecretResponse,
            "realtime",
        ),
        "/v1/realtime/sessions": post(
            "Create a session and client secret (beta shape, kept for older SDKs)",
            "createBetaSession",
            BetaSessionBody,
            schemas.BetaSessionResponse,
            "beta",
        ),
        "/v1/realtime/transcription_sessions": post(
            "Create a transcription session and client secret (beta shape)",
            "createBetaTranscriptionSession",
            BetaTranscriptionSessionBody,
            schemas.BetaTranscriptionSessionResponse,
            "beta",
        ),
        "/v1/realtime/sessions/{session_id}": get(
            "Retrieve a stored session of the caller's project (ovos-realtime extension)",
            "retrieveSession",
            schemas.StoredSession,
            "realtime",
            read_errors,
            [path_param("session_id", "A `sess_…` id.")],
        ),
        "/v1/realtime/calls": {
            "post": {
                "summary": "Start a WebRTC call: an SDP offer in, the SDP answer out",
                "description": "Either the raw offer (`application/sdp`; the session comes from the `ek_` "
                "secret or the defaults) or `multipart/form-data` with the offer in `sdp` and a GA session "
                "object in `session`. Events then travel on the `oai-events` data channel, audio on RTP.",
                "operationId": "createCall",
                "tags": ["calls"],
                "security": [{"bearer": []}],
                "parameters": [
                    {
                        "name": "model",
                        "in": "query",
                        "required": False,
                        "description": "Model of the call's session (overrides the session's).",
                        "schema": {"type": "string"},
                    }
                ],
                "requestBody": {
                    "required": True,
                    "content": {
                        "application/sdp": {"schema": {"type": "string", "description": "The SDP offer."}},
                        "multipart/form-data": {
                            "schema": {
                                "type": "object",
                                "required": ["sdp"],
                                "properties": {
                                    "sdp": {"type": "string", "description": "The SDP offer."},
                                    "session": ref(RealtimeSessionRequest, "validation"),
                                },
                            },
                            "encoding": {
                                "sdp": {"contentType": "application/sdp"},
                                "session": {"contentType": "application/json"},
                            },
                        },
                    },
                },
                "responses": {
                    "201": {
                        "description": "The SDP answer; the call id is the last segment of `Location`.",
                        "headers": {
                            **COMMON_HEADERS,
                            **RATE_HEADERS,
                            "location": {
                                "description": "`/v1/realtime/calls/rtc_…`",
                                "schema": {
                                    "type": "string",
                                    "pattern": "^/v1/realtime/calls/rtc_[0-9a-f]{32}$",
                                },
                            },
                        },
                        "content": {"application/sdp": {"schema": {"type": "string"}}},
                    },
                    **{
                        status: {
                            "description": ERROR_STATUSES[status],
                            "headers": COMMON_HEADERS,
                            "content": _json(err),
                        }
                        for status in body_errors
                    },
                },
            }
        },
        **{
            f"/v1/realtime/calls/{{call_id}}/{action}": {
                "post": {
                    "summary": summary,
                    "operationId": op_id,
                    "tags": ["calls"],
                    "security": [{"bearer": []}],
                    "parameters": [path_param("call_id", "An `rtc_…` id (from the incoming-call webhook).")],
                    "requestBody": {
                        "required": body is RealtimeSessionRequest,
                        "content": _json(ref(body, "validation")),
                    },
                    "responses": {
                        "200": {"description": "Done.", "headers": {**COMMON_HEADERS, **RATE_HEADERS}},
                        **{
                            status: {
                                "description": ERROR_STATUSES[status],
                                "headers": COMMON_HEADERS,
                                "content": _json(err),
                            }
                            for status in [*body_errors, "404", "409"]
                        },
                    },
                }
            }
            for action, summary, op_id, body in (
                (
                    "accept",
                    "Accept an incoming SIP call with a session configuration",
                    "acceptCall",
                    RealtimeSessionRequest,
                ),
                (
                    "reject",
                    "Reject an incoming SIP call (SIP status, default 603)",
                    "rejectCall",
                    CallRejectBody,
                ),
                ("refer", "Transfer a connected SIP call (SIP REFER)", "referCall", CallReferBody),
            )
        },
        "/v1/realtime/calls/{call_id}/hangup": {
            "post": {
                "summary": "End a call of the caller's project",
                "operationId": "hangupCall",
                "tags": ["calls"],
                "security": [{"bearer": []}],
                "parameters": [path_param("call_id", "An `rtc_…` id (from the `Location` of the call).")],
                "responses": {
                    "200": {"description": "The call ended.", "headers": {**COMMON_HEADERS, **RATE_HEADERS}},
                    **{
                        status: {
                            "description": ERROR_STATUSES[status],
                            "headers": COMMON_HEADERS,
                            "content": _json(err),
                        }
                        for status in read_errors
                    },
                },
            }
        },
        "/v1/models": get(
            "List the models this gateway answers to",
            "listModels",
            schemas.ModelList,
            "models",
            ["401", "403", "429", "500", "503"],
        ),
        "/v1/models/{model}": get(
            "Retrieve a model",
            "retrieveModel",
            schemas.ModelObject,
            "models",
            read_errors,
            [path_param("model", "A model name, e.g. `gpt-realtime`.")],
        ),
        "/talk": {
            "get": {
                "summary": "The talk page: talk to the assistant from a browser (when `talk_page` is on)",
                "operationId": "talkPage",
                "tags": ["talk page"],
                "responses": {
                    "200": {
                        "description": "The page",
                        "headers": COMMON_HEADERS,
                        "content": {"text/html": {"schema": {"type": "string"}}},
                    },
                    "404": {
                        "description": "The talk page is not enabled.",
                        "headers": COMMON_HEADERS,
                        "content": _json(err),
                    },
                },
            }
        },
        "/talk/client_secret": {
            "post": {
                "summary": "A 60-second client secret for the talk page's call (no key; policy-checked)",
                "operationId": "talkPageClientSecret",
                "tags": ["talk page"],
                "responses": _responses(
                    ref(schemas.ClientSecretResponse), ["403", "404", "429", "500", "503"], err
                ),
            }
        },
        "/healthz": get("Liveness", "healthz", schemas.Health, "operations", [], secured=False),
        "/readyz": {
            "get": {
                "summary": "Readiness of the gateway's dependencies",
                "operationId": "readyz",
                "tags": ["operations"],
                "responses": {
                    "200": {
                        "description": "Ready",
                        "headers": COMMON_HEADERS,
                        "content": _json(ref(schemas.Readiness)),
                    },
                    "503": {
                        "description": "A dependency is not ready",
                        "headers": COMMON_HEADERS,
                        "content": _json(ref(schemas.Readiness)),
                    },
                },
            }
        },
        "/metrics": {
            "get": {
                "summary": "Prometheus metrics",
                "operationId": "metrics",
                "tags": ["operations"],
                "responses": {
                    "200": {
                        "description": "Prometheus text format",
                        "headers": COMMON_HEADERS,
                        "content": {"text/plain": {"schema": {"type": "string"}}},
                    }
                },
            }
        },
        "/openapi.yaml": {
            "get": {
                "summary": "This document",
                "operationId": "openapi",
                "tags": ["operations"],
                "responses": {
                    "200": {
                        "description": "OpenAPI 3.1 YAML",
                        "headers": COMMON_HEADERS,
                        "content": {"application/yaml": {"schema": {"type": "string"}}},
                    }
                },
            }
        },
    }
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
