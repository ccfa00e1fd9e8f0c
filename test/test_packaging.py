"""Release packages: the sdist carries what setup.py and the packages read, the wheel built from it
(as pip builds one) passes `twine check`, and installed into a FRESH venv it works: the command, every
entry point it declares (the PHAL plugin as OVOS's plugin manager finds it), and a gateway serving
its packaged Rego policy, OpenAPI document and talk page to the `openai` SDK.

The fresh venv installs the wheel's own dependencies (the gateway's, not the `[ovos]` extra) through
requirements/constraints.txt, as a user's `pip install` does, but from the files `scripts/wheelhouse`
downloaded in the test command's install phase (`--no-index`): the tests reach no network."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tarfile
import time
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import openai
import pytest

from .gateway_process import LISTENING, http

ROOT = Path(__file__).resolve().parent.parent
WHEELHOUSE = Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "ovos-realtime" / "wheelhouse"
pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]
# not part of a release, or made by the tools; everything else in the clone is copied as it is
NOT_COPIED = shutil.ignore_patterns(
    ".git", ".venv", "node_modules", "test-artifacts", "*.egg-info", "build", "dist", "__pycache__",
    ".mypy_cache", ".ruff_cache", ".pytest_cache", ".hypothesis",
)  # fmt: skip
PACKAGE_DATA = [
    "ovos_realtime_gateway/py.typed",
    "ovos_realtime_gateway/security/default_policy.rego",
    "ovos_realtime_gateway/rest/openapi.yaml",
    "ovos_realtime_gateway/talk_page/talk.html",
    "ovos_realtime_listener_plugin/py.typed",
    "ovos_realtime_tts_plugin/py.typed",
]


@dataclass
class Release:
    sdist: Path
    wheel: Path


def run(command: list[str], *, cwd: Path, timeout: float = 600) -> subprocess.CompletedProcess[str]:
    """Run `command` outside this clone: no PYTHONPATH, so the installed copy is what runs."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    done = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    assert done.returncode == 0, (
        f"{command} failed ({done.returncode}):\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    )
    return done


@pytest.fixture(scope="module")
def release(tmp_path_factory: pytest.TempPathFactory) -> Release:
    """`python -m build` on a copy of the clone: the sdist, then the wheel built FROM the sdist."""
    work = tmp_path_factory.mktemp("release")
    source = work / "source"
    shutil.copytree(ROOT, source, ignore=NOT_COPIED)
    started = time.monotonic()
    # --no-isolation: setuptools and wheel of the test venv build it (an isolated build downloads them)
    build = [sys.executable, "-m", "build", "--no-isolation", "--outdir", str(work / "dist"), str(source)]
    run(build, cwd=work)
    print(f"build: {time.monotonic() - started:.1f} s")
    (sdist,) = (work / "dist").glob("*.tar.gz")
    (wheel,) = (work / "dist").glob("*.whl")
    return Release(sdist, wheel)


