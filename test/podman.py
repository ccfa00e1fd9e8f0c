"""Building and running this repo's images with rootful podman, as on our machines (see
deploy/podman/containers.conf): the base is a local Debian made with debootstrap (scripts/image-base),
so no registry is needed; builds mount the host's pip cache. Timings go to test-artifacts/."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
CONF = ROOT / "deploy" / "podman" / "containers.conf"
BASE = "localhost/debian:bookworm"
PIP_CACHE = Path.home() / ".cache" / "pip"
TIMINGS: dict[str, float] = {}
"""What the container tests measured (seconds), written to test-artifacts/containers.txt."""


def env(**extra: str) -> dict[str, str]:
    return {**os.environ, "CONTAINERS_CONF": str(CONF), **extra}


def podman(*args: str, check: bool = True, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(["podman", *args], capture_output=True, text=True, timeout=timeout, env=env())
    if check and done.returncode != 0:
        raise AssertionError(f"podman {' '.join(args)} failed ({done.returncode}):\n{done.stderr[-3000:]}")
    return done


def base_image() -> None:
    """localhost/debian:bookworm, from debootstrap (cached under ~/.cache/ovos-realtime/images)."""
    started = time.monotonic()
    done = subprocess.run(
        [str(ROOT / "scripts" / "image-base"), BASE], capture_output=True, text=True, timeout=900, env=env()
    )
    assert done.returncode == 0, done.stderr[-3000:]
    TIMINGS.setdefault("base image (debootstrap or cached)", time.monotonic() - started)


def build(tag: str, dockerfile: str = "Dockerfile", context: Path = ROOT) -> None:
    """`podman build` with the local base, the HEALTHCHECK kept (docker format), pip's cache mounted."""
    PIP_CACHE.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    podman(
        "build",
        "--format",
        "docker",
        "--build-arg",
        f"BASE={BASE}",
        "--volume",
        f"{PIP_CACHE}:/root/.cache/pip",
        "--file",
        str(context / dockerfile),
        "--tag",
        tag,
        str(context),
        timeout=1800,
    )
    TIMINGS[f"build {tag}"] = time.monotonic() - started
    TIMINGS[f"size {tag} (MB)"] = int(podman("image", "inspect", tag, "--format", "{{.Size}}").stdout) / 1e6


def inspect(name: str) -> dict[str, Any]:
    found: list[dict[str, Any]] = json.loads(podman("inspect", name).stdout)
    return found[0]


def healthy(name: str) -> bool:
    return podman("healthcheck", "run", name, check=False, timeout=60).returncode == 0


def wait_healthy(name: str, timeout: float) -> float:
    """Seconds until `podman healthcheck run` passes (periodic checks need systemd: none here)."""
    started = time.monotonic()
    while not healthy(name):
        state = inspect(name)["State"]
        if not state["Running"] and state["Status"] != "created":
            logs = podman("logs", name, check=False).stdout[-3000:]
            raise AssertionError(f"{name} exited ({state['ExitCode']}):\n{logs}")
        if time.monotonic() - started > timeout:
            raise AssertionError(
                f"{name} not healthy within {timeout} s:\n{podman('logs', name).stdout[-3000:]}"
            )
        time.sleep(1)  # a poll of the container's state, with the deadline above
    return time.monotonic() - started


def memory_mb(name: str) -> float:
    """What the container's cgroup counts as used now (`podman stats`), in MB."""
    stats = json.loads(podman("stats", "--no-stream", "--format", "json", name).stdout)
    used = stats[0]["mem_usage"].split("/")[0].strip()  # e.g. "455.8MB"
    number, unit = re.fullmatch(r"([0-9.]+)\s*([kMG]?B)", used).groups()  # type: ignore[union-attr]  # the pattern always matches podman's output (checked by the test)
    return float(number) * {"B": 1e-6, "kB": 1e-3, "MB": 1.0, "GB": 1e3}[unit]


def usable() -> str | None:
    """Why the container tests cannot run here (None when they can)."""
    if os.geteuid() != 0:
        return "needs root: rootful podman and debootstrap (CI runs as root)"
    if shutil.which("podman") is None:
        return "podman is missing: scripts/install-system-deps test installs it"
    return None
