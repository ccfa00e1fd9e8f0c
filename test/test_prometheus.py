"""Alerts and dashboards an operator can trust (issue 16): the rules are valid and unit-tested with
promtool, each links to its runbook section; the committed Grafana dashboards are the generated
ones; and a real Prometheus (Debian's) scraping a gateway that served real traffic — answered by
real OVOS skills — accepts every rule's query, has a series for every metric the rules read, and
has data for every dashboard panel's query."""

from __future__ import annotations

import asyncio
import base64
import json
import math
import re
import shutil
import subprocess
import time
import urllib.parse
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import openai
import pytest
import yaml
from openai.types.realtime import RealtimeAudioInputTurnDetectionParam

from ovos_realtime_gateway.observability import dashboards
from ovos_realtime_gateway.ovos.stack import OvosStack

from .gateway_process import GatewayProcess, configured_gateway, create_key, http
from .prometheus_server import prometheus_server
from .realtime_helpers import say_and_ask, speak_in_real_time
from .speech import chunks, user_speech_pcm
from .test_webrtc_calls import place_call
from .waiting import wait_until
from .webrtc_peer import CallPeer

ROOT = Path(__file__).resolve().parent.parent
RULES = ROOT / "deploy" / "prometheus" / "alerts.yml"
RUNBOOK = ROOT / "docs" / "runbooks" / "alerts.md"
DASHBOARDS = ROOT / "deploy" / "grafana" / "dashboards"
PROVISIONING = ROOT / "deploy" / "grafana" / "provisioning"
METRIC = re.compile(r"\b(?:ovos_realtime_[a-z_]+|process_[a-z_]+)\b")
GRAFANA_VARIABLES = {"$__rate_interval": "5m", "$instance": ".*"}  # what Grafana puts in a query


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


def test_the_committed_dashboards_are_the_ones_the_module_generates() -> None:
    generated = dashboards.files()
    assert {p.name for p in DASHBOARDS.glob("*.json")} == set(generated)
    for name, text in generated.items():
        assert (DASHBOARDS / name).read_text() == text, (
            f"{name} is stale: run python -m ovos_realtime_gateway.observability.dashboards"
        )
    provider = yaml.safe_load((PROVISIONING / "dashboards" / "ovos-realtime.yml").read_text())
    assert provider["providers"][0]["type"] == "file"
    source = yaml.safe_load((PROVISIONING / "datasources" / "prometheus.yml").read_text())
    assert source["datasources"][0]["type"] == "prometheus"
    titles = {json.loads(text)["title"] for text in generated.values()}
    assert {"Overview", "Calls", "Speech pipeline", "Security", "Capacity"} == {
        title.removeprefix("ovos-realtime / ") for title in titles
    }


def _panel_queries() -> list[tuple[str, str]]:
    """(dashboard / panel, PromQL) of every committed panel, as Grafana would send it."""
    out = []
    for path in sorted(DASHBOARDS.glob("*.json")):
        board = json.loads(path.read_text())
        for panel in board["panels"]:
            for target in panel["targets"]:
                expr = target["expr"]
                for variable, value in GRAFANA_VARIABLES.items():
                    expr = expr.replace(variable, value)
                out.append((f"{board['title']} / {panel['title']}", expr))
    return out


@pytest.fixture(scope="module")
def answering(
    ovos: OvosStack, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[GatewayProcess, str]]:
    """A gateway answered by OVOS (the shared stack), which has served the traffic once already:
    every series exists before Prometheus scrapes."""
    root = tmp_path_factory.mktemp("observed")
    settings = {
        "messagebus_url": ovos.bus_url,
        "project_limits": {"throttled": {"requests_per_minute": 1}},  # a 429 for the dashboards
    }
    gateway, key = configured_gateway(root, settings, "observed", "observed")
    with gateway:
        # the bus connects and the speech plugins load after start
        wait_until(lambda: http("GET", f"{gateway.base_url}/readyz").status == 200, "/readyz", timeout=120)
        asyncio.run(_traffic(gateway, key, create_key(gateway.data_dir, "throttled")))
        yield gateway, key