@pytest.fixture(scope="module")
def venv(release: Release, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A fresh venv with the wheel installed (its dependencies pinned by the constraints file)."""
    home = tmp_path_factory.mktemp("venv") / "venv"
    started = time.monotonic()
    run([sys.executable, "-m", "venv", str(home)], cwd=home.parent)
    assert WHEELHOUSE.joinpath(".complete").exists(), f"no {WHEELHOUSE}: run scripts/wheelhouse first"
    pip = [str(home / "bin" / "python"), "-m", "pip", "install", "--quiet", "--no-compile"]
    pip += ["--no-index", "--find-links", str(WHEELHOUSE)]
    run(
        [*pip, "--constraint", str(ROOT / "requirements" / "constraints.txt"), str(release.wheel)],
        cwd=home.parent,
    )
    print(f"fresh venv with the wheel: {time.monotonic() - started:.1f} s")
    yield home
    shutil.rmtree(home, ignore_errors=True)  # ~800 MB: not kept among pytest's last three runs


def test_the_sdist_carries_the_requirements_and_the_package_data(release: Release) -> None:
    with tarfile.open(release.sdist) as sdist:
        top = sdist.getnames()[0].split("/")[0]
        names = {name.removeprefix(f"{top}/") for name in sdist.getnames()}
    wanted = {
        f"requirements/{name}.txt" for name in ("gateway", "ovos", "clients", "test", "lint", "constraints")
    }
    missing = (wanted | set(PACKAGE_DATA) | {"setup.py", "README.md", "LICENSE"}) - names
    assert not missing, f"the sdist lacks {sorted(missing)}"
    assert not [name for name in names if name.startswith("test/")], (
        "tests need the clone; they are not shipped"
    )


def test_the_wheel_carries_the_package_data_and_entry_points(release: Release) -> None:
    with zipfile.ZipFile(release.wheel) as wheel:
        names = set(wheel.namelist())
        entry_points = next(n for n in names if n.endswith(".dist-info/entry_points.txt"))
        declared = wheel.read(entry_points).decode()
    assert not set(PACKAGE_DATA) - names, f"the wheel lacks {sorted(set(PACKAGE_DATA) - names)}"
    assert any(n.endswith(".dist-info/LICENSE") or "/licenses/LICENSE" in n for n in names), (
        f"the wheel carries the Apache-2.0 text setup.py declares: {sorted(names)[:5]}..."
    )
    assert "[opm.phal]\novos-realtime-gateway = ovos_realtime_gateway.phal:RealtimeGatewayPlugin" in declared


def test_twine_check_passes(release: Release) -> None:
    done = run(
        [sys.executable, "-m", "twine", "check", "--strict", str(release.sdist), str(release.wheel)], cwd=ROOT
    )
    assert done.stdout.count("PASSED") == 2, done.stdout


# Run in the fresh venv: every entry point the release declares loads, and OVOS's plugin manager
# finds the PHAL plugin; all of it from the venv, not from this clone.
ENTRY_POINTS = """
import importlib.metadata, ovos_realtime_gateway
from ovos_plugin_manager.phal import find_phal_plugins
from ovos_plugin_manager.templates.phal import PHALPlugin
release = importlib.metadata.distribution("ovos-realtime")
loaded = {(ep.group, ep.name): ep.load() for ep in release.entry_points}
phal = loaded[("opm.phal", "ovos-realtime-gateway")]
assert issubclass(phal, PHALPlugin), phal
assert find_phal_plugins()["ovos-realtime-gateway"] is phal
print(ovos_realtime_gateway.__file__)
print("\\n".join(sorted(f"{group} {name}" for group, name in loaded)))
"""


def test_the_installed_command_and_entry_points_work(venv: Path, tmp_path: Path) -> None:
    done = run([str(venv / "bin" / "ovos-realtime"), "--help"], cwd=tmp_path)
    assert "usage: ovos-realtime" in done.stdout and "serve" in done.stdout, done.stdout
    lines = run([str(venv / "bin" / "python"), "-c", ENTRY_POINTS], cwd=tmp_path).stdout.splitlines()
    assert lines[0].startswith(str(venv)), f"imported from {lines[0]}, not from the fresh venv"
    assert {
        "console_scripts ovos-realtime",
        "opm.phal ovos-realtime-gateway",
        "opm.tts ovos-realtime-tts-piper",
        "opm.stt ovos-realtime-stt-whisper",
        "opm.microphone ovos-microphone-plugin-realtime",
    } <= set(lines[1:])


@pytest.fixture
def installed_gateway(venv: Path, tmp_path: Path) -> Iterator[tuple[str, str]]:
    """`ovos-realtime serve` of the fresh venv on loopback, and a key: (base URL, key)."""
    command = str(venv / "bin" / "ovos-realtime")
    data = tmp_path / "data"
    key = run([command, "keys", "create", "--project", "release", "--data-dir", str(data)], cwd=tmp_path)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"} | {"PYTHONUNBUFFERED": "1"}
    config = tmp_path / "gateway.yaml"
    config.write_text("talk_page: true\n")
    out, err = tmp_path / "serve.stdout", tmp_path / "serve.stderr"
    with open(out, "wb") as stdout, open(err, "wb") as stderr:
        serve = [command, "serve", "--host", "127.0.0.1", "--port", "0", "--data-dir", str(data)]
        proc = subprocess.Popen(
            [*serve, "--config", str(config)], cwd=tmp_path, env=env, stdout=stdout, stderr=stderr
        )
    try:
        deadline = time.monotonic() + 120
        while not (match := LISTENING.search(out.read_text())):
            assert proc.poll() is None and time.monotonic() < deadline, (
                f"did not start: {err.read_text()[-3000:]}"
            )
            time.sleep(0.1)
        yield match.group(1), key.stdout.strip().splitlines()[-1]
        proc.send_signal(signal.SIGINT)
        assert proc.wait(30) == 0, err.read_text()[-3000:]
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)


def test_the_installed_gateway_serves_its_packaged_files(installed_gateway: tuple[str, str]) -> None:
    base_url, key = installed_gateway
    assert http("GET", f"{base_url}/healthz").status == 200
    spec = http("GET", f"{base_url}/openapi.yaml")
    assert spec.status == 200 and b"/v1/realtime/client_secrets" in spec.body
    talk = http("GET", f"{base_url}/talk")
    assert talk.status == 200 and b"<html" in talk.body.lower()
    # minting passes the packaged Rego policy
    with openai.OpenAI(base_url=f"{base_url}/v1", api_key=key, max_retries=0) as sdk:
        secret = sdk.realtime.client_secrets.create(session={"type": "realtime", "model": "gpt-realtime"})
    assert secret.value.startswith("ek_")
