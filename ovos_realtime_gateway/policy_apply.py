"""`ovos-realtime policy apply FILE | clear`: change the policy of every gateway on one store.

The policy is checked here first (it compiles; its Rego tests pass), then stored as the next
version with an audit row, then announced to the cluster's replicas (cluster/news.py). Nothing is
stored when a check fails. Gateways load it at once when told, else at their next check of the
store (`revocation_check_seconds`), and at start (the stored policy wins over `policy_file`).
"""

from __future__ import annotations

import asyncio
import hashlib
import sys
import time
from pathlib import Path

from .cli_common import with_store
from .cluster.news import News, announce
from .policy_cli import PolicyCliError, _say, _test
from .security.policy import PolicyError, RegoProcess, read_policy_file
from .settings import GatewaySettings
from .store import AuditEntry, Store


def apply(file: Path, tests: list[Path], untested: bool, settings: GatewaySettings) -> int:
    """Check `file` and store it as the policy of every gateway on the settings' store."""
    text = read_policy_file(file)
    try:
        RegoProcess(text).close()  # compiles (the tests would say so too, less plainly)
    except PolicyError as exc:
        raise PolicyError(f"{file}: {exc}") from None
    if not untested:
        beside = file.with_name(f"{file.stem}_test.rego")
        if not tests and not beside.exists():
            raise PolicyCliError(
                f"no Rego tests for {file}: give TEST_FILE, write {beside}, or apply it --untested"
            )
        if _test(file, f"policy {file}", text, tests) != 0:
            _say(f"not applied: the tests of {file} did not all pass")
            return 1
    digest = hashlib.sha256(text.encode()).hexdigest()
    version = asyncio.run(with_store(settings, lambda store: _store(store, text, digest, str(file))))
    _say(f"applied {file} as policy version {version} (sha256 {digest[:12]}…)")
    _tell(settings)
    return 0


def clear(settings: GatewaySettings) -> int:
    """Store "no policy": each gateway goes back to its own `policy_file` (or the shipped one)."""
    version = asyncio.run(with_store(settings, lambda store: _store(store, None, None, None)))
    _say(f"cleared the applied policy (version {version}): each gateway decides with its policy_file")
    _tell(settings)
    return 0


async def _store(store: Store, text: str | None, digest: str | None, file: str | None) -> int:
    now = time.time()
    version = await store.save_policy(text, digest, int(now))
    action = "policy.apply" if text is not None else "policy.clear"
    detail = (
        {"version": version, "sha256": digest, "file": file} if text is not None else {"version": version}
    )
    entry = AuditEntry(now, None, action, "allow", 200, None, "cli", f"policy:{version}", detail)
    await store.write_audit([entry])
    return version


def _tell(settings: GatewaySettings) -> None:
    told = asyncio.run(announce(settings, News("policy")))
    if told is None:
        _say(
            "gateways on this store load it within revocation_check_seconds "
            f"({settings.revocation_check_seconds:g} s)"
        )
    elif told.startswith("told"):
        _say(told)
    else:
        sys.stderr.write(told + "\n")
