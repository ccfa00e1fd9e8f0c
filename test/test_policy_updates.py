"""The policy an operator applies to every gateway on a store (`policy apply`, issue 18): stored as
versions on both backends, loaded by `PolicyUpdates` into a running `PolicyEngine` (a real Rego
evaluator) without dropping a decision asked before the swap; a policy that does not compile keeps
the old one; `policy clear` goes back to the configured policy; the CLI checks before it stores."""

from __future__ import annotations

import asyncio
import re
import time
from pathlib import Path
from typing import Any

import pytest

from ovos_realtime_gateway.security.policy import PolicyEngine, default_policy_text
from ovos_realtime_gateway.security.policy_updates import PolicyUpdates
from ovos_realtime_gateway.store import AuditEntry, SqliteStore, Store

from .gateway_process import cli, configured_gateway, http

NO_MODELS = default_policy_text().replace(
    "default allow := false",
    'deny contains "Model listing is closed." if input.action == "models.list"\n\ndefault allow := false',
)
NO_MODELS_TESTS = """package ovos_realtime_test

import rego.v1

import data.ovos_realtime

test_models_list_is_closed if {
	not ovos_realtime.decision.allow with input.principal as {"kind": "project_key", "project_id": "p"}
		with input.action as "models.list" with input.resource as {"kind": "model"}
		with input.request as {"time": 1}
}
"""


def ask(action: str) -> dict[str, Any]:
    principal = {"kind": "project_key", "project_id": "p", "credential_id": "key_a", "key_id": "key_a"}
    return {"principal": principal, "action": action, "resource": {"kind": "model"}, "request": {"time": 1}}


async def test_policies_are_stored_as_versions_and_the_newest_is_read(store: Store) -> None:
    assert await store.latest_policy(0) is None
    first = await store.save_policy("package a", "sha-a", 100)
    second = await store.save_policy(None, None, 200)
    assert (first, second) == (1, 2)
    newest = await store.latest_policy(0)
    assert newest is not None and (newest.version, newest.policy, newest.applied_at) == (2, None, 200)
    assert await store.latest_policy(2) is None, "nothing newer than what was seen"
    assert await store.count("policies") == 2


async def test_a_stored_policy_is_loaded_cleared_and_a_broken_one_keeps_the_old(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path)
    await store.migrate()
    engine = PolicyEngine(default_policy_text())
    audited: list[AuditEntry] = []
    deciding: list[int] = []
    updates = PolicyUpdates(store, engine, audited.append, deciding.append)
    try:
        assert (await engine.decide(ask("models.list"))).allow
        await store.save_policy(NO_MODELS, "sha", int(time.time()))
        assert await updates.check()
        denied = await engine.decide(ask("models.list"))
        assert not denied.allow and denied.reason == "Model listing is closed."
        assert not await updates.check(), "seen already: nothing to load"

        await store.save_policy("package ovos_realtime\n\nthis is not rego", "bad", int(time.time()))
        assert not await updates.check()
        assert not (await engine.decide(ask("models.list"))).allow, "the previous policy still decides"
        assert [(e.action, e.decision) for e in audited] == [
            ("policy.load", "loaded"),
            ("policy.load", "failed"),
        ]
        assert "does not compile" in audited[-1].detail["error"]

        await store.save_policy(None, None, int(time.time()))  # `policy clear`
        assert await updates.check()
        assert (await engine.decide(ask("models.list"))).allow, "back to the configured policy"
        assert updates.version == 3
        assert deciding == [1, 3], "the metric says which stored version decides (not the broken 2)"
    finally:
        await engine.close()
        await store.close()


async def test_decisions_asked_before_a_swap_are_all_answered(tmp_path: Path) -> None:
    """Decisions queued on the old evaluator finish with it; none is dropped (closing the old
    evaluator at once would fail them: "Policy evaluation failed.")."""
    engine = PolicyEngine(default_policy_text())
    try:
        asked = [asyncio.ensure_future(engine.decide(ask("models.list"))) for _ in range(200)]
        await engine.swap(NO_MODELS)
        after = await engine.decide(ask("models.list"))
        decisions = await asyncio.gather(*asked)
        assert all(d.reason in ("", "Model listing is closed.") for d in decisions), {
            d.reason for d in decisions
        }
        assert after.reason == "Model listing is closed."
    finally:
        await engine.close()


