"""The device-microphone bridge: realtime sessions opened with the model `ovos-microphone` feed
their input audio, at 16 kHz, to the device's listener through `/ovos/microphone`
(`transports/microphone.py`, read by the `ovos-microphone-plugin-realtime` OPM microphone in
ovos-dinkum-listener). This module holds the session hooks and who may feed and listen.

The microphone belongs to the device's owner: the project `microphone_project`. Only its
principals may feed it or listen to it — the policy sees the owner as `resource.project_id`, and
this module checks it again — and one session feeds it at a time."""

from __future__ import annotations

from typing import Any

from ..audio import InputTranscoder
from ..engine.conversation import Conversation
from ..engine.response import ResponseRun
from ..engine.session import SessionHooks
from ..protocol import errors
from ..protocol.session_config import Config
from ..security.auth import Principal
from ..security.gate import Caller
from ..security.policy_input import resource
from ..services import GatewayServices
from .microphone_hub import MICROPHONE_RESOURCE, MicrophoneHub

MICROPHONE_MODEL = "ovos-microphone"


class MicrophoneFeed(SessionHooks):
    """Session hooks of a microphone session: appended audio goes to the hub, not the buffer."""

    def __init__(
        self, hub: MicrophoneHub, session_id: str, inner: SessionHooks, session_format: dict[str, Any]
    ) -> None:
        self.hub = hub
        self.session_id = session_id
        self.inner = inner
        self.transcoder = InputTranscoder(session_format)

    async def config_changed(self, config: Config) -> None:
        await self.inner.config_changed(config)

    async def items_changed(self, conversation: Conversation) -> None:
        await self.inner.items_changed(conversation)

    def rate_limits(self) -> list[dict[str, Any]]:
        return self.inner.rate_limits()

    def response_finished(self, run: ResponseRun) -> None:
        self.inner.response_finished(run)

    def input_audio(self, audio: bytes) -> bool:
        pcm = self.transcoder.feed(audio)
        if pcm.size:
            self.hub.publish(self.session_id, pcm.astype("<i2").tobytes())
        return True


async def admit_microphone(
    services: GatewayServices,
    caller: Caller,
    action: str,
    principal: Principal | None = None,
    session_id: str | None = None,
) -> Principal:
    """Admit `microphone.feed` / `microphone.listen` for the owner's project only (403 otherwise;
    404 when `microphone_project` is unset: the bridge is off). `principal`: the feeding session's,
    already authenticated; `session_id`: the session that would feed it."""
    owner_name = services.settings.microphone_project
    if owner_name is None:
        raise errors.not_found("The device microphone is not shared on this gateway (`microphone_project`).")
    owner, _ = await services.store.ensure_project(owner_name)
    target = resource("microphone", MICROPHONE_RESOURCE, owner.id, session_id=session_id)
    gate = services.gate
    principal, _ = await gate.guard(caller, action, target, transport="websocket", principal=principal)
    if principal.project_id != owner.id:  # the second line, whatever a custom policy says
        raise errors.permission_denied("The device microphone belongs to another project.")
    return principal


def microphone_in_use() -> errors.ApiError:
    return errors.ApiError(
        409,
        "The device microphone is in use by another session; one session feeds it at a time.",
        type="invalid_request_error",
        code="microphone_in_use",
    )
