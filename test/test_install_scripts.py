"""The install steps a newcomer's first `scripts/demo` runs: another apt holding the package
manager's lock makes them wait (bounded, saying for what), not die after a second."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
LOCK = "/var/lib/dpkg/lock-frontend"
HOLD_S = 20  # long enough to see the script wait (apt itself gives up on a lock at once)
HOLDER = f"""
import fcntl, sys, time
with open({LOCK!r}, "a") as f:
    fcntl.lockf(f, fcntl.LOCK_EX)  # as apt and dpkg take it
    print("held", flush=True)
    time.sleep(float(sys.argv[1]))
"""


@contextmanager
def holding_the_lock(seconds: float) -> Iterator[None]:
    """Another process holds the dpkg lock, as a running apt does."""
    if os.geteuid() != 0:
        pytest.skip("takes the system's dpkg lock: run as root (CI does)")
    with subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(seconds)], stdout=subprocess.PIPE, text=True
    ) as holder:
        try:
            assert holder.stdout is not None and holder.stdout.readline().strip() == "held"
            yield
        finally:
            holder.kill()


def install(**env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(ROOT / "scripts" / "install-system-deps"), "runtime"],
        env={**os.environ, "OVOS_REALTIME_APT_ALWAYS": "1", **env},  # apt runs though all is installed
        capture_output=True,
        text=True,
        timeout=HOLD_S + 300,
    )


@pytest.mark.slow
def test_installing_waits_for_another_apt_that_holds_the_lock() -> None:
    with holding_the_lock(HOLD_S):
        started = time.monotonic()
        done = install()
        waited = time.monotonic() - started
    assert done.returncode == 0, done.stderr
    assert f"waiting for {LOCK}: another apt or dpkg is running" in done.stderr, done.stderr
    assert waited >= HOLD_S - 5, f"returned after {waited:.0f} s while the lock was held {HOLD_S} s"


def test_a_lock_held_too_long_is_named_and_fails() -> None:
    with holding_the_lock(60):
        done = install(OVOS_REALTIME_APT_WAIT="3")
    assert done.returncode != 0
    assert f"{LOCK} is still held after 3 s" in done.stderr, done.stderr
