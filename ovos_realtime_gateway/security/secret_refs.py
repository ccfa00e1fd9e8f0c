"""Secret settings as references: a literal, `env:NAME`, `file:PATH` or `vault:MOUNT/PATH#FIELD`.

A consumer keeps the SecretValue and reads `.value` each time it needs the secret, so a secret
rotated in its backend is used from the next refresh on, without a restart. A value never
reaches a log, an error message or a repr: they name the setting and the reference only.
"""

from __future__ import annotations

import asyncio
import logging
import os
import re
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    from ..settings import VaultSettings

log = logging.getLogger("ovos_realtime.secrets")
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_VAULT = re.compile(r"^([^/#]+)/([^#]+)#(.+)$")
Kind = Literal["literal", "env", "file", "vault"]


class SecretError(Exception):
    """A secret that cannot be read; the message names the setting, never the value."""


@dataclass(frozen=True, slots=True)
class Reference:
    """Where a secret setting's value comes from."""

    kind: Kind
    target: str = ""  # env: the variable; file: the path; vault: MOUNT/PATH
    field: str = ""  # vault: the field of the KV v2 secret

    def describe(self) -> str:
        """For messages: the reference itself, or `a literal value` (never the value)."""
        if self.kind == "literal":
            return "a literal value"
        suffix = f"#{self.field}" if self.kind == "vault" else ""
        return f"{self.kind}:{self.target}{suffix}"


def parse_reference(text: str, allow_vault: bool = True) -> Reference:
    """The reference `text` is; ValueError says what is malformed (a literal never is)."""
    kind, sep, rest = text.partition(":")
    if not sep or kind not in ("env", "file", "vault"):
        return Reference("literal")
    if kind == "env":
        if not _ENV_NAME.match(rest):
            raise ValueError(f"malformed secret reference 'env:{rest}': expected env:NAME")
        return Reference("env", rest)
    if kind == "file":
        if not rest.strip():
            raise ValueError("malformed secret reference 'file:': expected file:PATH")
        return Reference("file", rest)
    if not allow_vault:
        raise ValueError("this setting is read before Vault is reached: use a literal, env: or file:")
    match = _VAULT.match(rest)
    if match is None:
        raise ValueError(
            f"malformed secret reference 'vault:{rest}': expected vault:MOUNT/PATH#FIELD "
            "(e.g. vault:secret/ovos-realtime#webhook_secret)"
        )
    return Reference("vault", f"{match.group(1)}/{match.group(2)}", match.group(3))


def check_reference(value: str | None, allow_vault: bool = True) -> str | None:
    """A settings validator: a malformed reference fails at start, naming the setting."""
    if value is not None:
        parse_reference(value, allow_vault)
    return value


def read_local(text: str) -> str:
    """The value of a literal, `env:` or `file:` reference now (blocking: call off the loop)."""
    return read_reference(parse_reference(text, allow_vault=False), text)


def read_reference(reference: Reference, literal: str = "") -> str:
    """The value of a literal (`literal` itself), `env:` or `file:` reference now."""
    if reference.kind == "literal":
        return literal
    if reference.kind == "env":
        value = os.environ.get(reference.target, "")
        if not value:
            raise SecretError(f"the environment variable {reference.target} is not set or empty")
        return value
    path = Path(reference.target).expanduser()
    try:
        value = path.read_text().strip()
    except OSError as exc:
        raise SecretError(f"cannot read {path}: {exc.strerror or exc}") from None
    if not value:
        raise SecretError(f"{path} is empty")
    return value


