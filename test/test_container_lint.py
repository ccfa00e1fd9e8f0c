"""The Dockerfiles pass hadolint and compose.yaml the Compose spec's schema (both offline, from
PyPI); exceptions are only those documented in .hadolint.yaml. Every Compose service has what
running it unattended needs: a healthcheck, memory and CPU limits, a restart policy, a volume."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
DOCKERFILES = sorted(
    p for p in ROOT.glob("**/Dockerfile*") if ".venv" not in p.parts and "node_modules" not in p.parts
)
BIN = Path(sys.executable).parent


def _tool(name: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(BIN / name), *args], capture_output=True, text=True, timeout=120, cwd=ROOT)


def test_every_image_is_built_from_a_dockerfile_hadolint_accepts() -> None:
    names = {str(p.relative_to(ROOT)) for p in DOCKERFILES}
    assert {"Dockerfile", "Dockerfile.assistant"} <= names, names
    assert len(names) >= 5, names  # and compose.yaml's prometheus, coturn and redis
    done = _tool("hadolint", *names)
    assert done.returncode == 0 and done.stdout == "", done.stdout + done.stderr


def test_hadolint_would_catch_a_finding(tmp_path: Path) -> None:
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM debian:bookworm\nRUN cd /tmp && echo hi\n")
    done = _tool("hadolint", str(bad))
    assert done.returncode != 0 and "DL3003" in done.stdout, done.stdout


def test_compose_file_follows_the_compose_spec() -> None:
    done = _tool("check-jsonschema", "--builtin-schema", "vendor.compose-spec", "compose.yaml")
    assert done.returncode == 0, done.stdout + done.stderr


def test_a_typo_in_the_compose_file_fails_naming_the_key(tmp_path: Path) -> None:
    text = (ROOT / "compose.yaml").read_text()
    typo = tmp_path / "compose.yaml"
    typo.write_text(text.replace("    restart: unless-stopped", "    restrat: unless-stopped", 1))
    done = _tool("check-jsonschema", "--builtin-schema", "vendor.compose-spec", str(typo))
    assert done.returncode == 1
    assert "restrat" in done.stdout, done.stdout


@pytest.mark.parametrize("service", ["assistant", "prometheus", "turn", "redis"])
def test_every_service_is_ready_to_run_unattended(service: str) -> None:
    spec = yaml.safe_load((ROOT / "compose.yaml").read_text())["services"][f"voiceengine-{service}"]
    assert spec["healthcheck"]["test"][0] == "CMD"
    limits = spec["deploy"]["resources"]["limits"]
    assert limits["memory"] and limits["cpus"]
    assert spec["restart"] == "unless-stopped"
    assert any(v.startswith(f"voiceengine-{service}-data:") for v in spec["volumes"])
    assert spec["network_mode"] == "host" and spec["read_only"] is True
