"""A refusal a client keeps causing is counted, not written per request: a throttled address or a
rate-limited key costs one audit row per window, which carries the number of attempts."""

from __future__ import annotations

import json
import sqlite3
import time
from http.client import HTTPConnection
from pathlib import Path
from typing import Any

from .gateway_process import GatewayProcess, configured_gateway, http

ATTEMPTS = 300


def _hammer(gateway: GatewayProcess, key: str, count: int) -> list[tuple[int, str]]:
    """`count` GET /v1/models on one keep-alive connection: (status, request id) of each."""
    host, port = gateway.base_url.removeprefix("http://").split(":")
    conn = HTTPConnection(host, int(port), timeout=30)
    answers = []
    try:
        for _ in range(count):
            conn.request("GET", "/v1/models", headers={"Authorization": f"Bearer {key}"})
            response = conn.getresponse()
            response.read()
            answers.append((response.status, response.headers["x-request-id"]))
    finally:
        conn.close()
    return answers


def _rows(data_dir: Path, decision: str) -> list[dict[str, Any]]:
    with sqlite3.connect(data_dir / "ovos-realtime.db") as db:
        db.row_factory = sqlite3.Row
        rows = db.execute("select * from audit_log where decision = ? order by ts", (decision,)).fetchall()
    return [{**dict(row), "detail": json.loads(row["detail"])} for row in rows]


def _metric(gateway: GatewayProcess, line: str) -> float:
    text = http("GET", f"{gateway.base_url}/metrics").body.decode()
    return float(next(s for s in text.splitlines() if s.startswith(line)).rsplit(" ", 1)[1])


def test_a_throttled_address_costs_one_audit_row_not_one_per_attempt(tmp_path: Path) -> None:
    gateway, _ = configured_gateway(tmp_path, {"auth_failures_per_minute": 5}, "alpha", "hammer")
    with gateway:
        assert [status for status, _ in _hammer(gateway, "sk-ovos-wrong", 5)] == [401] * 5
        started = time.monotonic()
        answers = _hammer(gateway, "sk-ovos-wrong", ATTEMPTS)
        spanned = time.monotonic() - started
        # (a very slow machine may see the bucket refill a token every 12 s: that attempt is a 401)
        throttled_ids = [request_id for status, request_id in answers if status == 429]
        assert len(throttled_ids) >= ATTEMPTS - spanned / 12 - 1
        # every attempt is still counted in the metrics
        metric = _metric(gateway, 'ovos_realtime_auth_failures_total{reason="throttled"}')
        assert metric == len(throttled_ids)
    # stopping flushes the open window
    assert len(_rows(gateway.data_dir, "unauthenticated")) == 5 + ATTEMPTS - len(throttled_ids)
    throttled = _rows(gateway.data_dir, "throttled")
    assert 1 <= len(throttled) <= 1 + spanned // 60, f"{len(throttled)} rows for {ATTEMPTS} attempts"
    assert sum(row["detail"]["attempts"] for row in throttled) == len(throttled_ids)
    row = throttled[0]
    assert row["detail"]["remote"] == "127.0.0.0/24"  # audit_client_address: truncate
    assert row["detail"]["actions"] == {"models.list": row["detail"]["attempts"]}
    assert row["request_id"] == throttled_ids[0]  # the row leads to the first throttled request
    assert row["ts"] <= row["detail"]["last_ts"]


def test_windows_close_while_serving_and_stay_few(tmp_path: Path) -> None:
    """With a short window the rows appear while the gateway serves; however slow the machine,
    there are at most one per window the hammering spanned, and they add up to every attempt."""
    window = 1.0
    settings = {"auth_failures_per_minute": 5, "audit_repeats_window_seconds": window}
    gateway, _ = configured_gateway(tmp_path, settings, "alpha", "windows")
    with gateway:
        _hammer(gateway, "sk-ovos-wrong", 5)
        started = time.monotonic()
        _hammer(gateway, "sk-ovos-wrong", ATTEMPTS)
        spanned = time.monotonic() - started
        deadline = time.monotonic() + 30 + window
        counted = 0
        while counted < ATTEMPTS and time.monotonic() < deadline:
            time.sleep(0.1)
            rows = _rows(gateway.data_dir, "throttled")
            counted = sum(r["detail"]["attempts"] for r in rows)
        assert counted == ATTEMPTS, f"rows counted {counted} attempts of {ATTEMPTS}"
        assert 1 <= len(rows) <= spanned / window + 2, f"{len(rows)} rows over {spanned:.1f} s"
        assert gateway.proc is not None and gateway.proc.poll() is None


def test_a_rate_limited_key_costs_one_audit_row_per_window(tmp_path: Path) -> None:
    settings = {"rate_limits": {"requests_per_minute_per_key": 3}}
    gateway, key = configured_gateway(tmp_path, settings, "alpha", "limited")
    with gateway:
        started = time.monotonic()
        statuses = [status for status, _ in _hammer(gateway, key, 100)]
        spanned = time.monotonic() - started
        refused = statuses.count(429)
        assert statuses[:3] == [200] * 3 and refused >= 97 - spanned / 20  # a token per 20 s
        assert _metric(gateway, 'ovos_realtime_rate_limited_total{scope="key"}') == refused
    limited = _rows(gateway.data_dir, "rate_limited")
    assert 1 <= len(limited) <= 1 + spanned // 60
    assert sum(row["detail"]["attempts"] for row in limited) == refused
    assert limited[0]["detail"]["scope"] == "key"
    assert limited[0]["principal"].startswith("key_") and limited[0]["project_id"].startswith("proj_")
