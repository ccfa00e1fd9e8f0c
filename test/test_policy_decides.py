"""The policy decides (issue 13): the same clients, against the same gateway and data, once under a
custom Rego file and once under the default policy — only `policy_file` differs. The custom policy
forbids one model, switches the device microphone off, refuses the SIP trunk's calls and keeps
calls from being hung up or watched: REST (client secrets, call control), the WebSocket (a
session, a sideband), WebRTC, SIP and the microphone (feed and listen) each refuse with their own
OpenAI-shaped error, and all of it works again under the default policy.

The custom policy also lets every project touch every other project's resources: the gateway's
own checks (the second line) still answer 404 for another project's session and 403 for another
project's microphone, and the audit/metrics show who refused (the policy under the default, the
Python check under the custom one)."""

from __future__ import annotations

import asyncio
import json
import re
from pathlib import Path
from typing import Any

import aiohttp
import openai
import pytest
from openai.types.realtime import RealtimeSessionCreateRequestParam

from .conftest import SdkFactory
from .gateway_process import GatewayProcess, create_key, http
from .realtime_helpers import EventReader, ws_url
from .sip_peer import PhoneCall, SipPeer
from .test_sip_calls import free_udp_port
from .test_webrtc_calls import place_call
from .webrtc_peer import CallPeer

pytestmark = pytest.mark.slow
FORBIDDEN_MODEL = "gpt-realtime-2"

CUSTOM_POLICY = f"""
package ovos_realtime

import rego.v1

deny contains "The model {FORBIDDEN_MODEL} is not allowed on this device." if {{
	input.resource.model == "{FORBIDDEN_MODEL}"
}}

# (for its owner's keys: another project's are the gateway's own check's to refuse, below)
deny contains "The device microphone is switched off." if {{
	input.resource.kind == "microphone"
	input.principal.project_id == input.resource.project_id
}}

deny contains "Phone calls are switched off." if input.action == "sip.invite"

deny contains "Calls are ended by their callers and watched by nobody." if {{
	input.action == "calls.manage"
	input.resource.operation in {{"hangup", "attach"}}
}}

# Everything else is allowed, even across projects: the gateway's own checks keep tenants apart.
decision := {{"allow": count(deny) == 0, "reason": concat(" ", deny)}}
"""


def _gateway(tmp_path: Path, data_dir: Path, name: str, policy: str | None) -> GatewayProcess:
    settings: dict[str, Any] = {
        "microphone_project": "home",
        "sip": {"enabled": True, "port": free_udp_port(), "project": "home", "ring_timeout_seconds": 30},
    }
    if policy is not None:
        path = tmp_path / f"{name}.rego"
        path.write_text(policy)
        settings["policy_file"] = str(path)
    config = tmp_path / f"{name}.json"
    config.write_text(json.dumps(settings))
    return GatewayProcess(data_dir, "--config", str(config), log_name=name)


async def _first_event(url: str, token: str) -> tuple[dict[str, Any], int | None]:
    """The first event of a realtime WebSocket, and its close code if the server then closes it."""
    async with aiohttp.ClientSession() as session:
        async with session.ws_connect(url, headers={"Authorization": f"Bearer {token}"}) as ws:
            first = await EventReader(ws).next(timeout=20)
            if first["type"] == "error":
                await ws.receive(timeout=10)
            return first, ws.close_code


async def _listen_status(gateway: GatewayProcess, token: str) -> int:
    """The HTTP status of opening the device listener's `/ovos/microphone` (101: opened)."""
    url = gateway.base_url.replace("http", "ws", 1) + "/ovos/microphone"
    async with aiohttp.ClientSession() as session:
        try:
            async with session.ws_connect(url, headers={"Authorization": f"Bearer {token}"}):
                return 101
        except aiohttp.WSServerHandshakeError as exc:
            return exc.status


async def _invite(port: int) -> str:
    """The gateway's answer to a phone's INVITE: `403` (refused) or `180` (ringing; then cancelled)."""
    phone = await SipPeer.bind("127.0.0.1", port)
    call = PhoneCall(phone.address)
    try:
        phone.send(call.invite())
        answer = await phone._until(
            lambda text: text.startswith("SIP/2.0 ") and text.split(" ", 2)[1] in ("180", "403"),
            "180 or 403 to the INVITE",
            20.0,
        )
        if answer.startswith("SIP/2.0 180"):
            phone.send(call.cancel())
            await phone.response("1 INVITE", 487)
        return answer.split(" ", 2)[1]
    finally:
        phone.close()


async def _webrtc_call(sdk: openai.OpenAI, model: str) -> int:
    """The status of placing a WebRTC call with `model` (201: placed, then hung up)."""
    peer = CallPeer()
    try:
        offer = await peer.offer()
        session: RealtimeSessionCreateRequestParam = {"type": "realtime", "model": model}
        try:
            raw = await asyncio.to_thread(
                sdk.realtime.calls.with_raw_response.create, sdp=offer, session=session
            )
        except openai.APIStatusError as exc:
            assert exc.code == "insufficient_permissions", exc.body
            assert "is not allowed on this device" in exc.message
            return exc.status_code
        call_id = raw.headers["location"].rsplit("/", 1)[1]
        await asyncio.to_thread(sdk.realtime.calls.hangup, call_id)
        return raw.status_code
    finally:
        await peer.close()