def test_policy_apply_checks_before_it_stores(tmp_path: Path) -> None:
    data = tmp_path / "data"
    broken = tmp_path / "broken.rego"
    broken.write_text("package ovos_realtime\n\nallow if {")
    done = cli("policy", "apply", str(broken), "--untested", data_dir=data, check=False)
    assert done.returncode == 2 and "broken.rego" in done.stderr and "does not compile" in done.stderr

    policy = tmp_path / "no_models.rego"
    policy.write_text(NO_MODELS)
    done = cli("policy", "apply", str(policy), data_dir=data, check=False)
    assert done.returncode == 2 and "no Rego tests" in done.stderr and "--untested" in done.stderr

    failing = tmp_path / "failing_test.rego"
    failing.write_text(NO_MODELS_TESTS.replace("not ovos_realtime", "ovos_realtime"))
    done = cli("policy", "apply", str(policy), str(failing), data_dir=data, check=False)
    assert done.returncode == 1 and "FAIL" in done.stdout and "not applied" in done.stdout

    (tmp_path / "no_models_test.rego").write_text(NO_MODELS_TESTS)
    done = cli("policy", "apply", str(policy), data_dir=data)
    assert "PASS  test_models_list_is_closed" in done.stdout
    assert "applied" in done.stdout and "policy version 1" in done.stdout
    assert "within revocation_check_seconds (2 s)" in done.stdout, "no cluster: the gateways' poll"
    cleared = cli("policy", "clear", data_dir=data)
    assert "version 2" in cleared.stdout

    async def rows() -> list[dict[str, Any]]:
        store = SqliteStore(data)
        try:
            return [r for r in await store.audit_rows() if r["action"].startswith("policy.")]
        finally:
            await store.close()

    audit = asyncio.run(rows())
    assert [(r["action"], r["principal"], r["resource"]) for r in audit] == [
        ("policy.apply", "cli", "policy:1"),
        ("policy.clear", "cli", "policy:2"),
    ]


def test_policy_apply_names_a_file_it_cannot_read(tmp_path: Path) -> None:
    done = cli("policy", "apply", str(tmp_path / "missing.rego"), data_dir=tmp_path / "d", check=False)
    assert done.returncode == 2 and "missing.rego" in done.stderr and "cannot be read" in done.stderr


@pytest.mark.slow
async def test_a_single_gateway_picks_up_an_applied_policy_at_its_next_check_and_at_start(
    tmp_path: Path,
) -> None:
    """No cluster: `policy apply` with the gateway's data dir reaches it at its next check of the
    store (every `revocation_check_seconds`, 2 s), and a restarted gateway decides with the
    stored policy from its first request (it wins over `policy_file`, here the shipped one)."""
    gateway, key = await asyncio.to_thread(configured_gateway, tmp_path, {}, "single", "single")
    policy = tmp_path / "no_models.rego"
    policy.write_text(NO_MODELS)
    (tmp_path / "no_models_test.rego").write_text(NO_MODELS_TESTS)
    models = "{}/models"
    async with gateway:
        url = models.format(gateway.api_base)
        assert (await asyncio.to_thread(http, "GET", url, key=key)).status == 200
        await asyncio.to_thread(cli, "policy", "apply", str(policy), data_dir=gateway.data_dir)
        applied = time.monotonic()
        while (await asyncio.to_thread(http, "GET", url, key=key)).status != 403:
            assert time.monotonic() - applied < 30, "the gateway never loaded the applied policy"
        assert time.monotonic() - applied < 2 + 1.5, "within revocation_check_seconds (and a margin)"
        metrics = await asyncio.to_thread(http, "GET", f"{gateway.base_url}/metrics")
        assert re.search(rb"^ovos_realtime_policy_version 1\.0$", metrics.body, re.MULTILINE)
    async with gateway:
        first = await asyncio.to_thread(http, "GET", models.format(gateway.api_base), key=key)
        assert first.status == 403, "the stored policy decides from the first request after a start"
