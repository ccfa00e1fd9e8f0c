"""What structured logs and tracing cost: the REST and realtime-append benches against three
gateways side by side, in one run.

- quiet: text logs at WARNING, tracing off (what the other benches run);
- JSON logs at INFO (an access line per request), tracing off;
- JSON logs at INFO, tracing on, every span exported over OTLP/HTTP to a real receiver on loopback
  (`test/otlp_receiver.py`, decoding each request as a collector does, in this process).

The loads of `bench/rest_client_secrets.py` (client_secrets.create, concurrent keep-alive
clients) and `bench/realtime_append.py` (20 ms append frames as fast as they go, with server VAD
and without) run against each gateway in turn, `--rounds` times interleaved so that the machine's
drift hits all three alike; the medians and their ratios to the quiet gateway are printed.

Usage: .venv/bin/python bench/observability_overhead.py [--rounds 3] [--seconds 5] [--frames 3000]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.realtime_append import SERVER_VAD, UNCAPPED, audio_frames, gateway_throughput  # noqa: E402
from bench.rest_client_secrets import load  # noqa: E402
from test.gateway_process import GatewayProcess, configured_gateway  # noqa: E402
from test.otlp_receiver import OtlpReceiver  # noqa: E402

UNLIMITED = {
    **UNCAPPED,
    "rate_limits": {
        **UNCAPPED["rate_limits"],  # type: ignore[dict-item]
        "requests_per_minute": 10_000_000,
        "requests_per_minute_per_key": 10_000_000,
    },
}


def configs(endpoint: str) -> dict[str, dict[str, Any]]:
    return {
        "quiet (text, WARNING, no tracing)": {"log_level": "WARNING", "log_format": "text"},
        "JSON logs, tracing off": {"log_level": "INFO", "log_format": "json"},
        "JSON logs, tracing on (OTLP)": {
            "log_level": "INFO",
            "log_format": "json",
            "tracing": {"enabled": True, "otlp_endpoint": endpoint},
        },
    }


def measure(
    gateway: GatewayProcess, key: str, frames: list[str], args: argparse.Namespace
) -> dict[str, float]:
    rest = f"{gateway.api_base}/realtime/client_secrets"
    ws = gateway.api_base.replace("http://", "ws://") + "/realtime?model=gpt-realtime"
    return {
        "rest": asyncio.run(load(rest, key, args.seconds, args.concurrency))[0],
        "append_vad": asyncio.run(gateway_throughput(ws, key, frames, SERVER_VAD)),
        "append": asyncio.run(gateway_throughput(ws, key, frames, None)),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=5.0, help="REST load per round and gateway")
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--frames", type=int, default=3000)
    args = parser.parse_args()
    cycle = audio_frames()
    frames = (cycle * (args.frames // len(cycle) + 1))[: args.frames]
    results: dict[str, list[dict[str, float]]] = {}
    with tempfile.TemporaryDirectory() as tmp, OtlpReceiver() as receiver:
        gateways = {}
        for n, (name, settings) in enumerate(configs(receiver.endpoint).items()):
            gateways[name] = configured_gateway(Path(tmp), {**UNLIMITED, **settings}, "bench", f"gw{n}")
        for gateway, _ in gateways.values():
            gateway.start()
        try:
            for _ in range(args.rounds):
                for name, (gateway, key) in gateways.items():
                    results.setdefault(name, []).append(measure(gateway, key, frames, args))
        finally:
            for gateway, _ in gateways.values():
                gateway.stop()
        spans = len(receiver.spans)

    medians = {
        name: {k: statistics.median(r[k] for r in runs) for k in runs[0]} for name, runs in results.items()
    }
    quiet = next(iter(medians.values()))
    print(
        f"{args.rounds} rounds; REST: client_secrets.create, {args.concurrency} clients, "
        f"{args.seconds:.0f} s; append: {args.frames} frames of 20 ms; medians, ratio to the quiet gateway"
    )
    header = f"{'REST req/s':>12}{'ratio':>7}{'append+VAD f/s':>16}{'ratio':>7}{'append f/s':>12}{'ratio':>7}"
    print(f"{'gateway':<36}{header}")
    for name, m in medians.items():
        print(
            f"{name:<36}{m['rest']:>12.0f}{m['rest'] / quiet['rest']:>7.3f}"
            f"{m['append_vad']:>16.0f}{m['append_vad'] / quiet['append_vad']:>7.3f}"
            f"{m['append']:>12.0f}{m['append'] / quiet['append']:>7.3f}"
        )
    print(f"spans the OTLP receiver decoded: {spans}")


if __name__ == "__main__":
    main()
