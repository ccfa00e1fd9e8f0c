"""What structured logs and tracing cost: the REST and realtime-append benches against several
gateways side by side, in one run, all logging at INFO (an access and an audit line per request):

- before (with `--before DIR`): the gateway's code from DIR, a checkout from before structured
  logs and tracing (text logs);
- text logs, tracing off;
- JSON logs, tracing off;
- JSON logs, tracing on, every span exported over OTLP/HTTP to a real receiver on loopback
  (`test/otlp_receiver.py`, decoding each request as a collector does, in this process).

The loads of `bench/rest_client_secrets.py` (client_secrets.create, concurrent keep-alive
clients) and `bench/realtime_append.py` (20 ms append frames as fast as they go, with server VAD
and without) run against each gateway in turn, `--rounds` times interleaved so that the machine's
drift hits all alike; the medians and their ratios to the first gateway's are printed.

Usage: .venv/bin/python bench/observability_overhead.py [--rounds 3] [--seconds 5] [--frames 3000]
       [--before DIR]   (DIR: `git archive <commit> ovos_realtime_gateway ... | tar -x -C DIR`)
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

from bench.realtime_append import SERVER_VAD, UNCAPPED, audio_frames, cpu_seconds, gateway_throughput  # noqa: E402
from bench.rest_client_secrets import load  # noqa: E402
from test.gateway_process import GatewayProcess, configured_gateway  # noqa: E402
from test.otlp_receiver import OtlpReceiver  # noqa: E402

UNLIMITED = {
    **UNCAPPED,
    "rate_limits": {
        **UNCAPPED["rate_limits"],  # type: ignore[dict-item]  # UNCAPPED is typed as a loose dict of sections
        "requests_per_minute": 10_000_000,
        "requests_per_minute_per_key": 10_000_000,
    },
}


def configs(endpoint: str, before: Path | None) -> dict[str, tuple[dict[str, Any], dict[str, str]]]:
    """Name → (settings, environment) of each gateway."""
    runs: dict[str, tuple[dict[str, Any], dict[str, str]]] = {}
    if before is not None:
        # PYTHONSAFEPATH: `python -m` must not put the current directory (this tree) first
        env = {"PYTHONPATH": str(before), "PYTHONSAFEPATH": "1"}
        runs["before (text logs)"] = ({"log_level": "INFO"}, env)
    runs["text logs, tracing off"] = ({"log_level": "INFO", "log_format": "text"}, {})
    runs["JSON logs, tracing off"] = ({"log_level": "INFO", "log_format": "json"}, {})
    tracing = {"enabled": True, "otlp_endpoint": endpoint}
    runs["JSON logs, tracing on (OTLP)"] = (
        {"log_level": "INFO", "log_format": "json", "tracing": tracing},
        {},
    )
    return runs


def measure(
    gateway: GatewayProcess, key: str, frames: list[str], args: argparse.Namespace
) -> dict[str, float]:
    """Throughput, and the gateway's own CPU time per request or frame (from /proc: what the
    shared machine's other load disturbs least)."""
    assert gateway.proc is not None
    pid = gateway.proc.pid
    rest = f"{gateway.api_base}/realtime/client_secrets"
    ws = gateway.api_base.replace("http://", "ws://") + "/realtime?model=gpt-realtime"
    result: dict[str, float] = {}
    cpu = cpu_seconds(pid)
    rps, latencies = asyncio.run(load(rest, key, args.seconds, args.concurrency))
    result["rest"], result["rest_cpu"] = rps, (cpu_seconds(pid) - cpu) / (len(latencies) + 20)
    for name, vad in (("append_vad", SERVER_VAD), ("append", None)):
        cpu = cpu_seconds(pid)
        result[name] = asyncio.run(gateway_throughput(ws, key, frames, vad))
        result[f"{name}_cpu"] = (cpu_seconds(pid) - cpu) / len(frames)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=5.0, help="REST load per round and gateway")
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--frames", type=int, default=3000)
    parser.add_argument("--before", type=Path, help="a checkout of the gateway before logs and tracing")
    args = parser.parse_args()
    cycle = audio_frames()
    frames = (cycle * (args.frames // len(cycle) + 1))[: args.frames]
    results: dict[str, list[dict[str, float]]] = {}
    with tempfile.TemporaryDirectory() as tmp, OtlpReceiver() as receiver:
        gateways = {}
        for n, (name, (settings, env)) in enumerate(configs(receiver.endpoint, args.before).items()):
            root = Path(tmp)
            gateways[name] = configured_gateway(root, {**UNLIMITED, **settings}, "bench", f"gw{n}", env=env)
        for gateway, _ in gateways.values():
            gateway.start()
        try:
            names = list(gateways)
            for n in range(args.rounds):  # each round in another order: drift hits all alike
                for name in names[n % len(names) :] + names[: n % len(names)]:
                    gateway, key = gateways[name]
                    results.setdefault(name, []).append(measure(gateway, key, frames, args))
        finally:
            for gateway, _ in gateways.values():
                gateway.stop()
        spans = len(receiver.spans)

    medians = {
        name: {k: statistics.median(r[k] for r in runs) for k in runs[0]} for name, runs in results.items()
    }
    first = next(iter(medians.values()))
    print(
        f"{args.rounds} rounds; REST: client_secrets.create, {args.concurrency} clients, "
        f"{args.seconds:.0f} s; append: {args.frames} frames of 20 ms; medians, ratio to the first gateway"
    )
    columns = (("REST", "rest"), ("append+VAD", "append_vad"), ("append", "append"))
    print("throughput (requests or frames per second) and its ratio to the first gateway's")
    print(f"{'gateway':<36}" + "".join(f"{title:>14}{'ratio':>7}" for title, _ in columns))
    for name, m in medians.items():
        print(f"{name:<36}" + "".join(f"{m[k]:>14.0f}{m[k] / first[k]:>7.3f}" for _, k in columns))
    print("gateway CPU per request or frame (µs) and its ratio to the first gateway's")
    print(f"{'gateway':<36}" + "".join(f"{title:>14}{'ratio':>7}" for title, _ in columns))
    for name, m in medians.items():
        cells = (f"{m[f'{k}_cpu'] * 1e6:>14.1f}{m[f'{k}_cpu'] / first[f'{k}_cpu']:>7.3f}" for _, k in columns)
        print(f"{name:<36}" + "".join(cells))
    print(f"spans the OTLP receiver decoded: {spans}")


if __name__ == "__main__":
    main()
