"""The session engine in-process: event order and semantics of contract §7, §8, §12.

Responses here come from a *scripted responder* that stands in for OVOS's skills (the real one
is tested end to end with the messagebus); every emitted event is parsed by the installed SDK's
own model for its type.
"""

from __future__ import annotations

import base64

import pytest

from ovos_realtime_gateway.engine.responder import (
    UnavailableResponder,
)

from .engine_harness import FailingResponder, Harness, ScriptedResponder, user_text
from .waiting import wait_until_async


async def test_text_turn_emits_exactly_the_upstream_order() -> None:
    h = Harness(ScriptedResponder("It is four."))
    h.clear()
    await h.send(user_text("what time is it"))
    await h.send({"type": "response.create"})
    await h.settle()
    assert h.types() == [
        "conversation.item.added",
        "conversation.item.done",
        "response.created",
        "response.output_item.added",
        "conversation.item.added",
        "response.content_part.added",
        "response.output_text.delta",
        "response.output_text.delta",
        "response.output_text.delta",
        "response.output_text.done",
        "response.content_part.done",
        "conversation.item.done",
        "response.output_item.done",
        "response.done",
        "rate_limits.updated",
    ]
    part_added = h.of("response.content_part.added")[0]
    assert part_added["part"] == {"type": "text", "text": ""}
    assert h.of("response.output_text.done")[0]["text"] == "It is four. "
    done = h.of("response.done")[0]["response"]
    assert done["status"] == "completed"
    assert done["output"][0]["content"] == [{"type": "output_text", "text": "It is four. "}]
    usage = done["usage"]
    assert usage["output_tokens"] == 4 and usage["input_token_details"]["text_tokens"] == 4
    assert usage["total_tokens"] == usage["input_tokens"] + usage["output_tokens"]
    assert h.of("response.created")[0]["response"]["id"] == done["id"]


async def test_audio_response_parts_and_stored_audio_equals_sum_of_deltas() -> None:
    h = Harness(ScriptedResponder("It is four.", audio_ms=900), modalities="audio")
    await h.send(user_text("time?"))
    await h.send({"type": "response.create"})
    await h.settle()
    assert h.of("response.content_part.added")[0]["part"] == {"type": "audio", "transcript": ""}
    deltas = [base64.b64decode(e["delta"]) for e in h.of("response.output_audio.delta")]
    assert len({len(d) for d in deltas[:-1]}) == 1, "deltas are evenly sized"
    assert len(deltas[0]) == 4800, "100 ms of 24 kHz pcm16"
    item = h.of("conversation.item.done")[-1]["item"]
    assert item["content"] == [{"type": "output_audio", "transcript": "It is four. "}]
    stored = h.session.conversation.audio.get((item["id"], 0))
    assert stored == b"".join(deltas)
    done_types = h.types()
    assert done_types.index("response.output_audio.done") < done_types.index(
        "response.output_audio_transcript.done"
    )
    assert h.of("response.done")[0]["response"]["usage"]["output_token_details"]["audio_tokens"] == 18


async def test_second_response_while_active_is_refused_without_response_done() -> None:
    h = Harness(ScriptedResponder(delay=0.05))
    await h.send({"type": "response.create"})
    first = h.session.active
    assert first is not None
    await h.send({"type": "response.create", "event_id": "dup"})
    error = h.of("error")[-1]["error"]
    assert error["code"] == "conversation_already_has_active_response"
    assert first.id in error["message"] and error["event_id"] == "dup"
    await h.settle()
    assert len(h.of("response.done")) == 1


async def test_opt_in_queue_runs_the_second_response_after_the_first() -> None:
    h = Harness(ScriptedResponder(delay=0.02), queue_responses=True)
    await h.send({"type": "response.create"})
    await h.send({"type": "response.create"})
    await h.settle()
    await h.settle()
    done = h.of("response.done")
    assert [d["response"]["status"] for d in done] == ["completed", "completed"]
    assert not h.of("error")


