"""Run a markdown page's code blocks as a reader would: in order, exactly as written.

A fenced block is a step: `bash` lines run one by one (a trailing `\\` joins lines), `python`
runs with the clone's `.venv/bin/python`, a `js` block is saved as the file its directive names.
An HTML comment right before a fence steers the runner (the rendered page does not show it):

    <!-- run: skip (why) -->                 not run; reported as skipped, with the reason
    <!-- run: background until URL -->       started and left running until URL answers 2xx
    <!-- run: file NAME -->                  saved as NAME in the work dir (`~/NAME`: in the home dir)
    <!-- run: expect TEXT -->                run, and what it prints must contain TEXT

Placeholders the docs use for the reader's own values are filled in: `sk-ovos-…` (the key the
demo printed once) and `key_…` (the id of the key the last `keys create` made).
"""

from __future__ import annotations

import os
import re
import signal
import ssl
import subprocess
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

FENCE = re.compile(r"(?:<!-- run: (?P<directive>.*?) -->\n)?```(?P<lang>\w*)\n(?P<body>.*?)```", re.S)
LONG_RUNNING = re.compile(r"^scripts/demo\b")
DEMO_ADDRESS = re.compile(r"--host (\S+) --port (\d+)")
KEY_LINE = re.compile(r"it is shown only once:\n(sk-ovos-\S+)")
KEY_ID = re.compile(r"created key (key_[0-9a-f]+)")


@dataclass
class Block:
    lang: str
    body: str
    directive: str

    @property
    def skip_reason(self) -> str | None:
        found = re.match(r"skip \((.*)\)$", self.directive)
        return found.group(1) if found else None


def blocks(page: Path) -> list[Block]:
    text = page.read_text()
    return [Block(m["lang"], m["body"], m["directive"] or "") for m in FENCE.finditer(text)]


def bash_lines(body: str) -> list[str]:
    """The commands of a bash block, one per line (continuations joined, trailing comments cut)."""
    joined = body.replace("\\\n", " ").splitlines()
    return [cut for line in joined if (cut := re.sub(r"\s+#.*$", "", line).strip())]


@dataclass
class Reader:
    """One reader's shell: a fresh home, the clone as the current directory, what they noted."""

    clone: Path
    home: Path
    work: Path
    key: str | None = None
    key_id: str | None = None
    background: list[subprocess.Popen[bytes]] = field(default_factory=list)
    logs: list[Path] = field(default_factory=list)
    started: set[str] = field(default_factory=set)
    skipped: list[str] = field(default_factory=list)

    @property
    def env(self) -> dict[str, str]:
        # PATH without the clone's .venv/bin: what the docs print must work without activating it
        path = ":".join(p for p in os.environ["PATH"].split(":") if ".venv" not in p)
        return {**os.environ, "HOME": str(self.home), "PATH": path, "PYTHONUNBUFFERED": "1"}

    def fill(self, text: str) -> str:
        if "sk-ovos-…" in text:
            assert self.key, "a step needs the key, but no step printed one"
            text = text.replace("sk-ovos-…", self.key)
        if "key_…" in text:
            assert self.key_id, "a step needs a key id, but no `keys create` ran"
            text = text.replace("key_…", self.key_id)
        return text

    def run(self, block: Block) -> str:
        """Run one block; returns what it printed (checked against an `expect` directive)."""
        printed = self._run(block)
        if block.directive.startswith("expect "):
            expected = block.directive.removeprefix("expect ")
            assert expected in printed, f"expected {expected!r} in what it printed:\n{printed}"
        return printed

    def _run(self, block: Block) -> str:
        if block.directive.startswith("file "):
            name = block.directive.removeprefix("file ").strip()
            home_file = name.removeprefix("~/")
            (self.home / home_file if home_file != name else self.work / name).write_text(block.body)
            return ""
        if block.lang == "python":
            script = self.work / "step.py"
            script.write_text(self.fill(block.body))
            return self._check([str(self.clone / ".venv" / "bin" / "python"), str(script)], self.work)
        if block.lang == "bash":
            until = re.match(r"background until (\S+)$", block.directive)
            out = []
            for line in bash_lines(block.body):
                if line.startswith("scripts/test"):
                    self.skipped.append(f"{line!r}: the test suite itself")
                elif until or LONG_RUNNING.match(line):
                    self._background(line, until.group(1) if until else _ready_url(line))
                else:
                    out.append(
                        self._check(["bash", "-euo", "pipefail", "-c", self.fill(line)], self._cwd(line))
                    )
            return "".join(out)
        raise AssertionError(f"no way to run a {block.lang!r} block: mark it `<!-- run: skip (why) -->`")

    def _cwd(self, line: str) -> Path:
        """Where the reader runs `line`: beside the files earlier steps saved, or in the clone."""
        named = {p.name for p in self.work.iterdir()}
        return self.work if any(word in named for word in line.split()) else self.clone

    def _check(self, command: list[str], cwd: Path) -> str:
        done = subprocess.run(command, cwd=cwd, env=self.env, capture_output=True, text=True, timeout=600)
        assert done.returncode == 0, (
            f"{command[-1]} failed ({done.returncode}):\n{done.stdout}\n{done.stderr}"
        )
        self._note(done.stdout)
        return done.stdout

    def _note(self, printed: str) -> None:
        if found := KEY_ID.findall(printed):
            self.key_id = found[-1]

    def _background(self, line: str, ready_url: str) -> None:
        if line in self.started:
            return  # already running, from an earlier page
        log = self.work / f"background-{len(self.background)}.log"
        with open(log, "wb") as out:
            process = subprocess.Popen(
                ["bash", "-c", f"exec {self.fill(line)}"],
                cwd=self.clone,
                env=self.env,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self.background.append(process)
        self.logs.append(log)
        self.started.add(line)
        deadline = time.monotonic() + 600  # a first start installs and sets up everything
        while not _answers(ready_url, self.home):
            printed = log.read_text(errors="replace")
            assert process.poll() is None, f"{line} exited ({process.returncode}):\n{printed[-4000:]}"
            assert time.monotonic() < deadline, f"{line}: {ready_url} never answered:\n{printed[-4000:]}"
            time.sleep(1)
        printed = log.read_text(errors="replace")
        if (found := KEY_LINE.search(printed)) is not None:
            self.key = found.group(1)
        self._note(printed)

    def stop(self) -> list[int | None]:
        """Ctrl-C for what still runs; their exit codes."""
        codes: list[int | None] = []
        for process in reversed(self.background):
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGINT)
            try:
                codes.append(process.wait(60))
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                codes.append(process.wait(10))
        return codes


def _ready_url(line: str) -> str:
    found = DEMO_ADDRESS.search(line)
    host, port = found.groups() if found else ("127.0.0.1", "8080")
    return f"http://{host}:{port}/readyz"


def _answers(url: str, home: Path) -> bool:
    context = None
    if url.startswith("https://"):
        cert = home / ".local" / "share" / "ovos-realtime" / "tls" / "cert.pem"
        if not cert.exists():
            return False
        context = ssl.create_default_context(cafile=str(cert))
    try:
        with urllib.request.urlopen(url, timeout=5, context=context) as response:
            return bool(200 <= response.status < 300)
    except (urllib.error.URLError, OSError):
        return False
