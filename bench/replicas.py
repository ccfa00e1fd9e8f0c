"""Replicas on shared state: what PostgreSQL, Redis and a second process cost, in one run.

Three deployments of the real gateway on loopback, all up at once, each given the same load in
turn (one at work at a time), round after round, so the machine's other work falls on all alike:

  (a) one process on the embedded sqlite store (the device default: the baseline);
  (b) one process on PostgreSQL (`store_url`) with its limits in Redis (`shared_limits`);
  (c) two replicas of (b) on the same database and Redis, the load split between them.

1. Sessions: N real-time WebSocket sessions (server VAD on) stream conversational audio (speech
   and pauses, one 20 ms frame every 20 ms each, as bench/realtime_append.py), spread over the
   replicas. Printed: the gateways' CPU per session (from /proc, all their threads), sessions per
   core, and the event lag of the VAD's turn events: from sending the frame that decided an
   `input_audio_buffer.speech_started` / `speech_stopped` to receiving the event (p50, p95).
   A fourth row, (d), gives (b) only one replica's share of the sessions: the control that tells
   what (c) costs because each of its processes holds fewer sessions, not because it is two.
2. REST: K concurrent clients loop over the mix a client does (mint an `ek_` client secret,
   `GET /v1/models`, look its session up), minting on the replicas in turn and the rest asked of
   another replica (so a lookup reads what another process wrote). Printed: requests per second,
   latency, the gateways' CPU per request. A fourth row, (e), is (b) with its limits kept per
   process (no Redis): PostgreSQL's share of the cost apart from Redis's.

Ratios are to (a) in the same run. PostgreSQL and redis-server (Debian's, throwaway, as the tests
start them) share the machine; their CPU is shown beside the gateways'.

Usage: .venv/bin/python bench/replicas.py [--sessions 40] [--seconds 10] [--rest-seconds 5]
       [--concurrency 16] [--rounds 2] [--quick] [--json FILE]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.replica_loads import CpuMeter, RestRun, SessionsRun, rest_load, sessions_load  # noqa: E402
from bench.rest_client_secrets import percentile  # noqa: E402
from test.gateway_process import GatewayProcess, cli  # noqa: E402
from test.postgres_server import PostgresServer  # noqa: E402
from test.redis_server import RedisServer  # noqa: E402


@dataclass(frozen=True)
class SharedState:
    """Where replicas keep what they share: the PostgreSQL store and the Redis of the limits."""

    store_url: str
    redis_url: str | None  # None: each process keeps its own limits
    key_prefix: str


def gateway_settings(shared: SharedState | None) -> dict[str, Any]:
    """The configuration every gateway of a deployment reads: limits out of the bench's way, and the
    shared state when there is one. The one place to add `cluster.*` (the replica registry)."""
    settings: dict[str, Any] = {
        "rate_limits": {
            "requests_per_minute": 10_000_000,
            "requests_per_minute_per_key": 10_000_000,
            "concurrent_sessions": 10_000,
            "concurrent_sessions_per_key": 10_000,
        },
        "log_level": "WARNING",
    }
    if shared is not None:
        settings["store_url"] = shared.store_url
        if shared.redis_url is not None:
            settings["shared_limits"] = {"redis_url": shared.redis_url, "key_prefix": shared.key_prefix}
    return settings


@dataclass
class Deployment:
    """Gateway processes serving one store, and a key of its project."""

    name: str
    gateways: list[GatewayProcess]
    key: str

    @property
    def pids(self) -> list[int]:
        return [g.proc.pid for g in self.gateways if g.proc is not None]

    @property
    def bases(self) -> list[str]:
        return [g.api_base for g in self.gateways]


def deploy(stack: ExitStack, root: Path, name: str, replicas: int, shared: SharedState | None) -> Deployment:
    """`replicas` gateways started at once on `shared` (None: one process on its own sqlite store),
    stopped when `stack` closes."""
    config = root / f"{name}.json"
    config.write_text(json.dumps(gateway_settings(shared)))
    created = cli(
        "keys", "create", "--project", "bench", "--config", str(config), data_dir=root / f"{name}-0"
    )
    gateways = [
        GatewayProcess(root / f"{name}-{i}", "--config", str(config), log_name=f"{name}-{i}")
        for i in range(replicas)
    ]
    for gateway in gateways:
        stack.callback(gateway.stop)
    with ThreadPoolExecutor(replicas) as pool:
        list(pool.map(GatewayProcess.start, gateways))
    return Deployment(name, gateways, created.stdout.strip().splitlines()[-1])


@dataclass(frozen=True)
class Setup:
    name: str
    label: str
    replicas: int
    postgresql: bool
    redis: bool
    sessions: bool = True  # False: the REST load only


SETUPS = (
    Setup("sqlite", "(a) one process, sqlite (baseline)", 1, postgresql=False, redis=False),
    Setup("postgresql", "(b) one process, PostgreSQL + Redis", 1, postgresql=True, redis=True),
    Setup("replicas", "(c) two replicas, PostgreSQL + Redis", 2, postgresql=True, redis=True),
    Setup("alone", "(e) = (b) with limits per process", 1, postgresql=True, redis=False, sessions=False),
)
"""(e) tells the store's share of (b)'s REST cost from Redis's (`shared_limits`)."""
SHARE = "(d) = (b) with one replica's share"
"""The control for (c): deployment (b) given as many sessions as one replica of (c) holds."""