@pytest.fixture(scope="module")
def prometheus(
    answering: tuple[GatewayProcess, str], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    root = tmp_path_factory.mktemp("prometheus-server")
    target = answering[0].base_url.removeprefix("http://")
    config = {
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
        "rule_files": [str(RULES)],
        "scrape_configs": [{"job_name": "ovos-realtime", "static_configs": [{"targets": [target]}]}],
    }
    with prometheus_server(root, config) as server:
        deadline = time.monotonic() + 60
        while _query(server.api, 'up{job="ovos-realtime"}') != [1.0]:
            server.check_alive()
            assert time.monotonic() < deadline, f"no scrape of the gateway:\n{server.log.read_text()[-3000:]}"
            time.sleep(0.5)
        yield server.api


@pytest.fixture(scope="module")
def observed(answering: tuple[GatewayProcess, str], prometheus: str) -> str:
    """Prometheus, once it has scraped the gateway before and after real traffic (so every rate
    over the traffic is one Prometheus can compute)."""
    process, key = answering
    asyncio.run(_traffic(process, key, create_key(process.data_dir, "throttled")))
    _until(prometheus, 'sum(ovos_realtime_calls_total{outcome="completed"})', lambda v: v >= 2)
    _until(prometheus, 'sum(ovos_realtime_turn_latency_seconds_count{stage="transcript"})', lambda v: v >= 2)
    return prometheus


def _until(api: str, promql: str, good: Callable[[float], bool], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not (values := _query(api, promql)) or not good(values[0]):
        assert time.monotonic() < deadline, f"{promql} is {values}"
        time.sleep(0.5)


async def _traffic(gateway: GatewayProcess, key: str, throttled: str) -> None:
    """What an operator's gateway sees: a policy denial, a wrong key, a throttled key, a spoken
    turn and a typed turn answered aloud by OVOS's skills, a cancelled response, a client mistake,
    and a WebRTC call placed and hung up."""
    sdk = openai.OpenAI(base_url=gateway.api_base, api_key=key, max_retries=0)
    secret = (await asyncio.to_thread(sdk.realtime.client_secrets.create)).value
    assert (
        await asyncio.to_thread(http, "GET", f"{gateway.api_base}/models", key=secret)
    ).status == 403  # a policy denial
    assert (
        await asyncio.to_thread(http, "GET", f"{gateway.api_base}/models", key="sk-ovos-wrong")
    ).status == 401
    statuses = [
        (await asyncio.to_thread(http, "GET", f"{gateway.api_base}/models", key=throttled)).status
        for _ in range(2)
    ]
    assert statuses[-1] == 429, "the throttled project allows one request a minute"
    client = openai.AsyncOpenAI(base_url=gateway.api_base, api_key=key, max_retries=0)
    async with client.realtime.connect(model="gpt-realtime") as conn:
        await conn.recv()
        vad: RealtimeAudioInputTurnDetectionParam = {"type": "server_vad", "silence_duration_ms": 500}
        await conn.session.update(
            session={
                "type": "realtime",
                "audio": {"input": {"turn_detection": vad, "transcription": {"model": "ovos-stt"}}},
            }
        )
        await conn.recv()
        await speak_in_real_time(conn, user_speech_pcm("what time is it", lead_ms=500, tail_ms=1200))
        assert (await _until_done(conn)).status == "completed"
        await conn.session.update(session={"type": "realtime", "audio": {"input": {"turn_detection": None}}})
        await say_and_ask(conn, "hello world")
        assert (await _until_done(conn)).status == "completed"
        for part in chunks(user_speech_pcm("hello world", tail_ms=300)):
            await conn.input_audio_buffer.append(audio=base64.b64encode(part).decode())
        await conn.input_audio_buffer.commit()
        await conn.response.create()
        async for event in conn:
            if event.type == "response.created":  # it waits for the transcript: cancelled before
                await conn.response.cancel()
                break
        assert (await _until_done(conn)).status == "cancelled"
        await conn.send({"type": "conversation.item.retrieve", "item_id": "item_missing"})
        async for event in conn:
            if event.type == "error":
                break
    await client.close()
    peer = CallPeer()
    try:
        call_id = await place_call(sdk, peer)
        await peer.until("session.created")
        await asyncio.to_thread(sdk.realtime.calls.hangup, call_id)
    finally:
        await peer.close()
    sdk.close()


async def _until_done(conn: Any) -> Any:
    async for event in conn:
        if event.type == "response.done":
            return event.response
    raise AssertionError("the connection closed before response.done")


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


@pytest.mark.slow
def test_a_real_prometheus_takes_every_rule_and_has_what_each_reads(observed: str) -> None:
    names: set[str] = set()
    for rule in _rules():
        expr = rule["expr"]
        assert _query(observed, expr) is not None, f"{rule['alert']}: Prometheus refuses {expr!r}"
        names |= set(METRIC.findall(expr))
    assert "ovos_realtime_responses_total" in names and "process_resident_memory_bytes" in names
    missing = {name for name in names if not _query(observed, f"count({name})")}
    assert not missing, f"the gateway exposes no series for {sorted(missing)}"
    completed = _query(observed, 'sum(ovos_realtime_responses_total{status="completed"})')
    assert completed and completed[0] >= 2, "the skills' answers were counted as completed"
    assert _query(
        observed, 'ovos_realtime_calls_total{transport="webrtc",reason="hangup",outcome="completed"}'
    ) == [2.0], "each of the two calls was counted, with how it ended"


@pytest.mark.slow
def test_every_dashboard_panel_has_data_in_a_real_prometheus(observed: str) -> None:
    """Each panel's query, as Grafana sends it, is valid and returns at least one number (NaN is
    a panel with nothing to show); the $instance variable's own query too."""
    empty = []
    queries = _panel_queries()
    assert len(queries) >= 35
    for where, expr in [("$instance", "count by (instance) (ovos_realtime_build_info)"), *queries]:
        values = _query(observed, expr)
        assert values is not None, f"{where}: Prometheus refuses {expr!r}"
        if not any(math.isfinite(v) for v in values):
            empty.append(f"{where}: {expr} → {values}")
    assert not empty, "panels without data:\n" + "\n".join(empty)
    stages = _query(observed, "count by (stage) (ovos_realtime_turn_latency_seconds_count > 0)")
    assert stages is not None and len(stages) == 3, "transcript, first_answer and first_audio were timed"
    denied = _query(observed, 'sum(ovos_realtime_policy_decisions_total{result="denied"})')
    assert denied == [2.0], "the two rounds' policy denials"
    throttled = _query(
        observed, 'sum(ovos_realtime_rate_limit_decisions_total{limit="requests",result="throttled"})'
    )
    assert throttled and throttled[0] >= 2, "the two rounds' 429s"
