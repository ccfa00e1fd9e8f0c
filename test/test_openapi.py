"""The OpenAPI 3.1 document: shipped, valid, served, complete, and true of the live server."""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from openapi_spec_validator import validate

from ovos_realtime_gateway.app import create_app
from ovos_realtime_gateway.rest.health import openapi_text
from ovos_realtime_gateway.rest.openapi import render
from ovos_realtime_gateway.settings import GatewaySettings

from .gateway_process import GatewayProcess, create_key, http

WEBSOCKET_ONLY = {("GET", "/v1/realtime"), ("GET", "/ovos/microphone")}  # WebSockets: docs/protocol.md


def test_shipped_document_is_generated_from_the_models() -> None:
    assert openapi_text() == render(), (
        "openapi.yaml is stale: run `python -m ovos_realtime_gateway.rest.openapi`"
    )


def test_document_is_valid_openapi_3_1() -> None:
    document = yaml.safe_load(openapi_text())
    assert document["openapi"].startswith("3.1")
    validate(document)


def test_every_route_is_documented() -> None:
    app = create_app(GatewaySettings())
    routes = {
        (route.method, route.resource.canonical)
        for route in app.router.routes()
        if route.method != "HEAD" and route.resource is not None
    }
    paths = yaml.safe_load(openapi_text())["paths"]
    documented = {(method.upper(), path) for path, item in paths.items() for method in item}
    assert routes - WEBSOCKET_ONLY == documented


def test_served_document_is_the_shipped_one_for_the_origin_asked(gateway: GatewayProcess) -> None:
    response = http("GET", f"{gateway.base_url}/openapi.yaml")
    assert response.status == 200
    assert response.headers["content-type"].startswith("application/yaml")
    served, shipped = yaml.safe_load(response.body), yaml.safe_load(openapi_text())
    assert served["servers"] == [{"url": gateway.base_url}]  # not the shipped 127.0.0.1:8080
    assert served | {"servers": shipped["servers"]} == shipped


@pytest.fixture(scope="module")
def fuzz_gateway(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[GatewayProcess, str]]:
    """A gateway with limits out of the fuzzer's way and a custom model list."""
    root = tmp_path_factory.mktemp("fuzz")
    config = root / "gateway.json"
    config.write_text(
        json.dumps(
            {
                "rate_limits": {"requests_per_minute": 1_000_000, "requests_per_minute_per_key": 1_000_000},
                "models": ["gpt-realtime", "ovos-realtime"],
                "log_level": "WARNING",
            }
        )
    )
    data_dir = root / "data"
    data_dir.mkdir()
    key = create_key(data_dir, "fuzz")
    with GatewayProcess(data_dir, "--config", str(config), log_name="fuzz") as process:
        yield process, key


def test_served_document_names_the_configured_models(fuzz_gateway: tuple[GatewayProcess, str]) -> None:
    gateway, _ = fuzz_gateway
    document = yaml.safe_load(http("GET", f"{gateway.base_url}/openapi.yaml").body)
    model = document["components"]["schemas"]["RealtimeSessionRequest"]["properties"]["model"]
    assert {"type": "string", "enum": ["gpt-realtime", "ovos-realtime"]} in model["anyOf"]
    validate(document)


@pytest.mark.slow
def test_schemathesis_finds_no_server_error_and_no_spec_violation(
    fuzz_gateway: tuple[GatewayProcess, str], tmp_path: Path
) -> None:
    """Every check schemathesis has (5xx, status codes, headers, response schemas, negative data
    rejected, positive data accepted, auth ignored, ...) over every documented operation."""
    gateway, key = fuzz_gateway
    schemathesis = Path(sys.executable).with_name("schemathesis")
    command = [
        str(schemathesis),
        "run",
        f"{gateway.base_url}/openapi.yaml",
        "--url",
        gateway.base_url,
        "--header",
        f"Authorization: Bearer {key}",
        "--checks",
        "all",
        "--max-examples",
        "100",
        "--seed",
        "20261127",
        "--workers",
        "2",
        "--no-color",
    ]
    # A schema-valid string is rarely a usable SDP offer: 400 is the right answer to random offers.
    (tmp_path / "schemathesis.toml").write_text(
        '[[operations]]\ninclude-operation-id = "createCall"\n'
        'checks.positive_data_acceptance.expected-statuses = ["201", "400", "401", "403", "429"]\n'
    )
    done = subprocess.run(command, capture_output=True, text=True, timeout=600, cwd=tmp_path)
    report = done.stdout + done.stderr
    assert done.returncode == 0, report[-8000:]
    assert "Tested: 16" in report and "failures" not in report.split("SUMMARY")[-1].lower(), report[-4000:]
    assert "Traceback" not in gateway.logs(), gateway.logs()[-4000:]
