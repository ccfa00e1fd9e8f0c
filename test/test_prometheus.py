"""Alerts an operator can trust (issue 16): the rules are valid and unit-tested with promtool,
each links to its runbook section, and a real Prometheus (Debian's) scraping a gateway that served
real traffic accepts every rule's query and has a series for every metric the rules read."""

from __future__ import annotations

import asyncio
import base64
import json
import re
import shutil
import subprocess
import time
import urllib.parse
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import openai
import pytest
import yaml

from ovos_realtime_gateway.ovos.stack import free_port

from .gateway_process import GatewayProcess, configured_gateway, http
from .speech import chunks, user_speech_pcm
from .test_webrtc_calls import place_call
from .webrtc_peer import CallPeer

ROOT = Path(__file__).resolve().parent.parent
RULES = ROOT / "deploy" / "prometheus" / "alerts.yml"
RUNBOOK = ROOT / "docs" / "runbooks" / "alerts.md"
METRIC = re.compile(r"\b(?:ovos_realtime_[a-z_]+|process_resident_memory_bytes)\b")


def _rules() -> list[dict[str, Any]]:
    groups = yaml.safe_load(RULES.read_text())["groups"]
    return [rule for group in groups for rule in group["rules"]]


def _promtool() -> str:
    found = shutil.which("promtool")
    if found is None:
        pytest.fail("promtool is missing: scripts/install-system-deps test installs prometheus")
    return found


def test_the_alert_rules_are_valid_and_pass_their_unit_tests() -> None:
    checked = subprocess.run([_promtool(), "check", "rules", str(RULES)], capture_output=True, text=True)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    tested = subprocess.run(
        [_promtool(), "test", "rules", "alerts_test.yml"], cwd=RULES.parent, capture_output=True, text=True
    )
    assert tested.returncode == 0, tested.stdout + tested.stderr
    tested_alerts = set(re.findall(r"alertname: (\w+)", (RULES.parent / "alerts_test.yml").read_text()))
    assert {rule["alert"] for rule in _rules()} <= tested_alerts, "every alert has a unit test"


def test_every_alert_links_to_its_runbook_section() -> None:
    headings = {
        re.sub(r"[^a-z0-9 -]", "", line.lstrip("# ").strip().lower()).replace(" ", "-")
        for line in RUNBOOK.read_text().splitlines()
        if line.startswith("## ")
    }
    for rule in _rules():
        url = rule["annotations"]["runbook_url"]
        page, _, anchor = url.partition("#")
        assert (ROOT / page) == RUNBOOK, url
        assert anchor in headings, f"{rule['alert']}: no section #{anchor} in {page}"


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[GatewayProcess, str]]:
    root = tmp_path_factory.mktemp("prometheus")
    gateway, key = configured_gateway(root, {}, "observed", "observed")
    with gateway:
        asyncio.run(_traffic(gateway, key))
        yield gateway, key


async def _traffic(gateway: GatewayProcess, key: str) -> None:
    """What an operator's gateway sees: a text turn, a spoken turn, a denied request, a wrong
    key, and a WebRTC call placed and hung up."""
    sdk = openai.OpenAI(base_url=gateway.api_base, api_key=key, max_retries=0)
    secret = sdk.realtime.client_secrets.create().value
    assert http("GET", f"{gateway.api_base}/models", key=secret).status == 403  # a policy denial
    assert http("GET", f"{gateway.api_base}/models", key="sk-ovos-wrong").status == 401
    client = openai.AsyncOpenAI(base_url=gateway.api_base, api_key=key, max_retries=0)
    async with client.realtime.connect(model="gpt-realtime") as conn:
        await conn.recv()
        transcription = {"model": "whisper-1"}
        await conn.session.update(
            session={
                "type": "realtime",
                "output_modalities": ["text"],
                "audio": {"input": {"turn_detection": None, "transcription": transcription}},  # type: ignore[typeddict-item]
            }
        )
        for part in chunks(user_speech_pcm("what time is it", tail_ms=300)):
            await conn.input_audio_buffer.append(audio=base64.b64encode(part).decode())
        await conn.input_audio_buffer.commit()
        await conn.response.create()
        seen: set[str] = set()
        async for event in conn:
            seen.add(event.type)
            transcribed = any(t.startswith("conversation.item.input_audio_transcription.") for t in seen)
            if "response.done" in seen and transcribed:
                break
    await client.close()
    peer = CallPeer()
    try:
        call_id = await place_call(sdk, peer)
        await peer.until("session.created")
        await asyncio.to_thread(sdk.realtime.calls.hangup, call_id)
    finally:
        await peer.close()


@pytest.fixture(scope="module")
def prometheus(served: tuple[GatewayProcess, str], tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    binary = shutil.which("prometheus")
    if binary is None:
        pytest.fail("prometheus is missing: scripts/install-system-deps test installs it")
    gateway, _ = served
    root = tmp_path_factory.mktemp("prometheus-server")
    target = gateway.base_url.removeprefix("http://")
    config = {
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
        "rule_files": [str(RULES)],
        "scrape_configs": [{"job_name": "ovos-realtime", "static_configs": [{"targets": [target]}]}],
    }
    (root / "prometheus.yml").write_text(yaml.safe_dump(config))
    port = free_port()
    log = root / "prometheus.log"
    with open(log, "wb") as out:
        server = subprocess.Popen(
            [
                binary,
                f"--config.file={root / 'prometheus.yml'}",
                f"--storage.tsdb.path={root / 'data'}",
                f"--web.listen-address=127.0.0.1:{port}",
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    api = f"http://127.0.0.1:{port}/api/v1"
    try:
        deadline = time.monotonic() + 60
        while _query(api, 'up{job="ovos-realtime"}') != [1.0]:
            assert server.poll() is None, log.read_text()[-3000:]
            assert time.monotonic() < deadline, f"no scrape of the gateway:\n{log.read_text()[-3000:]}"
            time.sleep(0.5)
        yield api
    finally:
        server.terminate()
        server.wait(30)


def _query(api: str, promql: str) -> list[float] | None:
    """The values of an instant query, or None when Prometheus refuses it."""
    url = f"{api}/query?" + urllib.parse.urlencode({"query": promql})
    try:
        answer = json.loads(http("GET", url, timeout=10).body)
    except (OSError, ValueError):
        return None
    if answer.get("status") != "success":
        return None
    return [float(sample["value"][1]) for sample in answer["data"]["result"]]


def test_a_real_prometheus_takes_every_rule_and_has_what_each_reads(prometheus: str) -> None:
    names: set[str] = set()
    for rule in _rules():
        expr = rule["expr"]
        assert _query(prometheus, expr) is not None, f"{rule['alert']}: Prometheus refuses {expr!r}"
        names |= set(METRIC.findall(expr))
    assert "ovos_realtime_responses_total" in names and "process_resident_memory_bytes" in names
    deadline = time.monotonic() + 30
    missing = names
    while missing and time.monotonic() < deadline:
        missing = {name for name in names if not _query(prometheus, f"count({name})")}
        time.sleep(1)
    assert not missing, f"the gateway exposes no series for {sorted(missing)}"
    failed = _query(
        prometheus, 'sum(ovos_realtime_responses_total{status="failed",reason="responder_unavailable"})'
    )
    assert failed and failed[0] >= 1, "the response (no OVOS here) was counted as failed, with why"
    assert _query(prometheus, 'ovos_realtime_calls_total{transport="webrtc",reason="hangup"}') == [1.0]
