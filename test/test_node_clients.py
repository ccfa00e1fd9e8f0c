"""Node clients over TLS (checklist 13, 40): the `openai` npm package's OpenAIRealtimeWS and an
@openai/agents-realtime session, against a gateway with a self-signed certificate that Node
trusts through NODE_EXTRA_CA_CERTS (as docs/security.md tells users)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from .gateway_process import GatewayProcess, create_key

NODE_DIR = Path(__file__).parent / "node"


@pytest.fixture(scope="module")
def tls_gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[GatewayProcess, str]]:
    data_dir = tmp_path_factory.mktemp("node") / "data"
    data_dir.mkdir()
    key = create_key(data_dir, "node")
    with GatewayProcess(data_dir, "--tls-self-signed", log_name="node-tls") as process:
        assert process.base_url.startswith("https://")
        yield process, key


def run_node(script: str, argument: str, key: str, data_dir: Path) -> dict[str, Any]:
    node = shutil.which("node")
    if node is None or not (NODE_DIR / "node_modules").is_dir():
        pytest.fail("Node or test/node/node_modules is missing: scripts/test installs them (npm ci)")
    env = {
        **os.environ,
        "OPENAI_API_KEY": key,
        "NODE_EXTRA_CA_CERTS": str(data_dir / "tls" / "cert.pem"),
    }
    done = subprocess.run(
        [node, script, argument], cwd=NODE_DIR, env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, f"{script} failed: {done.stdout}\n{done.stderr}"
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def test_openai_realtime_ws_over_tls(tls_gateway: tuple[GatewayProcess, str]) -> None:
    gateway, key = tls_gateway
    result = run_node("realtime_ws.mjs", gateway.api_base, key, gateway.data_dir)
    assert result["url"] == gateway.api_base.replace("https://", "wss://") + "/realtime?model=gpt-realtime"
    assert result["errors"] == []
    assert result["seen"][:8] == [
        "session.created",
        "session.updated",
        "input_audio_buffer.committed",
        "conversation.item.added",
        "conversation.item.done",
        "response.created",
        "response.done",
        "status:failed",  # no OVOS behind this gateway: the response fails, cleanly
    ]


def test_agents_realtime_session_sees_every_event(tls_gateway: tuple[GatewayProcess, str]) -> None:
    gateway, key = tls_gateway
    url = gateway.api_base.replace("https://", "wss://") + "/realtime?model=gpt-realtime"
    result = run_node("agents_session.mjs", url, key, gateway.data_dir)
    assert result["errors"] == []
    raw = result["raw"]
    assert raw[:3] == ["session.created", "session.updated", "session.updated"]  # agents' opening updates
    for expected in (
        "input_audio_buffer.committed",
        "conversation.item.done",
        "response.created",
        "response.done",
    ):
        assert expected in raw
    # every raw frame passed the agents schema: it was emitted under its own type, not only as '*'
    typed = [name for name in result["emitted"] if "." in name]
    assert typed == raw, f"the agents client dropped: {[t for t in raw if t not in typed]}"
