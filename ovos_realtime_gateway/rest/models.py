"""`GET /v1/models` and `GET /v1/models/{model}`: the model names this gateway answers to."""

from __future__ import annotations

from typing import Any

from aiohttp import web

from ..protocol import errors
from ..security.policy_input import resource
from ..services import SERVICES, GatewayServices
from .access import guard


def _model(services: GatewayServices, name: str) -> dict[str, Any]:
    return {"id": name, "object": "model", "created": int(services.started_at), "owned_by": "ovos-realtime"}


def _all(services: GatewayServices) -> list[str]:
    return [*services.settings.models, *services.settings.transcription_models]


async def list_models(request: web.Request) -> web.Response:

    services = request.app[SERVICES]
    await guard(request, "models.list", resource("model"))
    return web.json_response({"object": "list", "data": [_model(services, m) for m in _all(services)]})


async def retrieve_model(request: web.Request) -> web.Response:

    services = request.app[SERVICES]
    name = request.match_info["model"]
    await guard(request, "models.read", resource("model", name))
    if name not in _all(services):
        raise errors.ApiError(
            404,
            f"The model '{name}' does not exist or you do not have access to it.",
            code="model_not_found",
        )
    return web.json_response(_model(services, name))