async def _call_control(sdk: openai.OpenAI, gateway: GatewayProcess, token: str) -> dict[str, Any]:
    """A call of an allowed model: attaching a sideband socket to it, then hanging it up."""
    peer = CallPeer()
    try:
        call_id = await place_call(sdk, peer)
        await peer.until("session.created")
        event, code = await _first_event(ws_url(gateway.api_base, call_id=call_id), token)
        try:
            await asyncio.to_thread(sdk.realtime.calls.hangup, call_id)
            hangup = 200
        except openai.PermissionDeniedError as exc:
            assert "watched by nobody" in exc.message
            hangup = 403
        return {"sideband": (event["type"], event.get("error", {}).get("code"), code), "hangup": hangup}
    finally:
        await peer.close()


def _denials(gateway: GatewayProcess, action: str) -> float:
    text = http("GET", f"{gateway.base_url}/metrics").body.decode()
    found = re.search(
        rf'^ovos_realtime_policy_denials_total{{action="{re.escape(action)}"}} ([0-9.]+)$', text, re.M
    )
    return float(found.group(1)) if found else 0.0


async def _exercise(
    gateway: GatewayProcess, sip_port: int, home: str, other: str, sdk: SdkFactory
) -> dict[str, Any]:
    """What each entry point answers, for the same requests."""
    home_sdk = sdk(gateway.api_base, home)
    seen: dict[str, Any] = {}
    # REST: mint a secret for a session of the forbidden model
    try:
        await asyncio.to_thread(
            home_sdk.realtime.client_secrets.create, session={"type": "realtime", "model": FORBIDDEN_MODEL}
        )
        seen["rest"] = 200
    except openai.PermissionDeniedError as exc:
        assert "is not allowed on this device" in exc.message
        seen["rest"] = 403
    # WebSocket: open a session of the forbidden model
    event, code = await _first_event(ws_url(gateway.api_base, model=FORBIDDEN_MODEL), home)
    seen["websocket"] = (event["type"], event.get("error", {}).get("code"), code)
    # WebRTC: place a call with the forbidden model
    seen["webrtc"] = await _webrtc_call(home_sdk, FORBIDDEN_MODEL)
    # REST call control and the sideband WebSocket
    seen.update(await _call_control(home_sdk, gateway, home))
    # SIP: a phone calls the trunk's project
    seen["sip"] = await _invite(sip_port)
    # the device microphone: feed it (a session of `ovos-microphone`) and listen to it
    event, code = await _first_event(ws_url(gateway.api_base, model="ovos-microphone"), home)
    seen["microphone.feed"] = (event["type"], event.get("error", {}).get("message", ""), code)
    seen["microphone.listen"] = await _listen_status(gateway, home)
    # the second line: another project's session and microphone
    foreign = await asyncio.to_thread(sdk(gateway.api_base, other).realtime.client_secrets.create)
    read = await asyncio.to_thread(
        http, "GET", f"{gateway.api_base}/realtime/sessions/{foreign.session.id}", key=home
    )
    seen["foreign_session"] = (read.status, (await asyncio.to_thread(_denials, gateway, "sessions.read")))
    listen = await asyncio.to_thread(
        http, "GET", f"{gateway.base_url}/ovos/microphone", key=other
    )  # refused before any upgrade
    seen["foreign_listen"] = (listen.status, listen.json()["error"]["message"])
    return seen


async def test_only_the_rego_file_changes_and_every_entry_point_follows(
    tmp_path: Path, make_sdk: SdkFactory
) -> None:
    data_dir = tmp_path / "data"
    home, other = (
        (await asyncio.to_thread(create_key, data_dir, "home")),
        (await asyncio.to_thread(create_key, data_dir, "other")),
    )
    custom = _gateway(tmp_path, data_dir, "custom-policy", CUSTOM_POLICY)
    async with custom:
        denied = await _exercise(custom, _port(custom), home, other, make_sdk)
    default = _gateway(tmp_path, data_dir, "default-policy", None)
    async with default:
        allowed = await _exercise(default, _port(default), home, other, make_sdk)

    assert denied["rest"] == 403 and allowed["rest"] == 200
    assert denied["websocket"] == ("error", "insufficient_permissions", 3000)
    assert allowed["websocket"] == ("session.created", None, None)
    assert denied["webrtc"] == 403 and allowed["webrtc"] == 201
    assert denied["sideband"] == ("error", "insufficient_permissions", 3000)
    assert allowed["sideband"] == ("session.created", None, None)
    assert denied["hangup"] == 403 and allowed["hangup"] == 200
    assert denied["sip"] == "403" and allowed["sip"] == "180"
    feed_type, feed_message, feed_code = denied["microphone.feed"]
    assert (feed_type, feed_code) == ("error", 3000) and "switched off" in feed_message
    assert allowed["microphone.feed"] == ("session.created", "", None)
    assert denied["microphone.listen"] == 403 and allowed["microphone.listen"] == 101
    # the custom policy let project "home" read project "other"'s session: the gateway still
    # answers 404, and no policy denial was counted (the Python check refused it); under the
    # default policy it is the policy that refuses (counted), with the same 404
    assert denied["foreign_session"] == (404, 0.0)
    assert allowed["foreign_session"] == (404, 1.0)
    # and the custom policy let project "other" at project "home"'s microphone: the gateway's check
    # refuses it; under the default policy the policy does
    assert denied["foreign_listen"][0] == allowed["foreign_listen"][0] == 403
    assert denied["foreign_listen"][1].endswith("The device microphone belongs to another project.")
    assert allowed["foreign_listen"][1].endswith("The resource belongs to another project.")


def _port(gateway: GatewayProcess) -> int:
    config = Path(gateway.extra[gateway.extra.index("--config") + 1])
    return int(json.loads(config.read_text())["sip"]["port"])
