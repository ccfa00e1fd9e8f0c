"""`metrics_token`: with it set, `GET /metrics` answers only `Authorization: Bearer <token>` (401 with
`WWW-Authenticate: Bearer` otherwise, behind the auth-failure throttle, audited once per window),
the probes stay open, a rotated token file is used without a restart; unset, /metrics is open. A
real Prometheus (Debian's) scraping with the shipped Compose scrape config's `credentials_file`
sees the gateway up, and a job without it sees it down."""

from __future__ import annotations

import json
import sqlite3
import urllib.parse
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from pydantic import ValidationError

from ovos_realtime_gateway.settings import GatewaySettings

from .gateway_process import GatewayProcess, HttpResult, configured_gateway, http
from .prometheus_server import prometheus_server
from .waiting import wait_until

ROOT = Path(__file__).resolve().parent.parent
TOKEN = "metrics-token-0123456789abcdef"
ROTATED = "metrics-token-rotated-fedcba9876543210"


def _metrics(gateway: GatewayProcess, token: str | None = None) -> HttpResult:
    headers = {} if token is None else {"Authorization": f"Bearer {token}"}
    return http("GET", f"{gateway.base_url}/metrics", headers=headers)


def _audit(data_dir: Path, action: str) -> list[dict[str, Any]]:
    with sqlite3.connect(data_dir / "ovos-realtime.db") as db:
        db.row_factory = sqlite3.Row
        rows = db.execute("select * from audit_log where action = ? order by ts", (action,)).fetchall()
    return [{**dict(row), "detail": json.loads(row["detail"])} for row in rows]


def _token_file(root: Path, value: str) -> Path:
    path = root / "metrics-token"
    path.write_text(value + "\n")  # as `echo TOKEN > file` writes it: the reference strips it
    return path


def test_a_malformed_reference_is_refused_naming_the_setting() -> None:
    with pytest.raises(ValidationError, match="metrics_token") as refused:
        GatewaySettings(metrics_token="env:not a name")
    assert "expected env:NAME" in str(refused.value)


def test_with_the_token_set_metrics_need_it_and_the_probes_stay_open(tmp_path: Path) -> None:
    token_file = _token_file(tmp_path, TOKEN)
    settings = {
        "metrics_token": f"file:{token_file}",
        "auth_failures_per_minute": 5,
        "vault": {"refresh_seconds": 0.5},  # how often file: references are read again
    }
    gateway, _ = configured_gateway(tmp_path, settings, "alpha", "token")
    with gateway:
        missing = _metrics(gateway)
        assert missing.status == 401
        assert missing.headers["www-authenticate"].startswith("Bearer")
        assert missing.json()["error"]["type"] == "invalid_request_error"
        assert "metrics_token" in missing.json()["error"]["message"]
        assert b"ovos_realtime_" not in missing.body

        wrong = _metrics(gateway, "metrics-token-wrong-value")
        assert wrong.status == 401 and wrong.headers["www-authenticate"].startswith("Bearer")
        assert wrong.json()["error"]["code"] == "invalid_metrics_token"
        assert "metrics-token-wrong-value" not in wrong.body.decode()  # masked, as keys are
        assert _metrics(gateway, TOKEN.upper()).status == 401  # exact, not case-insensitive

        right = _metrics(gateway, TOKEN)
        assert right.status == 200
        assert right.headers["content-type"].startswith("text/plain")
        failures = {
            line.split(" ")[0]: float(line.rsplit(" ", 1)[1])
            for line in right.body.decode().splitlines()
            if line.startswith("ovos_realtime_auth_failures_total")
        }
        assert failures['ovos_realtime_auth_failures_total{reason="missing"}'] == 1
        assert failures['ovos_realtime_auth_failures_total{reason="invalid_token"}'] == 2

        # the probes a kubelet or a balancer sends carry no token
        assert http("GET", f"{gateway.base_url}/healthz").status == 200
        assert http("GET", f"{gateway.base_url}/readyz").status == 200

        # the file is read again while serving: the old token stops working, the rotated one works
        token_file.write_text(ROTATED + "\n")
        wait_until(lambda: _metrics(gateway, TOKEN).status == 401, "the old metrics token refused")
        assert _metrics(gateway, ROTATED).status == 200

        # past auth_failures_per_minute the address is throttled, whatever it presents
        wait_until(lambda: _metrics(gateway, "metrics-token-wrong").status == 429, "the throttle")
        throttled = _metrics(gateway, ROTATED)
        assert throttled.status == 429
        assert throttled.json()["error"]["code"] == "rate_limit_exceeded"
    assert TOKEN not in gateway.logs() and ROTATED not in gateway.logs()

    # refusals are audited, one row per address, reason and window (stopping closes the window)
    refused = _audit(gateway.data_dir, "metrics.read")
    attempts: dict[str, int] = {}
    for row in refused:
        assert row["project_id"] is None and row["principal"] is None
        if row["decision"] == "unauthenticated":
            assert row["status"] == 401
            reason = row["detail"]["reason"]
            attempts[reason] = attempts.get(reason, 0) + row["detail"].get("attempts", 1)
    assert attempts["missing"] == 1 and attempts["invalid_token"] >= 4, attempts
    assert len([row for row in refused if row["decision"] == "unauthenticated"]) <= 4  # not one per try
    assert {row["status"] for row in refused if row["decision"] == "throttled"} == {429}


