"""The CI workflow (.github/workflows/ci.yml) passes actionlint, runs the README's test command in
one job and `make image` in another, and a workflow with a typo'd key fails actionlint, naming it."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parent.parent
WORKFLOW = ROOT / ".github" / "workflows" / "ci.yml"


def actionlint(path: Path) -> subprocess.CompletedProcess[str]:
    command = [str(ROOT / ".venv" / "bin" / "actionlint"), "-no-color", str(path)]
    return subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=60)


def test_the_workflow_passes_actionlint() -> None:
    done = actionlint(WORKFLOW)
    assert done.returncode == 0, done.stdout + done.stderr


def test_one_job_runs_the_readme_test_command_and_one_builds_the_images() -> None:
    jobs: dict[str, Any] = yaml.safe_load(WORKFLOW.read_text())["jobs"]
    runs = {name: [step.get("run", "") for step in job["steps"]] for name, job in jobs.items()}
    assert "scripts/test" in runs["test"], runs["test"]
    assert any(run.startswith("make image") for run in runs["image"]), runs["image"]
    assert (ROOT / ".ci" / "run").read_text().strip().endswith("exec scripts/test")


def test_a_typo_in_the_workflow_fails_naming_the_key(tmp_path: Path) -> None:
    typo = tmp_path / "ci.yml"
    typo.write_text(WORKFLOW.read_text().replace("timeout-minutes: 90", "timeout-minute: 90", 1))
    done = actionlint(typo)
    assert done.returncode != 0
    assert 'unexpected key "timeout-minute" for "job" section' in done.stdout, done.stdout
