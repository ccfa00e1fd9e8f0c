"""Benchmarks run, tiny, so they cannot rot: `bench/replicas.py --quick` starts PostgreSQL,
redis-server and four real gateway processes, puts both loads on each deployment and prints its
tables; its figures (written with `--json`) are the kind docs/performance.md quotes."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DEPLOYMENTS = {
    "sqlite": "(a) one process, sqlite (baseline)",
    "postgresql": "(b) one process, PostgreSQL + Redis",
    "replicas": "(c) two replicas, PostgreSQL + Redis",
}


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
    for label in DEPLOYMENTS.values():
        assert done.stdout.count(label) == 2, f"{label}: a row in each table\n{done.stdout}"
    figures = json.loads(figures_file.read_text())
    assert set(figures) == set(DEPLOYMENTS)
    for name, measured in figures.items():
        sessions, rest = measured["sessions"], measured["rest"]
        assert sessions["replicas"] == (2 if name == "replicas" else 1)
        assert sessions["per_session"] > 0, f"{name}: the gateways' CPU was read"
        assert sessions["lags"], f"{name}: turn events came back from the VAD"
        # a turn event cannot come before the audio that decided it was sent
        assert min(sessions["lags"]) >= 0, f"{name}: lags {sessions['lags']}"
        assert len(rest["latencies"]) >= 3 and rest["per_second"] > 0, f"{name}: REST mixes answered"
        if name != "sqlite":
            assert rest["state_per_request"] > 0, f"{name}: PostgreSQL and Redis did the work"