def test_without_the_token_metrics_are_open(tmp_path: Path) -> None:
    gateway, _ = configured_gateway(tmp_path, {}, "alpha", "open")
    with gateway:
        answer = _metrics(gateway)
        assert answer.status == 200
        assert b"ovos_realtime_auth_failures_total" in answer.body
        assert _metrics(gateway, "anything").status == 200  # a header is not asked for, nor checked


def test_the_compose_stack_gives_the_gateway_and_prometheus_the_same_token_file() -> None:
    """What test_containers runs (too long for every change) rests on this wiring: one file,
    mounted into both containers where the gateway's setting and Prometheus's job read it."""
    compose = yaml.safe_load((ROOT / "compose.yaml").read_text())["services"]
    assistant = yaml.safe_load((ROOT / "deploy" / "compose" / "assistant.yaml").read_text())
    (job,) = yaml.safe_load((ROOT / "deploy" / "compose" / "prometheus.yml").read_text())["scrape_configs"]
    path = job["authorization"]["credentials_file"]
    assert assistant["metrics_token"] == f"file:{path}"
    mount = f"${{VOICEENGINE_METRICS_TOKEN_FILE:-./deploy/compose/metrics-token}}:{path}:ro"
    for service in ("voiceengine-assistant", "voiceengine-prometheus"):
        assert mount in compose[service]["volumes"], service
    assert (ROOT / "deploy" / "compose" / "metrics-token").read_text().strip()


@pytest.fixture
def protected(tmp_path: Path) -> Iterator[tuple[GatewayProcess, Path]]:
    token_file = _token_file(tmp_path, TOKEN)
    gateway, _ = configured_gateway(tmp_path, {"metrics_token": f"file:{token_file}"}, "alpha", "scraped")
    with gateway:
        yield gateway, token_file


def _up(api: str) -> dict[str, float]:
    url = f"{api}/query?" + urllib.parse.urlencode({"query": "up"})
    try:
        answer = http("GET", url, timeout=10).json()
    except (OSError, ValueError):
        return {}
    if answer.get("status") != "success":
        return {}
    return {s["metric"]["job"]: float(s["value"][1]) for s in answer["data"]["result"]}


@pytest.mark.slow
def test_a_real_prometheus_scrapes_with_the_shipped_credentials_file(
    protected: tuple[GatewayProcess, Path], tmp_path: Path
) -> None:
    """The shipped Compose scrape config (its `credentials_file` pointed at the test's token file)
    scrapes the protected gateway; the same job without it is refused: Prometheus says `up` 0."""
    gateway, token_file = protected
    config = yaml.safe_load((ROOT / "deploy" / "compose" / "prometheus.yml").read_text())
    (job,) = config["scrape_configs"]
    assert job["authorization"]["credentials_file"] == "/run/secrets/metrics-token"
    target = gateway.base_url.removeprefix("http://")
    job["static_configs"] = [{"targets": [target]}]
    job["authorization"]["credentials_file"] = str(token_file)
    bare = {"job_name": "without-token", "static_configs": [{"targets": [target]}]}
    config = {
        "global": {"scrape_interval": "1s"},
        "scrape_configs": [job, bare],
    }  # (no rule_files: the shipped path is the container's)
    with prometheus_server(tmp_path, config) as server:
        want = {job["job_name"]: 1.0, "without-token": 0.0}

        def scraped() -> bool:
            server.check_alive()
            return _up(server.api) == want

        wait_until(scraped, "Prometheus's first scrape of both jobs", timeout=60, every=0.5)
    assert TOKEN not in gateway.logs()