@dataclass
class Results:
    sessions: dict[str, SessionsRun]  # by label
    rest: dict[str, RestRun]  # by label


def run_all(args: argparse.Namespace) -> Results:
    """Start the shared state and every deployment, warm each up, then measure them in turn."""
    with tempfile.TemporaryDirectory(prefix="bench-replicas-") as tmp, ExitStack() as stack:
        root = Path(tmp)
        postgres = stack.enter_context(PostgresServer())
        redis = stack.enter_context(RedisServer(root / "redis"))
        assert postgres.proc is not None and redis.proc is not None
        with ThreadPoolExecutor(len(SETUPS)) as pool:  # every deployment starts at once
            starting = {
                setup: pool.submit(
                    deploy,
                    stack,
                    root,
                    setup.name,
                    setup.replicas,
                    SharedState(
                        postgres.create_database(setup.name),
                        redis.url if setup.redis else None,
                        f"bench-{setup.name}:",
                    )
                    if setup.postgresql
                    else None,
                )
                for setup in SETUPS
            }
            targets = {setup: future.result() for setup, future in starting.items()}
        pg_pid, redis_pid = postgres.proc.pid, redis.proc.pid

        def meter(setup: Setup) -> CpuMeter:
            """A new meter of the gateways of `setup` and of the servers it uses."""
            return CpuMeter(targets[setup].pids, [pg_pid] * setup.postgresql + [redis_pid] * setup.redis)

        results = Results(
            {s.label: SessionsRun(args.sessions, s.replicas, meter(s)) for s in SETUPS if s.sessions},
            {s.label: RestRun(meter(s)) for s in SETUPS},
        )
        one = SETUPS[1]  # (b)
        results.sessions[SHARE] = SessionsRun(args.sessions // 2, 1, meter(one))
        by_label = {s.label: t for s, t in targets.items()} | {SHARE: targets[one]}
        for t in targets.values():  # warm up: the first sessions and requests of each gateway
            warm_up = CpuMeter(t.pids, [])
            asyncio.run(sessions_load(t.bases, t.key, SessionsRun(2 * len(t.bases), 1, warm_up), 1.0))
            asyncio.run(rest_load(t.bases, t.key, RestRun(warm_up), 0.5, 2))
        for _ in range(args.rounds):
            for label, run in results.sessions.items():
                t = by_label[label]
                asyncio.run(sessions_load(t.bases, t.key, run, args.seconds))
            for label, rest in results.rest.items():
                t = by_label[label]
                asyncio.run(rest_load(t.bases, t.key, rest, args.rest_seconds, args.concurrency))
        return results


def ms(seconds: float) -> str:
    return f"{seconds * 1000:.1f}"


def report(results: Results, args: argparse.Namespace) -> None:
    base_s, base_r = results.sessions[SETUPS[0].label], results.rest[SETUPS[0].label]
    print(
        f"sessions: {args.sessions} real-time WebSocket sessions, server VAD, speech and pauses, "
        f"{args.seconds:g} s x {args.rounds} rounds, loopback"
    )
    print(
        f"{'deployment':<40}{'per replica':>12}{'CPU/session':>13}{'sessions/core':>15}{'ratio':>7}"
        f"{'lag p50 ms':>12}{'p95 ms':>8}{'ratio p95':>11}{'turn events':>13}{'PG+Redis CPU/session':>22}"
    )
    for label, run in results.sessions.items():
        p95 = percentile(run.lags, 0.95)
        state = f"{run.state_per_session * 100:.3f}%" if run.cpu.state_pids else "-"
        print(
            f"{label:<40}{run.sessions // run.replicas:>12}{run.per_session * 100:>12.3f}%"
            f"{1 / run.per_session:>15.0f}{base_s.per_session / run.per_session:>7.2f}"
            f"{ms(percentile(run.lags, 0.5)):>12}{ms(p95):>8}{p95 / percentile(base_s.lags, 0.95):>11.2f}"
            f"{len(run.lags):>13}{state:>22}"
        )
    print()
    print(
        f"REST: {args.concurrency} concurrent clients, {args.rest_seconds:g} s x {args.rounds} rounds, "
        "the mix: mint an ek_ (on each replica in turn), GET /v1/models and its session (on another)"
    )
    print(
        f"{'deployment':<40}{'req/s':>8}{'ratio':>7}{'p50 ms':>8}{'p95 ms':>8}{'gateway cores':>15}"
        f"{'CPU ms/req':>12}{'ratio':>7}{'PG+Redis CPU ms/req':>21}"
    )
    for label, rest in results.rest.items():
        state = ms(rest.state_per_request) if rest.cpu.state_pids else "-"
        print(
            f"{label:<40}{rest.per_second:>8.0f}{rest.per_second / base_r.per_second:>7.2f}"
            f"{ms(percentile(rest.latencies, 0.5)):>8}{ms(percentile(rest.latencies, 0.95)):>8}"
            f"{rest.cpu.gateway / rest.cpu.wall:>15.2f}{ms(rest.cpu_per_request):>12}"
            f"{rest.cpu_per_request / base_r.cpu_per_request:>7.2f}{state:>21}"
        )
    load = os.getloadavg()
    print(f"load average at the end: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f} ({os.cpu_count()} CPUs)")


def figures(results: Results) -> dict[str, Any]:
    """What `--json` writes: the figures of each row, with the raw lags and latencies."""
    return {
        "sessions": {
            label: {**asdict(run), "per_session": run.per_session, "state_per_session": run.state_per_session}
            for label, run in results.sessions.items()
        },
        "rest": {
            label: {
                **asdict(rest),
                "per_second": rest.per_second,
                "cpu_per_request": rest.cpu_per_request,
                "state_per_request": rest.state_per_request,
            }
            for label, rest in results.rest.items()
        },
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--sessions", type=int, default=40, help="real-time sessions in each deployment")
    parser.add_argument("--seconds", type=float, default=10.0, help="how long the sessions stream")
    parser.add_argument("--rest-seconds", type=float, default=5.0, help="how long the REST load runs")
    parser.add_argument("--concurrency", type=int, default=16, help="concurrent REST clients")
    parser.add_argument("--rounds", type=int, default=2, help="times each deployment is measured, in turn")
    parser.add_argument("--quick", action="store_true", help="a tiny run: 4 sessions for 2 s, 1 s of REST")
    parser.add_argument("--json", type=Path, help="also write every figure (and each lag) to this file")
    args = parser.parse_args()
    if args.quick:
        args.sessions, args.seconds, args.rest_seconds, args.concurrency, args.rounds = 4, 2.0, 1.0, 4, 1
    results = run_all(args)
    report(results, args)
    if args.json:
        args.json.write_text(json.dumps(figures(results)))


if __name__ == "__main__":
    main()
