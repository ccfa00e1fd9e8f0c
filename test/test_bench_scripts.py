"""Benchmarks run, tiny, so they cannot rot: `bench/replicas.py --quick` starts PostgreSQL,
redis-server and five real gateway processes, puts its loads on each deployment and prints its
tables; its figures (written with `--json`) are the kind docs/performance.md quotes."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
SQLITE, POSTGRESQL, REPLICAS, SHARE, ALONE = (
    "(a) one process, sqlite (baseline)",
    "(b) one process, PostgreSQL + Redis",
    "(c) two replicas, PostgreSQL + Redis",
    "(d) = (b) with one replica's share",
    "(e) = (b) with limits per process",
)


@pytest.mark.slow
def test_the_replicas_bench_measures_every_deployment(tmp_path: Path) -> None:
    figures_file = tmp_path / "figures.json"
    done = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "replicas.py"), "--quick", "--json", str(figures_file)],
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    for label in (SQLITE, POSTGRESQL, REPLICAS):
        assert done.stdout.count(label) == 2, f"{label}: a row in each table\n{done.stdout}"
    assert done.stdout.count(SHARE) == 1, f"{SHARE}: a row in the sessions table\n{done.stdout}"
    assert done.stdout.count(ALONE) == 1, f"{ALONE}: a row in the REST table\n{done.stdout}"
    figures = json.loads(figures_file.read_text())
    sessions, rest = figures["sessions"], figures["rest"]
    assert list(sessions) == [SQLITE, POSTGRESQL, REPLICAS, SHARE]
    assert list(rest) == [SQLITE, POSTGRESQL, REPLICAS, ALONE]
    counts = [(run["sessions"], run["replicas"]) for run in sessions.values()]
    assert counts == [(4, 1), (4, 1), (4, 2), (2, 1)], (
        "(c) splits its sessions; (d) holds one replica's share"
    )
    for label, run in sessions.items():
        assert run["per_session"] > 0, f"{label}: the gateways' CPU was read"
        assert run["lags"], f"{label}: turn events came back from the VAD"
        # a turn event cannot come before the audio that decided it was sent
        assert min(run["lags"]) >= 0, f"{label}: lags {run['lags']}"
    for label, mixes in rest.items():
        assert len(mixes["latencies"]) >= 3 and mixes["per_second"] > 0, f"{label}: REST mixes answered"
        if label != SQLITE:
            assert mixes["state_per_request"] > 0, f"{label}: PostgreSQL (and Redis) did the work"


@pytest.mark.slow
def test_the_sessions_per_core_bench_pins_the_gateway_and_reads_its_turns(tmp_path: Path) -> None:
    figures_file = tmp_path / "figures.json"
    done = subprocess.run(
        [
            sys.executable,
            str(ROOT / "bench" / "sessions_per_core.py"),
            "--quick",
            "--json",
            str(figures_file),
        ],
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "the gateway pinned to core" in done.stdout, done.stdout
    (load,) = json.loads(figures_file.read_text())["now 10"]
    assert load["sessions"] == 10 and load["cpu"] > 0, "the pinned gateway's CPU was read"
    assert load["sent"] >= 0.9 * load["due"], f"the client kept (near) real time: {load}"
    assert len(load["events"]) == 10 and min(load["events"]) >= 1, "every session heard its speech start"
    # a turn event cannot come before the audio that decided it was sent
    assert load["lags"] and min(load["lags"]) >= 0, f"lags {load['lags']}"
