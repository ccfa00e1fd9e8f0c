"""What the policy is asked about: the input document every entry point builds the same way.

`{principal, project, action, resource, request}`, where `resource` always says what is acted on
(`kind`, `id`, `project_id`, `owner_key_id`, and for sessions and calls the `model` and `voice`
they run with). docs/security.md documents the schema; a policy author tests against it with
`ovos-realtime policy eval`.
"""

from __future__ import annotations

from typing import Any

from .auth import Principal

Resource = dict[str, Any]


def resource(
    kind: str,
    resource_id: str | None = None,
    project_id: str | None = None,
    owner_key_id: str | None = None,
    **attributes: Any,
) -> Resource:
    """A resource; what is None is left out (Rego's `not input.resource.project_id` holds only for
    an absent field, not for null): `project_id` is absent only for what belongs to no project
    (a model, an id that matches nothing)."""
    fields = {"kind": kind, "id": resource_id, "project_id": project_id, "owner_key_id": owner_key_id}
    return {k: v for k, v in {**fields, **attributes}.items() if v is not None}


def session_resource(
    config: dict[str, Any],
    project_id: str,
    session_id: str | None = None,
    owner_key_id: str | None = None,
    **attributes: Any,
) -> Resource:
    """A realtime or transcription session (no id: one being created), with its model and voice."""
    output = (config.get("audio") or {}).get("output") or {}
    transcription = ((config.get("audio") or {}).get("input") or {}).get("transcription") or {}
    return resource(
        "session",
        session_id,
        project_id,
        owner_key_id,
        type=config.get("type"),
        model=config.get("model"),
        voice=output.get("voice"),
        transcription_model=transcription.get("model"),
        **attributes,
    )


def call_resource(
    call_id: str | None,
    project_id: str,
    transport: str,
    owner_key_id: str | None = None,
    config: dict[str, Any] | None = None,
    **attributes: Any,
) -> Resource:
    """A WebRTC or SIP call; with `config`, the model and voice its session runs with."""
    session = session_resource(config, project_id) if config is not None else {}
    fields = {k: session[k] for k in ("model", "voice") if k in session}
    return resource("call", call_id, project_id, owner_key_id, transport=transport, **fields, **attributes)


def policy_input(
    principal: Principal, action: str, target: Resource | None, request: dict[str, Any]
) -> dict[str, Any]:
    return {
        "principal": principal.policy_input(),
        "project": {"id": principal.project_id},
        "action": action,
        "resource": target or {},
        "request": request,
    }