async def test_cancel_active_and_cancel_nothing() -> None:
    h = Harness(ScriptedResponder("one two three four five six", delay=0.05))
    await h.send({"type": "response.cancel", "event_id": "c0"})
    assert h.of("error")[-1]["error"]["code"] == "response_cancel_not_active"
    await h.send({"type": "response.create"})
    await wait_until_async(lambda: h.of("response.output_text.delta"), "the answer's first words", timeout=30)
    await h.send({"type": "response.cancel"})
    done = h.of("response.done")[-1]["response"]
    assert done["status"] == "cancelled"
    assert done["status_details"] == {"type": "cancelled", "reason": "client_cancelled"}
    assert done["output"][0]["status"] == "incomplete"
    assert h.session.active is None


async def test_a_cancel_right_behind_the_create_still_ends_the_response() -> None:
    """`response.cancel` sent in the same breath as `response.create` (before the response's task
    ran at all): the client still gets `response.created` and a cancelled `response.done`, never
    silence it would wait on forever."""
    h = Harness(ScriptedResponder("one two three", delay=0.05))
    await h.send({"type": "response.create"})
    await h.send({"type": "response.cancel"})
    assert [e["type"] for e in h.events if e["type"].startswith("response.")][:1] == ["response.created"]
    done = h.of("response.done")
    assert len(done) == 1, h.types()
    assert done[0]["response"]["status"] == "cancelled"
    assert done[0]["response"]["status_details"] == {"type": "cancelled", "reason": "client_cancelled"}
    assert h.session.active is None
    await h.send({"type": "response.create"})  # and the session answers the next one
    await h.settle()
    assert h.of("response.done")[-1]["response"]["status"] == "completed"


async def test_unavailable_responder_fails_clearly() -> None:
    h = Harness(UnavailableResponder())
    await h.send({"type": "response.create"})
    await h.settle()
    done = h.of("response.done")[0]["response"]
    assert done["status"] == "failed"
    assert done["status_details"]["error"]["code"] == "responder_unavailable"
    assert "OVOS" in done["status_details"]["error"]["message"]
    assert done["output"] == []


async def test_responder_failure_mid_stream_closes_parts() -> None:
    h = Harness(FailingResponder())
    await h.send({"type": "response.create"})
    await h.settle()
    types = h.types()
    assert types.index("response.output_text.done") < types.index("response.done")
    done = h.of("response.done")[0]["response"]
    assert done["status"] == "failed" and done["status_details"]["error"]["code"] == "skill_error"
    assert done["output"][0]["status"] == "incomplete"


async def test_out_of_band_response_stays_out_of_the_conversation() -> None:
    h = Harness(ScriptedResponder("summary"))
    await h.send(user_text("hello"))
    await h.send(
        {"type": "response.create", "response": {"conversation": "none", "metadata": {"topic": "s"}}}
    )
    await h.settle()
    done = h.of("response.done")[0]["response"]
    assert done["conversation_id"] is None and done["metadata"] == {"topic": "s"}
    assert len(h.session.conversation.items) == 1
    assert "conversation.item.added" not in h.types()[2:]


async def test_item_insertion_root_unknown_and_delete() -> None:
    h = Harness(ScriptedResponder())
    await h.send(user_text("b", event_id="e1"))
    await h.send({**user_text("a"), "previous_item_id": "root"})
    texts = [i["content"][0]["text"] for i in h.session.conversation.items]
    assert texts == ["a", "b"]
    await h.send({**user_text("x", event_id="e2"), "previous_item_id": "item_nope"})
    error = h.of("error")[-1]["error"]
    assert error["event_id"] == "e2" and error["param"] == "previous_item_id"
    assert len(h.session.conversation.items) == 2
    first = h.session.conversation.items[0]["id"]
    await h.send({"type": "conversation.item.delete", "item_id": first})
    assert h.of("conversation.item.deleted")[-1]["item_id"] == first
    await h.send({"type": "conversation.item.delete", "item_id": first})
    assert h.of("error")[-1]["error"]["code"] == "item_not_found"


