"""A private OVOS assistant — the messagebus and ovos-core with its skills — run as child processes
with their own config and state under one directory. `ovos-realtime demo` runs one; so do the
end-to-end tests, through this same code.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

# Intent stages that exist with the packages of requirements/ovos.txt (ovos-core's default list
# also names OCP and common-query plugins, which are not installed, and logs an error per turn).
PIPELINE = [
    "ovos-converse-pipeline-plugin",
    "ovos-padatious-pipeline-plugin-high",
    "ovos-adapt-pipeline-plugin-high",
    "ovos-fallback-pipeline-plugin-high",
    "ovos-padatious-pipeline-plugin-medium",
    "ovos-adapt-pipeline-plugin-medium",
    "ovos-fallback-pipeline-plugin-medium",
    "ovos-padatious-pipeline-plugin-low",
    "ovos-adapt-pipeline-plugin-low",
    "ovos-persona-pipeline-plugin-low",  # loads ovos-persona (answers only what names a persona)
    "ovos-fallback-pipeline-plugin-low",
]
SKILL_READY = re.compile(r"on_ready_status:\d+ - INFO - (\S+) is ready\.")
CONVERSATIONAL_SKILLS = ("ovos-skill-parrot.openvoiceos",)
"""The skills of requirements/ovos.txt that converse (OVOS `ConversationalSkill`s): the demo's
`converse_skills` (see GatewaySettings)."""


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def _executable(name: str) -> str:
    beside = Path(sys.executable).with_name(name)
    found = str(beside) if beside.exists() else shutil.which(name)
    if found is None:
        raise FileNotFoundError(f"{name} is not installed (pip install 'ovos-realtime[ovos]')")
    return found


class OvosStack:
    def __init__(
        self,
        root: Path,
        bus_port: int | None = None,
        lang: str = "en-US",
        extra_config: dict[str, Any] | None = None,
        personas: dict[str, dict[str, Any]] | None = None,
    ) -> None:
        self.root = root
        self.extra_config = extra_config or {}
        self.personas = personas or {}  # ovos-persona definitions (name → {"solvers": [...], ...})
        self.bus_port = bus_port or free_port()
        self.lang = lang
        self.processes: dict[str, subprocess.Popen[bytes]] = {}

    @property
    def bus_url(self) -> str:
        return f"ws://127.0.0.1:{self.bus_port}/core"

    @property
    def env(self) -> dict[str, str]:
        return {
            **os.environ,
            "HOME": str(self.root / "home"),
            "XDG_CONFIG_HOME": str(self.root / "config"),
            "XDG_DATA_HOME": str(self.root / "data"),
            "XDG_CACHE_HOME": str(self.root / "cache"),
            "PYTHONUNBUFFERED": "1",
        }

    def config(self) -> dict[str, Any]:
        return {
            "lang": self.lang,
            "websocket": {"host": "127.0.0.1", "port": self.bus_port, "route": "/core", "ssl": False},
            # personas come from files only: a persona plugin could call a remote service
            "intents": {"pipeline": PIPELINE, "persona": {"ignore_plugin_personas": True}},
            "skills": {"installer": {"allow_pip": False, "allow_alphas": False}},
            "play_wav_cmdline": "true",
            "play_mp3_cmdline": "true",
            **self.extra_config,
        }

    def write_config(self) -> Path:
        path = self.root / "config" / "mycroft" / "mycroft.conf"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(self.config(), indent=2))
        for part in ("home", "data", "cache"):
            (self.root / part).mkdir(parents=True, exist_ok=True)
        personas = self.root / "config" / "ovos_persona"  # ovos-persona's default place
        personas.mkdir(parents=True, exist_ok=True)
        for name, definition in self.personas.items():
            (personas / f"{name}.json").write_text(json.dumps({"name": name, **definition}))
        return path

    def start(self, services: tuple[str, ...] = ("ovos-messagebus", "ovos-core")) -> OvosStack:
        """Start the services (executables beside this Python), the messagebus first."""
        self.write_config()
        logs = self.root / "logs"
        logs.mkdir(parents=True, exist_ok=True)
        for name in services:
            with open(logs / f"{name}.log", "wb") as out:
                self.processes[name] = subprocess.Popen(
                    [_executable(name)],
                    env=self.env,
                    stdout=out,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )
            if name == "ovos-messagebus":
                self._wait_port(20)
        return self

    def _wait_port(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with socket.socket() as probe:
                if probe.connect_ex(("127.0.0.1", self.bus_port)) == 0:
                    return
            self._check_alive()
            time.sleep(0.1)  # noqa: TID251 - a plain poll before any event loop runs
        raise TimeoutError(f"ovos-messagebus did not listen on {self.bus_port} within {timeout:.0f} s")

    def _check_alive(self) -> None:
        for name, process in self.processes.items():
            if process.poll() is not None:
                log = (self.root / "logs" / f"{name}.log").read_text(errors="replace")[-2000:]
                raise RuntimeError(f"{name} exited with {process.returncode}:\n{log}")

    def skills_ready(self) -> list[str]:
        """The skills ovos-core has said are ready so far (from its log)."""
        log = self.root / "logs" / "ovos-core.log"
        text = log.read_text(errors="replace") if log.exists() else ""
        return list(dict.fromkeys(SKILL_READY.findall(text)))

    def wait_ready(
        self, timeout: float = 120.0, progress: Callable[[str], None] | None = None, every_s: float = 10.0
    ) -> None:
        """Until ovos-core says its skills are loaded (`mycroft.skills.is_ready`); `progress` is
        told every `every_s` what is up so far."""
        from ovos_bus_client import Message, MessageBusClient

        client = MessageBusClient(host="127.0.0.1", port=self.bus_port, route="/core", ssl=False)
        client.run_in_thread()
        try:
            started = time.monotonic()
            deadline, next_report = started + timeout, started + every_s
            while time.monotonic() < deadline:
                self._check_alive()
                if client.connected_event.wait(1):
                    answer = client.wait_for_response(Message("mycroft.skills.is_ready"), timeout=2)
                    if answer is not None and answer.data.get("status"):
                        return
                if progress is not None and time.monotonic() >= next_report:
                    next_report += every_s
                    bus = "messagebus up" if client.connected_event.is_set() else "messagebus starting"
                    ready = ", ".join(self.skills_ready()) or "none yet"
                    progress(
                        f"still starting OVOS ({time.monotonic() - started:.0f} s): {bus}; ready: {ready}"
                    )
                time.sleep(0.5)  # noqa: TID251 - a plain poll before any event loop runs
            raise TimeoutError(f"OVOS skills were not ready within {timeout:.0f} s")
        finally:
            client.close()

    def stop(self) -> None:
        for name in [n for n in reversed(list(self.processes)) if n != "ovos-messagebus"] + [
            "ovos-messagebus"
        ]:
            process = self.processes.pop(name, None)
            if process is None or process.poll() is not None:
                continue
            os.killpg(process.pid, signal.SIGINT)
            try:
                process.wait(15)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait(5)

    def __enter__(self) -> OvosStack:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
