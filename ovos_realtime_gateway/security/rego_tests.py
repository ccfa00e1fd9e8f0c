"""Rego unit tests, the way `opa test` runs them: every rule named `test_*` in a test module is
a test; it passes when it evaluates to true, fails when it is false or undefined, and is an error
when it cannot be evaluated. regopy has no test runner: this one evaluates `data.<package>.test_x`
for each test, in a child process (`rego_test_worker.py`), which is started again after a test
that crashed it.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Literal

from .policy import PolicyError, _describe

WORKER = Path(__file__).with_name("rego_test_worker.py")
DEFAULT_TESTS = Path(__file__).with_name("default_policy_test.rego")
PACKAGE = re.compile(r"^package\s+([\w.]+)", re.M)
TEST_RULE = re.compile(r"^(test_\w+)\b", re.M)


@dataclass(frozen=True, slots=True)
class Outcome:
    name: str
    status: Literal["PASS", "FAIL", "ERROR"]
    detail: str = ""


def discover(text: str, source: str) -> list[str]:
    """The queries of a test module's tests (`data.<package>.test_x`), in the order written."""
    package = PACKAGE.search(text)
    if package is None:
        raise PolicyError(f"{source}: a Rego test module needs a `package` line")
    names = dict.fromkeys(TEST_RULE.findall(text))  # a test may have several bodies: one test
    return [f"data.{package.group(1)}.{name}" for name in names]


class _Worker:
    def __init__(self, modules: list[tuple[str, str]]) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, str(WORKER)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,  # rego-cpp's own printout of an error: reported from the reply
            text=True,
            encoding="utf-8",
        )
        ready = self.ask(modules)
        if ready is None or "error" in ready:
            self.close()
            if ready is None:
                raise PolicyError("the Rego evaluator exited while loading the modules")
            name = str(ready.get("module"))
            text = dict(modules).get(name, "")
            raise PolicyError(f"{name}: the Rego module does not compile: {_describe(ready['error'], text)}")

    def ask(self, value: Any) -> Any:
        stdin: IO[str] = self.proc.stdin  # type: ignore[assignment]  # pipes (PIPE above)
        stdout: IO[str] = self.proc.stdout  # type: ignore[assignment]  # Popen(stdout=PIPE) always has stdout
        try:
            stdin.write(json.dumps(value) + "\n")
            stdin.flush()
            line = stdout.readline()
        except (BrokenPipeError, OSError):
            return None
        return json.loads(line) if line else None

    def close(self) -> None:
        for pipe in (self.proc.stdin, self.proc.stdout):
            if pipe is not None:
                pipe.close()
        try:
            self.proc.wait(5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def run_tests(policy: tuple[str, str], tests: list[tuple[str, str]]) -> list[Outcome]:
    """Run the `test_*` rules of `tests` (name, text) against `policy` (name, text); raises
    PolicyError when a module does not compile."""
    queries = [q for name, text in tests for q in discover(text, name)]
    modules = [policy, *tests]
    outcomes: list[Outcome] = []
    worker = _Worker(modules)
    try:
        for query in queries:
            name = query.rsplit(".", 1)[1]
            reply = worker.ask(query)
            if reply is None:
                code = worker.proc.wait()
                outcomes.append(Outcome(name, "ERROR", f"the Rego evaluator crashed (exit {code})"))
                worker.close()
                worker = _Worker(modules)
            elif not reply.get("ok"):
                outcomes.append(Outcome(name, "ERROR", _first_line(str(reply.get("error")))))
            elif reply.get("value") is True:
                outcomes.append(Outcome(name, "PASS"))
            else:
                got = "undefined" if reply.get("value") is None else json.dumps(reply.get("value"))
                outcomes.append(Outcome(name, "FAIL", f"evaluated to {got}"))
    finally:
        worker.close()
    return outcomes


def _first_line(error: str) -> str:
    message = re.search(r"errormsg \d+:([^)]*)\)", error)
    return message.group(1).strip() if message else (error.strip().splitlines() or ["error"])[0]
