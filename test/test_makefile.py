"""The Makefile: `make help` lists every target with what it does, each target parses and runs the
project's own command (`make -n`), and `make package` builds a release that passes `twine check`."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
# target -> a command it must run (dry run)
TARGETS = {
    "install": "scripts/bootstrap test,lint",
    "lint": ".venv/bin/mypy",
    "test": "scripts/test",
    "bench": "bench/turn_latency.py",
    "package": ".venv/bin/twine check --strict dist/*",
    "image": "-f Dockerfile.assistant -t localhost/ovos-realtime-assistant:dev .",
    "compose-up": "podman-compose -f compose.yaml up -d",
    "compose-down": "podman-compose -f compose.yaml down",
    "scan": ".venv/bin/hadolint Dockerfile Dockerfile.assistant",
    "docs": "test/test_docs.py test/test_docs_run.py",
}


def make(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["make", "-C", str(ROOT), *args], capture_output=True, text=True, timeout=timeout)


def test_help_lists_every_target_with_what_it_does() -> None:
    done = make("help")
    assert done.returncode == 0, done.stderr
    listed = dict(re.findall(r"^  ([a-z-]+) +(\S.*)$", done.stdout, re.MULTILINE))
    assert set(TARGETS) | {"help"} == set(listed), done.stdout
    assert make().stdout == done.stdout, "plain `make` shows the help"


@pytest.mark.parametrize("target", TARGETS)
def test_each_target_runs_the_project_command(target: str) -> None:
    done = make("-n", target)
    assert done.returncode == 0, done.stderr
    assert TARGETS[target] in done.stdout, done.stdout


def test_image_passes_the_base_when_given() -> None:
    done = make("-n", "image", "BASE=localhost/debian:bookworm", "TAG=t")
    assert (
        "--build-arg BASE=localhost/debian:bookworm -f Dockerfile -t localhost/ovos-realtime:t ."
        in done.stdout
    )


@pytest.mark.slow
def test_package_builds_a_release_twine_accepts(tmp_path: Path) -> None:
    done = make("package", f"DIST={tmp_path}", timeout=300)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    assert sorted(path.suffix for path in tmp_path.iterdir()) == [".gz", ".whl"]
    assert done.stdout.count("PASSED") == 2, done.stdout[-2000:]