async def test_commit_and_retrieve_input_audio() -> None:
    h = Harness(ScriptedResponder())
    await h.send({"type": "input_audio_buffer.commit"})
    assert h.of("error")[-1]["error"]["code"] == "input_audio_buffer_commit_empty"
    audio = bytes(range(256)) * 19  # 4864 bytes > 100 ms of 24 kHz pcm16
    h.clear()
    await h.send({"type": "input_audio_buffer.append", "audio": base64.b64encode(audio).decode()})
    assert h.events == [], "append is never acknowledged"
    await h.send({"type": "input_audio_buffer.commit"})
    assert h.types() == ["input_audio_buffer.committed", "conversation.item.added", "conversation.item.done"]
    item_id = h.of("input_audio_buffer.committed")[0]["item_id"]
    assert h.of("conversation.item.added")[0]["item"]["content"] == [
        {"type": "input_audio", "transcript": None}
    ]
    assert not any(e["type"].startswith("response.") for e in h.events)
    await h.send({"type": "conversation.item.retrieve", "item_id": item_id})
    retrieved = h.of("conversation.item.retrieved")[0]["item"]
    assert base64.b64decode(retrieved["content"][0]["audio"]) == audio


async def test_truncate_cuts_audio_drops_transcript_and_clamps_small_overshoot() -> None:
    h = Harness(ScriptedResponder("a b c", audio_ms=900), modalities="audio")
    await h.send({"type": "response.create"})
    await h.settle()
    item_id = h.of("response.output_item.done")[0]["item"]["id"]
    sent = sum(len(base64.b64decode(e["delta"])) for e in h.of("response.output_audio.delta"))
    assert sent == 900 * 48
    await h.send(
        {"type": "conversation.item.truncate", "item_id": item_id, "content_index": 0, "audio_end_ms": 300}
    )
    assert h.of("conversation.item.truncated")[-1]["audio_end_ms"] == 300
    assert h.session.conversation.audio.length((item_id, 0)) == 300 * 48
    assert h.session.conversation.get(item_id)["content"][0]["transcript"] == ""
    await h.send(
        {"type": "conversation.item.truncate", "item_id": item_id, "content_index": 0, "audio_end_ms": 340}
    )
    assert h.of("conversation.item.truncated")[-1]["audio_end_ms"] == 340  # clamped, not an error
    await h.send(
        {"type": "conversation.item.truncate", "item_id": item_id, "content_index": 0, "audio_end_ms": 9000}
    )
    assert "already shorter than 9000ms" in h.of("error")[-1]["error"]["message"]


async def test_truncating_a_user_item_is_refused() -> None:
    h = Harness(ScriptedResponder())
    await h.send(user_text("hi"))
    item_id = h.session.conversation.items[0]["id"]
    await h.send(
        {"type": "conversation.item.truncate", "item_id": item_id, "content_index": 0, "audio_end_ms": 0}
    )
    assert h.of("error")[-1]["error"]["code"] == "unsupported_content_type"


async def test_session_update_rules() -> None:
    h = Harness(ScriptedResponder())
    await h.send({"type": "session.update", "session": {"type": "realtime", "instructions": "short"}})
    updated = h.of("session.updated")[-1]["session"]
    assert updated["instructions"] == "short"
    assert updated["audio"]["input"]["turn_detection"]["silence_duration_ms"] == 200, "full config echoed"
    await h.send({"type": "session.update", "session": {"type": "realtime", "model": "gpt-realtime"}})
    assert h.of("session.updated")[-1]["session"]["model"] == "gpt-realtime"
    await h.send({"type": "session.update", "session": {"type": "realtime", "model": "gpt-realtime-mini"}})
    assert h.of("error")[-1]["error"]["param"] == "session.model"
    await h.send({"type": "session.update", "session": {"type": "transcription"}})
    assert h.of("error")[-1]["error"]["param"] == "session.type"


@pytest.mark.parametrize("bad", ["not base64!!", "QUJD\n"])
async def test_bad_base64_append_is_an_error(bad: str) -> None:
    h = Harness(ScriptedResponder())
    await h.send({"type": "input_audio_buffer.append", "audio": bad, "event_id": "a1"})
    error = h.of("error")[-1]["error"]
    assert error["param"] == "audio" and error["event_id"] == "a1"
