"""Fuzzing the live socket with hypothesis (issue: thousands of random and malformed client
events): every frame gets an error or its normal answer, every server event is one the SDK
parses, the connection stays up, and the gateway's memory stays flat."""

from __future__ import annotations

import base64
import json
import os
import string
from collections.abc import Iterator
from itertools import count
from typing import Any

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st
from websockets.sync.client import ClientConnection, connect

from ovos_realtime_gateway.protocol.client_events import CLIENT_EVENT_TYPES

from .gateway_process import GatewayProcess, rss_kib
from .realtime_helpers import ws_url
from .server_event_check import check_server_event

EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "3000"))
json_scalars = (
    st.none()
    | st.booleans()
    | st.integers(-(2**40), 2**40)
    | st.floats(allow_nan=False)
    | st.text(max_size=20)
)
json_values = st.recursive(
    json_scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4),
    max_leaves=12,
)
SESSION_KEYS = [
    "type",
    "model",
    "instructions",
    "output_modalities",
    "audio",
    "tools",
    "tool_choice",
    "max_output_tokens",
    "tracing",
    "truncation",
    "prompt",
    "include",
    "voice",
]
AUDIO = st.builds(lambda n: base64.b64encode(bytes(n)).decode(), st.integers(0, 9600)) | st.text(
    string.ascii_letters + "+/=", max_size=40
)
ITEM = st.fixed_dictionaries(
    {"type": st.sampled_from(["message", "function_call", "function_call_output", "bogus"])},
    optional={
        "role": st.sampled_from(["user", "assistant", "system", "nobody"]),
        "content": st.lists(
            st.fixed_dictionaries(
                {"type": st.sampled_from(["input_text", "input_audio", "output_text", "text", "audio"])},
                optional={"text": json_values, "audio": AUDIO, "transcript": json_values},
            ),
            max_size=3,
        ),
        "id": st.text(max_size=12),
        "call_id": json_values,
        "output": json_values,
    },
)
FUZZ_TYPES = [t for t in CLIENT_EVENT_TYPES if t != "session.close"]


def structured() -> st.SearchStrategy[Any]:
    session = st.dictionaries(st.sampled_from(SESSION_KEYS), json_values, max_size=4).map(
        lambda d: d | {"type": "realtime"} if d.get("type") is None else d
    )
    return st.one_of(
        st.fixed_dictionaries({"type": st.just("session.update"), "session": session}),
        st.fixed_dictionaries({"type": st.just("input_audio_buffer.append"), "audio": AUDIO}),
        st.fixed_dictionaries(
            {"type": st.just("conversation.item.create"), "item": ITEM},
            optional={"previous_item_id": st.text(max_size=10) | st.just("root")},
        ),
        st.fixed_dictionaries(
            {
                "type": st.sampled_from(
                    ["conversation.item.retrieve", "conversation.item.delete", "conversation.item.truncate"]
                )
            },
            optional={"item_id": json_values, "content_index": json_values, "audio_end_ms": json_values},
        ),
        st.fixed_dictionaries(
            {"type": st.just("response.create")},
            optional={
                "response": st.dictionaries(
                    st.sampled_from(
                        ["conversation", "output_modalities", "instructions", "metadata", "input", "bogus"]
                    ),
                    json_values,
                    max_size=3,
                )
            },
        ),
        st.fixed_dictionaries(
            {"type": st.sampled_from(FUZZ_TYPES)}, optional={"event_id": st.text(max_size=10)}
        ).flatmap(
            lambda base: st.dictionaries(st.text(max_size=10), json_values, max_size=3).map(
                lambda extra: extra | base
            )
        ),
    )


def hostile() -> st.SearchStrategy[str]:
    """What a hostile probe sent (issue 12, defect 9): JSON nested far past any real event, and
    lone UTF-16 surrogates (valid JSON escapes, not encodable text) where strings are kept."""
    surrogates = st.text(st.characters(categories=["Cs"]) | st.characters(), min_size=1, max_size=8).filter(
        lambda text: any(0xD800 <= ord(c) <= 0xDFFF for c in text)
    )
    return st.one_of(
        st.integers(65, 100_000).map(
            lambda n: '{"type": "session.update", "session": ' + "[" * n + "]" * n + "}"
        ),
        st.integers(65, 100_000).map(
            lambda n: (
                '{"type": "response.create", "response": {"metadata": ' + '{"a": ' * n + "1" + "}" * n + "}}"
            )
        ),
        surrogates.map(
            lambda text: json.dumps(
                {"type": "session.update", "session": {"type": "realtime", "instructions": text}}
            )
        ),
        surrogates.map(
            lambda text: json.dumps(
                {
                    "type": "conversation.item.create",
                    "item": {
                        "type": "message",
                        "role": "user",
                        "content": [{"type": "input_text", "text": text}],
                    },
                }
            )
        ),
    )


