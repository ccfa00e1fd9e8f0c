"""REST throughput of `POST /v1/realtime/client_secrets` beside a bare aiohttp baseline.

Both servers run as separate single processes on loopback and get the same load, in the same
run, from an aiohttp client here: the ratio (gateway / baseline) is the figure to compare across
machines. The gateway does auth (salted hash), policy (Rego), rate limiting, validation, a store
write and the audit row per request; the baseline returns the same bytes and does nothing.

Usage: .venv/bin/python bench/rest_client_secrets.py [--seconds 5] [--concurrency 16]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import aiohttp

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from test.gateway_process import GatewayProcess, create_key  # noqa: E402

BODY = {"session": {"type": "realtime", "model": "gpt-realtime", "instructions": "Be brief."}}


async def load(url: str, key: str, seconds: float, concurrency: int) -> tuple[float, list[float]]:
    """Requests per second over `seconds`, and every request's latency (s)."""
    latencies: list[float] = []
    payload = json.dumps(BODY).encode()
    headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
    deadline = time.perf_counter() + seconds

    async def worker(http: aiohttp.ClientSession) -> None:
        while time.perf_counter() < deadline:
            start = time.perf_counter()
            async with http.post(url, data=payload, headers=headers) as response:
                await response.read()
                if response.status != 200:
                    raise SystemExit(f"{url}: HTTP {response.status}: {await response.text()}")
            latencies.append(time.perf_counter() - start)

    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector) as http:
        for _ in range(20):  # warm up: connections, caches, the policy
            async with http.post(url, data=payload, headers=headers) as response:
                await response.read()
        latencies.clear()
        began = time.perf_counter()
        await asyncio.gather(*(worker(http) for _ in range(concurrency)))
        elapsed = time.perf_counter() - began
    return len(latencies) / elapsed, latencies


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def start_baseline(body_file: Path, log: Path) -> tuple[subprocess.Popen[bytes], str]:
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [sys.executable, str(ROOT / "bench" / "bare_server.py"), str(body_file)], stdout=out
        )
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        match = re.search(r"listening on (\S+)", log.read_text())
        if match:
            return proc, match.group(1)
        time.sleep(0.05)  # noqa: TID251 - a plain poll, no event loop here
    proc.kill()
    raise SystemExit("baseline server did not start")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--concurrency", type=int, default=16)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as tmp:
        data_dir = Path(tmp) / "data"
        config = Path(tmp) / "bench.json"
        unlimited = {"requests_per_minute": 10_000_000, "requests_per_minute_per_key": 10_000_000}
        config.write_text(json.dumps({"rate_limits": unlimited, "log_level": "WARNING"}))
        data_dir.mkdir()
        key = create_key(data_dir, "bench")
        with GatewayProcess(data_dir, "--config", str(config)) as gateway:
            url = f"{gateway.api_base}/realtime/client_secrets"
            gateway_rps, gateway_lat = asyncio.run(load(url, key, args.seconds, args.concurrency))
            sample = asyncio.run(_one(url, key))
        body_file = Path(tmp) / "body.json"
        body_file.write_bytes(sample)
        proc, base = start_baseline(body_file, Path(tmp) / "baseline.log")
        try:
            base_url = f"{base}/v1/realtime/client_secrets"
            baseline_rps, baseline_lat = asyncio.run(load(base_url, key, args.seconds, args.concurrency))
        finally:
            proc.terminate()
            proc.wait(10)

    print(
        f"client_secrets.create, {args.concurrency} concurrent clients, {args.seconds:.0f} s each, loopback"
    )
    print(f"{'server':<28}{'req/s':>10}{'p50 ms':>10}{'p99 ms':>10}")
    for name, rps, lat in (
        ("ovos-realtime gateway", gateway_rps, gateway_lat),
        ("bare aiohttp (baseline)", baseline_rps, baseline_lat),
    ):
        print(
            f"{name:<28}{rps:>10.0f}{percentile(lat, 0.5) * 1000:>10.1f}{percentile(lat, 0.99) * 1000:>10.1f}"
        )
    print(f"ratio gateway/baseline: {gateway_rps / baseline_rps:.2f}")


async def _one(url: str, key: str) -> bytes:
    async with (
        aiohttp.ClientSession() as http,
        http.post(url, json=BODY, headers={"Authorization": f"Bearer {key}"}) as r,
    ):
        return await r.read()


if __name__ == "__main__":
    main()
