"""The route table of the REST API, nothing else."""

from __future__ import annotations

from aiohttp import web

from ..transports.microphone import microphone_listener
from ..transports.websocket import realtime_websocket
from . import beta_sessions, calls, client_secrets, health, models, sessions, talk_page


def add_routes(app: web.Application) -> None:
    app.router.add_get("/healthz", health.healthz)
    app.router.add_get("/readyz", health.readyz)
    app.router.add_get("/metrics", health.metrics)
    app.router.add_get("/openapi.yaml", health.openapi)
    app.router.add_post("/v1/realtime/client_secrets", client_secrets.create_client_secret)
    app.router.add_post("/v1/realtime/sessions", beta_sessions.create_session)
    app.router.add_post("/v1/realtime/transcription_sessions", beta_sessions.create_transcription_session)
    app.router.add_get("/v1/realtime/sessions/{session_id}", sessions.retrieve_session)
    app.router.add_get("/v1/realtime", realtime_websocket)
    app.router.add_post("/v1/realtime/calls", calls.create_call)
    app.router.add_post("/v1/realtime/calls/{call_id}/hangup", calls.hangup_call)
    app.router.add_post("/v1/realtime/calls/{call_id}/accept", calls.accept_call)
    app.router.add_post("/v1/realtime/calls/{call_id}/reject", calls.reject_call)
    app.router.add_post("/v1/realtime/calls/{call_id}/refer", calls.refer_call)
    app.router.add_get("/v1/models", models.list_models)
    app.router.add_get("/v1/models/{model}", models.retrieve_model)
    app.router.add_get("/ovos/microphone", microphone_listener)
    app.router.add_get("/talk", talk_page.talk_page)
    app.router.add_post("/talk/client_secret", talk_page.talk_client_secret)
