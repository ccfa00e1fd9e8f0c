"""Our strict request models accept exactly the fields of the installed `openai` SDK's params.

The SDK's `*Param` TypedDicts are the ground truth of what clients send; our pydantic models
add strictness (unknown fields and wrong types are errors). Walking both trees of field paths
catches drift whenever the SDK is upgraded.
"""

from __future__ import annotations

import typing
from collections.abc import Iterable, Sequence
from typing import Any

import pytest
from openai.types.beta.realtime import SessionCreateParams, TranscriptionSessionCreateParams
from openai.types.realtime import ClientSecretCreateParams
from pydantic import BaseModel
from typing_extensions import is_typeddict

from ovos_realtime_gateway.protocol.dialect import BetaSessionBody, BetaTranscriptionSessionBody
from ovos_realtime_gateway.protocol.session_models import ClientSecretCreateBody


def _members(tp: Any) -> Iterable[Any]:
    """The types a hint may hold, through Annotated/Optional/Union/containers (not dicts)."""
    origin = typing.get_origin(tp)
    if origin is typing.Annotated:
        yield from _members(typing.get_args(tp)[0])
    elif origin in (typing.Union, getattr(__import__("types"), "UnionType", None)):
        for arg in typing.get_args(tp):
            yield from _members(arg)
    elif origin in (list, tuple, set, Sequence, Iterable) or str(origin).endswith(
        ("Iterable'>", "Sequence'>")
    ):
        for arg in typing.get_args(tp):
            yield from _members(arg)
    elif origin is not None and getattr(origin, "__name__", "") in (
        "Required",
        "NotRequired",
        "SequenceNotStr",
    ):
        for arg in typing.get_args(tp):
            yield from _members(arg)
    else:
        yield tp


def paths(tp: Any, prefix: str = "") -> set[str]:
    found: set[str] = set()
    for member in _members(tp):
        if is_typeddict(member):
            fields = typing.get_type_hints(member)
        elif isinstance(member, type) and issubclass(member, BaseModel):
            fields = {name: info.annotation for name, info in member.model_fields.items()}
        else:
            continue
        for name, hint in fields.items():
            here = f"{prefix}{name}"
            found.add(here)
            found |= paths(hint, here + ".")
    return found


CASES = [
    ("client_secrets", ClientSecretCreateParams, ClientSecretCreateBody, {"max_session_seconds"}),
    ("beta sessions", SessionCreateParams, BetaSessionBody, set()),
    ("beta transcription_sessions", TranscriptionSessionCreateParams, BetaTranscriptionSessionBody, set()),
]


@pytest.mark.parametrize(("name", "sdk_param", "ours", "extra_ok"), CASES, ids=[c[0] for c in CASES])
def test_request_models_match_the_sdk(
    name: str, sdk_param: Any, ours: type[BaseModel], extra_ok: set[str]
) -> None:
    sdk_paths = paths(sdk_param)
    our_paths = paths(ours)
    assert len(sdk_paths) > 10, "the walk found too little to be meaningful"
    missing = sdk_paths - our_paths
    assert not missing, f"{name}: the SDK sends fields we would reject: {sorted(missing)}"
    surplus = our_paths - sdk_paths - extra_ok
    assert not surplus, f"{name}: we accept fields the SDK does not know: {sorted(surplus)}"
