"""Policy decisions in Rego: embedded (regopy) by default, or an external OPA server.

Every entry point asks `PolicyEngine.decide(input)` with
`{principal, project, action, resource, request}` and gets `Decision(allow, reason)`.
The embedded policy is compiled once into a bundle in a child process of its own
(`rego_worker.py`: regopy leaks ~24 KB per evaluation in a process where another C++ extension
loaded libstdc++ first, see there), asked over a pipe from one worker thread; the child is
replaced after `max_evaluations` and when it dies (that request is denied). With `opa_url` set,
OPA's `/v1/data/ovos_realtime/decision` decides, and an unreachable OPA fails closed. A policy
whose decision is undefined for an input denies it.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import subprocess
import sys
import threading
import weakref
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import IO, Any

import aiohttp

from .secret_refs import SecretValue

log = logging.getLogger("ovos_realtime.policy")
QUERY = "data.ovos_realtime.decision"


@dataclass(frozen=True, slots=True)
class Decision:
    allow: bool
    reason: str
    source: str


class PolicyUnavailable(Exception):
    """The external policy server could not be asked."""


class PolicyError(ValueError):
    """The policy does not compile: reported at start, before anything listens."""


def default_policy_text() -> str:
    return resources.files(__package__).joinpath("default_policy.rego").read_text()


def read_policy_file(path: Path) -> str:
    """The text of a `policy_file`; a PolicyError naming it when it cannot be read."""
    try:
        return path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise PolicyError(
            f"policy_file {path}: cannot be read ({getattr(exc, 'strerror', None) or exc})"
        ) from None


WORKER = Path(__file__).with_name("rego_worker.py")
MAX_EVALUATIONS = 100_000
"""A worker is replaced after this many evaluations: whatever it might still hold is bounded."""


class RegoProcess:
    """The embedded policy's evaluator: `rego_worker.py` in a child process, asked over pipes.
    Blocking; one evaluation at a time (callers use one worker thread)."""

    def __init__(self, policy_text: str, max_evaluations: int = MAX_EVALUATIONS) -> None:
        self._text = policy_text
        self.max_evaluations = max_evaluations
        self._lock = threading.Lock()
        self.started = 0  # workers started, for tests and logs
        self.loaded_libstdcxx_first = False
        self._current: list[subprocess.Popen[str]] = [self._start()]
        # an evaluator dropped without close() still ends its process and closes its pipes
        self._finalizer = weakref.finalize(self, _stop_all_off_thread, self._current)
        self._count = 0

    @property
    def _proc(self) -> subprocess.Popen[str]:
        return self._current[0]

    def _start(self) -> subprocess.Popen[str]:
        proc = subprocess.Popen(
            [sys.executable, str(WORKER)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            encoding="utf-8",
            errors="surrogatepass",
        )
        ready = self._exchange(proc, self._text)
        if ready is None or "error" in ready:
            _stop(proc)
            error = "the Rego worker exited" if ready is None else str(ready["error"])
            raise PolicyError(f"the Rego policy does not compile: {_describe(error, self._text)}")
        self.loaded_libstdcxx_first = bool(ready.get("libstdcxx_first"))
        self.started += 1
        return proc

    @staticmethod
    def _exchange(proc: subprocess.Popen[str], value: Any) -> Any:
        """Send one JSON line, read one back (None: the worker is gone)."""
        stdin: IO[str] = proc.stdin  # type: ignore[assignment]  # both are pipes (PIPE above)
        stdout: IO[str] = proc.stdout  # type: ignore[assignment]  # Popen(stdout=PIPE) always has stdout
        try:
            stdin.write(json.dumps(value, default=str) + "\n")
            stdin.flush()
            line = stdout.readline()
        except (BrokenPipeError, OSError, ValueError):
            return None
        return json.loads(line) if line else None

    def evaluate(self, policy_input: dict[str, Any]) -> Any:
        """The decision value for `policy_input` (None: undefined); raises PolicyUnavailable."""
        with self._lock:
            if self._count >= self.max_evaluations:
                self._replace()
            self._count += 1
            reply = self._exchange(self._proc, policy_input)
            if reply is None:
                log.error("the Rego worker died (exit %s); starting a new one", self._proc.poll())
                self._replace()
                raise PolicyUnavailable("the policy evaluator restarted")
        if not reply.get("ok"):
            log.error("policy evaluation failed: %s", reply.get("error"))
            raise PolicyUnavailable("policy evaluation failed")
        return reply.get("value")

    def _replace(self) -> None:
        old, self._current[0] = self._current[0], self._start()
        self._count = 0
        _stop(old)

    @property
    def pid(self) -> int:
        return self._proc.pid

    def close(self) -> None:
        """Stop the worker and wait for it (the finalizer, for an evaluator never closed, does not wait)."""
        with self._lock:
            if self._finalizer.detach() is not None:
                _stop_all(self._current)


def _stop(proc: subprocess.Popen[str]) -> None:
    """End a worker: its stdin closed is its signal to exit; killed if it does not."""
    for pipe in (proc.stdin, proc.stdout):
        if pipe is not None:
            try:
                pipe.close()
            except OSError:
                pass
    try:
        proc.wait(5)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


def _stop_all(current: list[subprocess.Popen[str]]) -> None:
    for proc in current:
        _stop(proc)


def _stop_all_off_thread(current: list[subprocess.Popen[str]]) -> None:
    """Stop the workers on a thread of their own: a finalizer runs wherever the garbage collector
    happens to run, possibly on the event loop, which waiting for a process would block."""
    threading.Thread(target=_stop_all, args=(list(current),), name="rego-worker-stop", daemon=True).start()


class PolicyEngine:
    """The compiled Rego policy (or an OPA server), asked per request."""

    def __init__(
        self,
        policy_text: str,
        opa_url: str | None = None,
        opa_timeout_s: float = 2.0,
        opa_token: SecretValue | None = None,
    ) -> None:
        self.rego = RegoProcess(policy_text)  # compiles now: a bad policy stops the start
        self.configured_text = policy_text  # policy_file's (or the shipped one): `policy clear` returns here
        self.text = policy_text  # what decides now
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="ovos-realtime-policy")
        self._opa_url = opa_url.rstrip("/") if opa_url else None
        self._opa_token = opa_token  # sent as `Authorization: Bearer`, read per request (it rotates)
        self._opa_timeout = aiohttp.ClientTimeout(total=opa_timeout_s)
        self._session: aiohttp.ClientSession | None = None

    @classmethod
    def from_settings(
        cls,
        policy_file: Path | None,
        opa_url: str | None,
        opa_token: SecretValue | None = None,
        opa_timeout_s: float = 2.0,
    ) -> PolicyEngine:
        """The engine of the settings; a `policy_file` that cannot be read or does not compile is
        a PolicyError naming it."""
        text = read_policy_file(policy_file) if policy_file else default_policy_text()
        try:
            return cls(text, opa_url, opa_timeout_s, opa_token)
        except PolicyError as exc:
            raise PolicyError(f"policy_file {policy_file or '(the default policy)'}: {exc}") from None

    @property
    def source(self) -> str:
        return "opa" if self._opa_url else "embedded"

    async def decide(self, policy_input: dict[str, Any]) -> Decision:
        if self._opa_url:
            return await self._ask_opa(policy_input)
        return await self.decide_embedded(policy_input)

    async def decide_embedded(self, policy_input: dict[str, Any]) -> Decision:
        loop = asyncio.get_running_loop()
        try:
            result = await loop.run_in_executor(self._executor, self.rego.evaluate, policy_input)
        except PolicyUnavailable:
            return Decision(False, "Policy evaluation failed.", "embedded")
        return _decision(result, "embedded")  # undefined (None) or not an object: denied

    async def _ask_opa(self, policy_input: dict[str, Any]) -> Decision:
        if self._session is None:
            self._session = aiohttp.ClientSession(timeout=self._opa_timeout)
        url = f"{self._opa_url}/v1/data/ovos_realtime/decision"
        try:
            token = {"Authorization": f"Bearer {self._opa_token.value}"} if self._opa_token else None
            body_text = json.dumps({"input": policy_input})
            async with self._session.post(url, data=body_text, headers=token) as resp:
                if resp.status != 200:
                    raise PolicyUnavailable(f"OPA answered HTTP {resp.status}")
                body = await resp.json(content_type=None)
        except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
            raise PolicyUnavailable(str(exc) or type(exc).__name__) from exc
        result = body.get("result") if isinstance(body, dict) else None
        if not isinstance(result, dict):
            return Decision(False, "The policy server returned no decision.", "opa")
        return _decision(result, "opa")

    async def swap(self, policy_text: str) -> None:
        """Decide with `policy_text` from now on. It is compiled first, off the loop; a PolicyError
        keeps the current one. Decisions already asked finish with the policy they were asked of
        (the old evaluator is closed on the policy's one thread, after them)."""
        new = await asyncio.to_thread(RegoProcess, policy_text)
        old, self.rego, self.text = self.rego, new, policy_text
        await asyncio.get_running_loop().run_in_executor(self._executor, old.close)

    async def ready(self) -> tuple[bool, str]:
        """Whether decisions can be made now (for /readyz)."""
        if not self._opa_url:
            return True, "embedded"
        try:
            await self._ask_opa({"action": "readyz", "principal": {}, "resource": {}, "request": {}})
        except PolicyUnavailable as exc:
            return False, f"opa unreachable: {exc}"
        return True, "opa"

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None
        await asyncio.get_running_loop().run_in_executor(self._executor, self.rego.close)
        self._executor.shutdown(wait=False)


def _describe(error: str, source: str) -> str:
    """The first message of regopy's error s-expression, with its line and column."""
    message = re.search(r"errormsg \d+:([^)]*)\)", error)
    where = re.search(r"\(error \d+:[^|]*\|(\d+)\|", error)
    text = message.group(1).strip() if message else error.strip().splitlines()[0]
    if where is None:
        return text
    offset = int(where.group(1))
    line = source.count("\n", 0, offset) + 1
    column = offset - (source.rfind("\n", 0, offset) + 1) + 1
    return f"{text} (line {line}, column {column})"


def _decision(result: Any, source: str) -> Decision:
    if not isinstance(result, dict):
        return Decision(False, "The policy returned no decision.", source)
    return Decision(bool(result.get("allow") is True), str(result.get("reason") or ""), source)