class SecretValue:
    """One secret setting's current value, kept up to date by the SecretResolver."""

    def __init__(self, setting: str, reference: Reference, value: str | None = None) -> None:
        self.setting = setting
        self.reference = reference
        self._value = value
        self._previous: str | None = None
        self.changed_at: float | None = None  # when the value last changed (None: never since start)

    @property
    def value(self) -> str:
        if self._value is None:
            raise SecretError(f"{self.setting} has not been read yet")
        return self._value

    def previous_within(self, seconds: float, now: float | None = None) -> str | None:
        """The value replaced by the last change, if it changed less than `seconds` ago."""
        if self._previous is None or self.changed_at is None:
            return None
        return self._previous if (now or time.time()) - self.changed_at < seconds else None

    def update(self, value: str) -> bool:
        """Take a freshly read value; True when it differs from the current one."""
        if value == self._value:
            return False
        if self._value is not None:
            self._previous, self.changed_at = self._value, time.time()
        self._value = value
        return True

    def __repr__(self) -> str:
        return f"SecretValue({self.setting}, {self.reference.describe()})"


class SecretResolver:
    """Reads every referenced secret at start (one that cannot be read stops the start) and again
    every `vault.refresh_seconds`; a refresh that fails keeps the last value and logs why."""

    def __init__(self, vault: VaultSettings) -> None:
        self.vault_settings = vault
        self.secrets: list[SecretValue] = []
        self._vault: Callable[[Reference], str] | None = None
        self._executor: ThreadPoolExecutor | None = None
        self.on_refresh_failed: Callable[[str], object] | None = None  # told the setting's name

    def add(self, setting: str, text: str | None) -> SecretValue | None:
        """The SecretValue of setting `setting` (None when unset); a literal is ready at once."""
        if text is None:
            return None
        reference = parse_reference(text)
        secret = SecretValue(setting, reference, text if reference.kind == "literal" else None)
        if reference.kind != "literal":
            self.secrets.append(secret)
        return secret

    def _read(self, secret: SecretValue) -> str:
        try:
            if secret.reference.kind != "vault":
                return read_reference(secret.reference)
            if self._vault is None:
                from .vault import VaultReader

                self._vault = VaultReader(self.vault_settings).read
            return self._vault(secret.reference)
        except SecretError as exc:
            raise SecretError(f"setting '{secret.setting}' ({secret.reference.describe()}): {exc}") from None

    async def _read_all(self) -> list[tuple[SecretValue, str | SecretError]]:
        if self._executor is None:
            self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="ovos-realtime-secrets")
        loop = asyncio.get_running_loop()

        def read_each() -> list[tuple[SecretValue, str | SecretError]]:
            results: list[tuple[SecretValue, str | SecretError]] = []
            for secret in self.secrets:
                try:
                    results.append((secret, self._read(secret)))
                except SecretError as exc:
                    results.append((secret, exc))
            return results

        return await loop.run_in_executor(self._executor, read_each)

    async def load(self) -> None:
        """Read every referenced secret; SecretError names each setting that could not be read."""
        if not self.secrets:
            return
        results = await self._read_all()
        failed = [str(outcome) for _, outcome in results if isinstance(outcome, SecretError)]
        if failed:
            raise SecretError("; ".join(failed))
        for secret, outcome in results:
            assert isinstance(outcome, str)
            secret.update(outcome)
        log.info("read %d secret setting(s): %s", len(results), ", ".join(s.setting for s in self.secrets))

    async def refresh(self) -> int:
        """Read every referenced secret again; how many changed."""
        changed = 0
        for secret, outcome in await self._read_all():
            if isinstance(outcome, SecretError):
                log.warning("could not refresh a secret, keeping its last value: %s", outcome)
                if self.on_refresh_failed is not None:
                    self.on_refresh_failed(secret.setting)
            elif secret.update(outcome):
                changed += 1
                log.info("secret setting '%s' changed (%s)", secret.setting, secret.reference.describe())
        return changed

    async def run(self) -> None:
        """Forever: refresh every `vault.refresh_seconds`."""
        while True:
            await asyncio.sleep(self.vault_settings.refresh_seconds)
            await self.refresh()

    @property
    def refreshes(self) -> bool:
        return bool(self.secrets)

    def close(self) -> None:
        if self._executor is not None:
            self._executor.shutdown(wait=False)
