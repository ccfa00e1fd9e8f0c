"""Structured logs and traces (issue 16), with a real OVOS stack (messagebus, ovos-core, skills),
the real gateway and the real `openai` SDK, and a real OTLP/HTTP receiver decoding what the
gateway exports.

- A whole voice session at DEBUG: every stderr line is one JSON object with the session's ids and
  trace; neither the key, the ek_ secret, the typed text nor a transcript is anywhere in the log.
- The span tree of the session: the handshake's `traceparent` adopted, a turn with its VAD, STT,
  skills and TTS-first-audio children, and the skills' span named in the OVOS message's context.
- A malformed `traceparent` starts a new trace; a dead collector drops (and counts) spans while
  the same turn is answered with the same events as with tracing off.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
from collections.abc import Iterator
from functools import partial
from pathlib import Path
from typing import Any

import openai
import pytest
from openai.types.realtime import RealtimeAudioConfigInputParam

from ovos_realtime_gateway.ovos.stack import CONVERSATIONAL_SKILLS, OvosStack, free_port

from .gateway_process import GatewayProcess, configured_gateway, http
from .otlp_receiver import OtlpReceiver, ReceivedSpan
from .realtime_helpers import say_and_ask, speak_in_real_time
from .speech import user_speech_pcm

pytestmark = pytest.mark.slow
TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"
PARENT_ID = "00f067aa0ba902b7"
HANDSHAKE_TRACEPARENT = f"00-{TRACE_ID}-{PARENT_ID}-01"
TYPED = "recite the zanzibar marmalade inventory"


@pytest.fixture(scope="module")
def receiver() -> Iterator[OtlpReceiver]:
    with OtlpReceiver() as running:
        yield running


@pytest.fixture(scope="module")
def traced(
    ovos: OvosStack, receiver: OtlpReceiver, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[GatewayProcess, str]]:
    """A gateway at DEBUG, log format left at `auto` (stderr is a file: JSON), tracing on."""
    settings = {
        "messagebus_url": ovos.bus_url,
        "converse_skills": list(CONVERSATIONAL_SKILLS),
        "log_level": "DEBUG",
        "tracing": {"enabled": True, "otlp_endpoint": receiver.endpoint, "service_name": "gw-under-test"},
    }
    gateway, key = configured_gateway(tmp_path_factory.mktemp("traced"), settings, "home", "traced")
    with gateway:
        _wait_ready(gateway)
        yield gateway, key


def _wait_ready(gateway: GatewayProcess) -> None:
    deadline = time.monotonic() + 120  # the bus connects and the speech plugins load after start
    while (ready := http("GET", f"{gateway.base_url}/readyz")).status != 200:
        assert time.monotonic() < deadline, ready.body
        time.sleep(0.2)


class UtteranceWatch:
    """Listens on the OVOS messagebus for the utterances the gateway sends the skills."""

    def __init__(self, ovos: OvosStack) -> None:
        from ovos_bus_client import MessageBusClient

        self.contexts: list[dict[str, Any]] = []
        self.bus = MessageBusClient(host="127.0.0.1", port=ovos.bus_port, route="/core", ssl=False)
        self.bus.on("recognizer_loop:utterance", lambda m: self.contexts.append(dict(m.context)))
        self.bus.run_in_thread()
        assert self.bus.connected_event.wait(30)

    def close(self) -> None:
        self.bus.close()


async def _voice_then_typed(gateway: GatewayProcess, key: str) -> dict[str, Any]:
    """Mint an ek_ secret with the key; with it, a server-VAD session transcribing: a spoken
    question streamed in real time, then a typed one. What the client saw, for the checks."""
    client = openai.AsyncOpenAI(base_url=gateway.api_base, api_key=key, max_retries=0)
    secret = await client.realtime.client_secrets.create(session={"type": "realtime"})
    ephemeral = openai.AsyncOpenAI(base_url=gateway.api_base, api_key=secret.value, max_retries=0)
    seen: dict[str, Any] = {"secret": secret.value, "answers": [], "statuses": []}
    headers = {"traceparent": HANDSHAKE_TRACEPARENT}
    async with ephemeral.realtime.connect(model="gpt-realtime", extra_headers=headers) as conn:
        seen["session_id"] = (await conn.recv()).session.id  # type: ignore[union-attr]  # recv() is typed as the SDK's union of server events and sessions
        audio_in: RealtimeAudioConfigInputParam = {
            "transcription": {"model": "ovos-stt"},
            "turn_detection": {"type": "server_vad", "silence_duration_ms": 500},
        }
        await conn.session.update(session={"type": "realtime", "audio": {"input": audio_in}})
        await conn.recv()

        async def stream() -> None:
            await speak_in_real_time(conn, user_speech_pcm("what time is it", lead_ms=500, tail_ms=1200))

        sender = asyncio.create_task(stream())
        async for event in conn:
            if event.type == "conversation.item.input_audio_transcription.completed":
                seen["transcript"] = event.transcript
            elif event.type == "response.output_audio_transcript.done":
                seen["answers"].append(event.transcript)
            elif event.type == "response.done":
                seen["statuses"].append(event.response.status)
                break
        await sender
        await say_and_ask(conn, TYPED)
        async for event in conn:
            if event.type == "response.output_audio_transcript.done":
                seen["answers"].append(event.transcript)
            elif event.type == "response.done":
                seen["statuses"].append(event.response.status)
                break
    await client.close()
    await ephemeral.close()
    return seen


def _json_lines(gateway: GatewayProcess) -> list[dict[str, Any]]:
    lines = gateway.logs().splitlines()
    entries = []
    for line in lines:
        entry = json.loads(line)  # every line: one JSON object
        assert {"ts", "level", "logger", "message"} <= entry.keys(), line
        entries.append(entry)
    return entries


def _wait_logged(gateway: GatewayProcess, text: str) -> None:
    deadline = time.monotonic() + 30
    while text not in gateway.logs():
        assert time.monotonic() < deadline, f"never logged: {text}"
        time.sleep(0.1)


def test_a_voice_session_logs_json_lines_with_its_ids_and_nothing_the_user_said_or_holds(
    traced: tuple[GatewayProcess, str], receiver: OtlpReceiver, ovos: OvosStack
) -> None:
    gateway, key = traced
    watch = UtteranceWatch(ovos)
    try:
        seen = asyncio.run(_voice_then_typed(gateway, key))
    finally:
        watch.close()
    session_id = seen["session_id"]
    assert seen["statuses"] == ["completed", "completed"], seen
    assert "time" in seen["transcript"].lower()
    _wait_logged(gateway, f"session {session_id} closed")

    # -- logs -----------------------------------------------------------------------------
    entries = _json_lines(gateway)
    text = gateway.logs() + gateway.stdout_path.read_text()
    for secret in (key, seen["secret"], TYPED, seen["transcript"], *seen["answers"]):
        assert secret.lower() not in text.lower(), f"logged: {secret!r}"
    assert "zanzibar" not in text.lower() and "time is it" not in text.lower()
    assert "DEBUG" in {e["level"] for e in entries}, "the log was at DEBUG"
    about_session = [e for e in entries if e["message"].startswith(f"session {session_id}")]
    messages = " | ".join(e["message"] for e in about_session)
    for step in ("opened", "speech started", "speech stopped", "transcribed", "completed", "closed"):
        assert step in messages, f"no '{step}' line: {messages}"
    for entry in about_session:
        assert entry.get("session_id") == session_id, entry
        assert entry.get("project") and entry.get("request_id", "").startswith("req_"), entry
        assert entry.get("trace_id") == TRACE_ID, entry  # the handshake's trace
        assert re.fullmatch(r"[0-9a-f]{16}", entry.get("span_id", "")), entry

    # -- traces ---------------------------------------------------------------------------
    def complete(spans: list[ReceivedSpan]) -> bool:
        mine = [s for s in spans if s.trace_id == TRACE_ID]
        return sum(s.name == "realtime.turn" for s in mine) >= 2 and any(
            s.name == "GET /v1/realtime" for s in mine
        )

    spans = [s for s in receiver.wait_for(complete) if s.trace_id == TRACE_ID]
    by_id = {s.span_id: s for s in spans}
    handshake = next(s for s in spans if s.name == "GET /v1/realtime")
    assert handshake.parent_id == PARENT_ID, "the traceparent of the handshake is the parent"
    assert handshake.service == "gw-under-test" and handshake.attributes["http.response.status_code"] == 101
    session = next(s for s in spans if s.name == "realtime.session")
    assert session.parent_id == handshake.span_id
    assert session.attributes["ovos_realtime.session_id"] == session_id
    turns = [s for s in spans if s.name == "realtime.turn"]
    assert all(t.parent_id == session.span_id for t in turns)
    children = {t.span_id: sorted(s.name for s in spans if s.parent_id == t.span_id) for t in turns}
    spoken, typed = sorted(turns, key=lambda t: "vad" not in children[t.span_id])
    assert children[spoken.span_id] == ["ovos.skills", "stt", "tts.first_audio", "vad"]
    assert children[typed.span_id] == ["ovos.skills", "tts.first_audio"]
    assert all(t.attributes["ovos_realtime.status"] == "completed" for t in turns)
    skills = [s for s in spans if s.name == "ovos.skills"]
    assert all("first_speak" in s.events for s in skills)
    expected = {"GET /v1/realtime", "realtime.session", "realtime.turn", "vad", "stt", "ovos.skills"}
    assert {s.name for s in by_id.values()} == expected | {"tts.first_audio"}
    # the skills' span travelled to OVOS in the utterance's context: skills can join the trace
    ours = [c for c in watch.contexts if c.get("session", {}).get("session_id") == session_id]
    sent = {c.get("traceparent") for c in ours}
    assert sent == {f"00-{TRACE_ID}-{s.span_id}-01" for s in skills}
    minted = receiver.wait_for(lambda got: any(s.name == "POST /v1/realtime/client_secrets" for s in got))
    assert any(s.name == "POST /v1/realtime/client_secrets" and s.parent_id == "" for s in minted)


def _has_request(request_id: str, spans: list[ReceivedSpan]) -> bool:
    return any(s.attributes.get("ovos_realtime.request_id") == request_id for s in spans)


def test_a_malformed_traceparent_starts_a_new_trace(
    traced: tuple[GatewayProcess, str], receiver: OtlpReceiver
) -> None:
    gateway, key = traced
    for bad in ("00-zzzz-not-a-trace-01", f"00-{'0' * 32}-{PARENT_ID}-01", "garbage", "01-" + "a" * 80):
        answered = http("GET", f"{gateway.api_base}/models", key=key, headers={"traceparent": bad})
        assert answered.status == 200, (bad, answered.body)
        request_id = answered.headers["x-request-id"]
        spans = receiver.wait_for(partial(_has_request, request_id))
        span = next(s for s in spans if s.attributes.get("ovos_realtime.request_id") == request_id)
        assert span.name == "GET /v1/models" and span.parent_id == "", (bad, span)
        assert re.fullmatch(r"[0-9a-f]{32}", span.trace_id) and span.trace_id != "0" * 32


async def _typed_turn(gateway: GatewayProcess, key: str) -> tuple[list[str], str, float]:
    """One typed question answered in text: the event types after it, the status, the seconds."""
    client = openai.AsyncOpenAI(base_url=gateway.api_base, api_key=key, max_retries=0)
    types: list[str] = []
    async with client.realtime.connect(model="gpt-realtime") as conn:
        await conn.recv()
        await conn.session.update(session={"type": "realtime", "output_modalities": ["text"]})
        await conn.recv()
        started = time.monotonic()
        await say_and_ask(conn, "hello world")
        async for event in conn:
            types.append(event.type)
            if event.type == "response.done":
                status = event.response.status or ""
                break
    await client.close()
    return types, status, time.monotonic() - started


def _dropped(gateway: GatewayProcess) -> float:
    metrics = http("GET", f"{gateway.base_url}/metrics").body.decode()
    match = re.search(r"^ovos_realtime_trace_spans_dropped_total (\S+)$", metrics, re.MULTILINE)
    assert match is not None, "the dropped-spans counter is exported"
    return float(match.group(1))


def test_a_dead_collector_never_slows_or_fails_a_session(ovos: OvosStack, tmp_path: Path) -> None:
    """Fault injected: the OTLP endpoint is a closed port. The same typed turn on a gateway with
    tracing off and on one exporting there: the same events, completed, in comparable time (a
    generous bound: the export runs on its own thread); the spans that could not go are counted."""
    base = {
        "messagebus_url": ovos.bus_url,
        "converse_skills": list(CONVERSATIONAL_SKILLS),
        "speech_profile": "light",  # typed turns: the lightest speech plugins load fastest
    }
    dead_endpoint = f"http://127.0.0.1:{free_port()}/v1/traces"
    tracing = {"enabled": True, "otlp_endpoint": dead_endpoint, "export_timeout_seconds": 1.0}
    off, off_key = configured_gateway(tmp_path, base, "home", "tracing-off")
    dead, dead_key = configured_gateway(tmp_path, {**base, "tracing": tracing}, "home", "tracing-dead")
    with off, dead:
        _wait_ready(off)
        _wait_ready(dead)
        assert _dropped(off) == 0.0
        results = {}
        for name, gateway, key in (("off", off, off_key), ("dead", dead, dead_key)):
            asyncio.run(_typed_turn(gateway, key))  # warm: the first turn of a session pays OVOS's set-up
            results[name] = asyncio.run(_typed_turn(gateway, key))
        deadline = time.monotonic() + 60
        while _dropped(dead) == 0.0:
            assert time.monotonic() < deadline, "failed exports were never counted"
            time.sleep(0.2)
        assert _dropped(off) == 0.0
    (off_types, off_status, off_s), (dead_types, dead_status, dead_s) = results["off"], results["dead"]
    assert off_status == dead_status == "completed"
    assert dead_types == off_types
    assert dead_s < off_s * 3 + 5.0, (dead_s, off_s)


def test_the_log_format_setting(tmp_path: Path) -> None:
    """`text` writes lines for people (ids in brackets); `json` one object per line."""
    from .gateway_process import GatewayProcess as Process

    for fmt in ("text", "json"):
        gateway = Process(tmp_path / f"{fmt}-data", "--log-format", fmt, log_name=fmt)
        with gateway:
            got = http("GET", f"{gateway.base_url}/v1/models", key="sk-ovos-" + "x" * 40)
            assert got.status == 401
            request_id = got.headers["x-request-id"]
            _wait_logged(gateway, request_id)
        lines = gateway.logs().splitlines()
        line = next(line for line in lines if request_id in line and "GET /v1/models 401" in line)
        if fmt == "json":
            assert json.loads(line)["request_id"] == request_id
        else:
            assert f"[{request_id}]" in line
            assert not line.startswith("{")
        assert "x" * 40 not in gateway.logs()