frames = st.one_of(
    structured().map(json.dumps),
    hostile(),
    json_values.map(json.dumps),
    st.dictionaries(st.just("type"), st.text(max_size=30)).map(json.dumps),
    st.text(max_size=60),
    st.binary(max_size=60),
)


def closes_the_session(frame: str | bytes) -> bool:
    try:
        data = json.loads(frame)
    except (ValueError, RecursionError):  # deep nesting: not a session.close either
        return False
    return isinstance(data, dict) and data.get("type") == "session.close"


class Prober:
    """Sends one frame, then a sentinel whose error marks the end of that frame's answers."""

    def __init__(self, ws: ClientConnection) -> None:
        self.ws = ws
        self.ids = count()
        self.errors_by_code: dict[str, int] = {}

    def exchange(self, frame: str | bytes) -> list[dict[str, Any]]:
        self.ws.send(frame)
        sentinel = f"sentinel_{next(self.ids)}"
        self.ws.send(
            json.dumps({"type": "conversation.item.retrieve", "item_id": sentinel, "event_id": sentinel})
        )
        answers: list[dict[str, Any]] = []
        while True:
            raw = self.ws.recv(timeout=10)
            assert isinstance(raw, str), "server frames are text"
            event = json.loads(raw)
            check_server_event(event)
            if event["type"] == "error":
                assert event["error"]["type"] != "server_error", event
                if event["error"].get("event_id") == sentinel:
                    return answers
                code = str(event["error"]["code"])
                self.errors_by_code[code] = self.errors_by_code.get(code, 0) + 1
            answers.append(event)


@pytest.fixture(scope="module")
def prober(gateway: GatewayProcess, alpha_key: str) -> Iterator[Prober]:
    url = ws_url(gateway.api_base, model="gpt-realtime")
    with connect(url, additional_headers={"Authorization": f"Bearer {alpha_key}"}, max_size=None) as ws:
        assert json.loads(ws.recv(timeout=10))["type"] == "session.created"
        prober = Prober(ws)  # type: ignore[arg-type]  # connect() is typed as the base Connection
        prober.exchange(
            json.dumps(
                {
                    "type": "session.update",
                    "session": {"type": "realtime", "audio": {"input": {"turn_detection": None}}},
                }
            )
        )
        yield prober


def warm_speech_recognition(prober: Prober) -> None:
    """Commit 200 ms of audio with transcription on and wait for its outcome: the gateway loads
    its STT plugin on the first committed turn, a one-off that is not growth."""
    with_transcription = {"type": "realtime", "audio": {"input": {"transcription": {"model": "whisper-1"}}}}
    prober.exchange(json.dumps({"type": "session.update", "session": with_transcription}))
    silence = base64.b64encode(bytes(2 * 24000 // 5)).decode()
    prober.exchange(json.dumps({"type": "input_audio_buffer.append", "audio": silence}))
    prober.ws.send(json.dumps({"type": "input_audio_buffer.commit"}))
    done = (
        "conversation.item.input_audio_transcription.completed",
        "conversation.item.input_audio_transcription.failed",
    )
    while json.loads(prober.ws.recv(timeout=60))["type"] not in done:
        pass
    without = {"type": "realtime", "audio": {"input": {"transcription": None}}}
    prober.exchange(json.dumps({"type": "session.update", "session": without}))


@pytest.mark.slow
def test_random_frames_get_an_answer_and_the_session_survives(
    prober: Prober, gateway: GatewayProcess
) -> None:
    assert gateway.proc is not None
    for _ in range(300):  # warm up: caches, lazily built validators
        prober.exchange(json.dumps({"type": "nope"}))
    warm_speech_recognition(prober)  # a fuzzed commit would load the STT model (~100 MB) mid-count
    before = rss_kib(gateway.proc.pid)

    @settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck), database=None)
    @given(frames)
    def one_frame(frame: str | bytes) -> None:
        # hypothesis also draws strings from our own source (it found "session.close" that way,
        # which ends the session as it should); this test is about everything else
        assume(not closes_the_session(frame))
        prober.exchange(frame)

    one_frame()
    after = rss_kib(gateway.proc.pid)
    # still alive and answering normally
    answers = prober.exchange(json.dumps({"type": "input_audio_buffer.clear"}))
    assert [a["type"] for a in answers] == ["input_audio_buffer.cleared"]
    assert len(prober.errors_by_code) >= 8, prober.errors_by_code  # the fuzzer reached many paths
    assert prober.errors_by_code.get("invalid_json", 0) > 0, prober.errors_by_code  # hostile ones too
    assert after - before < 30 * 1024, f"RSS grew {after - before} KiB over {EXAMPLES} frames"
