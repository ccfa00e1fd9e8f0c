"""The transport's fast path for plain `input_audio_buffer.append` frames (issue 18, density).

Frames shaped exactly as the SDKs write an append skip the JSON decoder and the event models;
every other frame takes the full parse. Either way the session must end up with the same audio,
the same events (errors included) and the same error counts as the full parse gives.
"""

from __future__ import annotations

import base64
import json
from typing import Any

import numpy as np
import pytest

from ovos_realtime_gateway.observability.metrics import GatewayMetrics
from ovos_realtime_gateway.protocol.parse import BadEvent, decode_frame, parse_client_event, plain_append
from ovos_realtime_gateway.transports.client_frames import WS_EVENT_TYPES, apply_frame

from .engine_harness import Harness, ScriptedResponder

PCM = np.arange(-2400, 2400, 10, dtype="<i2").tobytes()  # 20 ms of 24 kHz PCM16
B64 = base64.b64encode(PCM).decode()
APPEND = "input_audio_buffer.append"

FRAMES: dict[str, str | bytes] = {
    "python json.dumps (the openai SDK)": json.dumps({"type": APPEND, "audio": B64}),
    "JavaScript JSON.stringify": json.dumps({"type": APPEND, "audio": B64}, separators=(",", ":")),
    "with an event_id": json.dumps({"type": APPEND, "audio": B64, "event_id": "evt_1"}),
    "audio first": json.dumps({"audio": B64, "type": APPEND}),
    "whitespace around": f" {json.dumps({'type': APPEND, 'audio': B64})}\n",
    "an escaped slash": json.dumps({"type": APPEND, "audio": B64}).replace("/", "\\/"),
    "a raw control character": json.dumps({"type": APPEND, "audio": B64[:8] + "\n" + B64[8:]}).replace(
        "\\n", "\n"
    ),
    "a tab inside the base64": json.dumps({"type": APPEND, "audio": B64[:8] + "\t" + B64[8:]}),
    "bad base64": json.dumps({"type": APPEND, "audio": "not base64!"}),
    "missing padding": json.dumps({"type": APPEND, "audio": B64[:-1]}),
    "empty audio": json.dumps({"type": APPEND, "audio": ""}),
    "audio twice": f'{{"type": "{APPEND}", "audio": "{B64}", "audio": "{B64[:8]}"}}',
    "audio not a string": json.dumps({"type": APPEND, "audio": 5}),
    "an unknown field": json.dumps({"type": APPEND, "audio": B64, "extra": 1}),
    "non-ASCII": json.dumps({"type": APPEND, "audio": B64 + "é"}, ensure_ascii=False),
    "truncated JSON": json.dumps({"type": APPEND, "audio": B64})[:-1],
    "binary frame": json.dumps({"type": APPEND, "audio": B64}).encode(),
}


def test_the_sdks_plain_appends_are_recognised_and_nothing_else() -> None:
    assert plain_append(FRAMES["python json.dumps (the openai SDK)"]) == PCM
    assert plain_append(FRAMES["JavaScript JSON.stringify"]) == PCM
    assert plain_append(FRAMES["empty audio"]) == b""
    others = set(FRAMES) - {"python json.dumps (the openai SDK)", "JavaScript JSON.stringify", "empty audio"}
    assert [name for name in sorted(others) if plain_append(FRAMES[name]) is not None] == []


async def _full_parse(harness: Harness, frame: str | bytes, metrics: GatewayMetrics) -> None:
    """The path every frame took before the fast path (the reference)."""
    try:
        parsed = parse_client_event(decode_frame(frame), WS_EVENT_TYPES)
    except BadEvent as bad:
        metrics.client_event_errors.labels(code=str(bad.error.code)).inc()
        harness.session.fail(bad.error, bad.event_id)
        return
    refused = await harness.session.handle(parsed)
    if refused is not None:
        metrics.client_event_errors.labels(code=str(refused.code)).inc()


def _outcome(harness: Harness, metrics: GatewayMetrics) -> dict[str, Any]:
    events = [{k: v for k, v in event.items() if k != "event_id"} for event in harness.events]
    errors = {
        sample.labels["code"]: sample.value
        for metric in metrics.registry.collect()
        if metric.name.endswith("client_event_errors")
        for sample in metric.samples
        if sample.name.endswith("_total")
    }
    _, pcm = harness.session.input.take()
    return {"events": events, "errors": errors, "pcm": pcm, "buffered_ms": harness.session.input.total_ms}


@pytest.mark.parametrize("name", sorted(FRAMES))
async def test_every_frame_ends_as_the_full_parse_would_have_it(name: str) -> None:
    frame = FRAMES[name]
    fast, full = (
        Harness(ScriptedResponder(), turn_detection=None),
        Harness(ScriptedResponder(), turn_detection=None),
    )
    fast_metrics, full_metrics = GatewayMetrics(), GatewayMetrics()
    fast.clear()  # session.created
    full.clear()
    for _ in range(3):
        await apply_frame(fast.session, frame, WS_EVENT_TYPES, fast_metrics)
        await _full_parse(full, frame, full_metrics)
    assert _outcome(fast, fast_metrics) == _outcome(full, full_metrics)


async def test_a_full_buffer_refuses_a_plain_append_as_any_other() -> None:
    harness = Harness(ScriptedResponder(), turn_detection=None, max_input_buffer_ms=30.0)
    metrics = GatewayMetrics()
    harness.clear()
    await apply_frame(harness.session, FRAMES["python json.dumps (the openai SDK)"], WS_EVENT_TYPES, metrics)
    await apply_frame(harness.session, FRAMES["python json.dumps (the openai SDK)"], WS_EVENT_TYPES, metrics)
    assert [e["error"]["code"] for e in harness.of("error")] == ["input_audio_buffer_full"]
    assert harness.session.input.duration_ms == 20.0
