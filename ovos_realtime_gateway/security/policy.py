"""Policy decisions in Rego: embedded (regopy) by default, or an external OPA server.

Every entry point asks `PolicyEngine.decide(input)` with
`{principal, project, action, resource, request}` and gets `Decision(allow, reason)`.
The embedded policy is compiled once into a bundle; a query costs well under a millisecond and
runs on the event loop. With `opa_url` set, OPA's `/v1/data/ovos_realtime/decision` decides,
and an unreachable OPA fails closed.
"""

from __future__ import annotations

import json
import logging
import re
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import aiohttp
from regopy import Interpreter, RegoError

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


class PolicyEngine:
    """Compiled Rego policy, queried per request."""

    def __init__(self, policy_text: str, opa_url: str | None = None, opa_timeout_s: float = 2.0) -> None:
        self._interpreter = Interpreter()  # type: ignore[no-untyped-call]
        try:
            self._interpreter.add_module("policy.rego", policy_text)
            self._bundle = self._interpreter.build(QUERY)
        except RegoError as exc:
            raise PolicyError(
                f"the Rego policy does not compile: {_describe(str(exc), policy_text)}"
            ) from None
        self._opa_url = opa_url.rstrip("/") if opa_url else None
        self._opa_timeout = aiohttp.ClientTimeout(total=opa_timeout_s)
        self._session: aiohttp.ClientSession | None = None

    @classmethod
    def from_settings(cls, policy_file: Path | None, opa_url: str | None) -> PolicyEngine:
        text = policy_file.read_text() if policy_file else default_policy_text()
        return cls(text, opa_url)

    @property
    def source(self) -> str:
        return "opa" if self._opa_url else "embedded"

    async def decide(self, policy_input: dict[str, Any]) -> Decision:
        if self._opa_url:
            return await self._ask_opa(policy_input)
        return self.decide_embedded(policy_input)

    def decide_embedded(self, policy_input: dict[str, Any]) -> Decision:
        self._interpreter.set_input(policy_input)  # type: ignore[arg-type]  # any JSON-able value
        output = self._interpreter.query_bundle(self._bundle)
        if not output.ok():
            log.error("policy evaluation failed: %s", output)
            return Decision(False, "Policy evaluation failed.", "embedded")
        first = output.expressions()[0]
        if first is None:
            return Decision(False, "The policy returned no decision.", "embedded")
        result = json.loads(first.json())
        return _decision(result, "embedded")

    async def _ask_opa(self, policy_input: dict[str, Any]) -> Decision:
        if self._session is None:
            self._session = aiohttp.ClientSession(timeout=self._opa_timeout)
        url = f"{self._opa_url}/v1/data/ovos_realtime/decision"
        try:
            async with self._session.post(url, data=json.dumps({"input": policy_input})) as resp:
                if resp.status != 200:
                    raise PolicyUnavailable(f"OPA answered HTTP {resp.status}")
                body = await resp.json(content_type=None)
        except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
            raise PolicyUnavailable(str(exc) or type(exc).__name__) from exc
        result = body.get("result") if isinstance(body, dict) else None
        if not isinstance(result, dict):
            return Decision(False, "The policy server returned no decision.", "opa")
        return _decision(result, "opa")

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
