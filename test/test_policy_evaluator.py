"""The embedded policy's evaluator (issue 12, defects 1 and 3): regopy runs in a child process of
its own, where it is the first native library loaded, so its evaluations do not leak; an
undefined decision denies; a dead or worn evaluator is replaced. Real regopy, real processes."""

from __future__ import annotations

import asyncio
import gc
import os
import signal
from pathlib import Path

import pytest

from ovos_realtime_gateway.security.policy import PolicyEngine, RegoProcess, default_policy_text

from .gateway_process import configured_gateway, http, rss_kib

PROJECT_KEY = {
    "principal": {"kind": "project_key", "key_id": "key_1", "project_id": "proj_1"},
    "project": {"id": "proj_1"},
    "action": "models.list",
    "resource": {},
    "request": {"method": "GET", "path": "/v1/models"},
}
EK = {**PROJECT_KEY, "principal": {"kind": "client_secret", "key_id": "ek_1", "project_id": "proj_1"}}
ONLY_PROJECT_KEYS = """package ovos_realtime
import rego.v1
decision := {"allow": true, "reason": "project key"} if input.principal.kind == "project_key"
"""


def test_regopy_is_the_first_cpp_library_its_process_loads() -> None:
    """This test process imported aiohttp (frozenlist: libstdc++) long ago; the evaluator's own
    process did not, which is what keeps rego-cpp's allocator and libstdc++'s one and the same."""
    import aiohttp  # noqa: F401  # the gateway's own import order, in this process

    rego = RegoProcess(default_policy_text())
    try:
        assert "libstdc++" in Path("/proc/self/maps").read_text()
        assert rego.loaded_libstdcxx_first is False
    finally:
        rego.close()


def test_evaluations_do_not_grow_the_evaluator() -> None:
    """Before: ~24 KB per evaluation once aiohttp was imported (72 MB over these 3,000)."""
    rego = RegoProcess(default_policy_text())
    try:
        for _ in range(300):
            rego.evaluate(PROJECT_KEY)
        before = rss_kib(rego.pid)
        for _ in range(3000):
            assert rego.evaluate(PROJECT_KEY)["allow"] is True
        grown = rss_kib(rego.pid) - before
    finally:
        rego.close()
    assert grown < 2048, f"the evaluator grew {grown} KB over 3,000 evaluations"


async def test_an_undefined_decision_denies_and_the_evaluator_lives_on() -> None:
    """A policy written for project keys only has no decision for an ek_; regopy's native
    `expressions()` aborted the whole gateway on that. Undefined means deny."""
    engine = PolicyEngine(ONLY_PROJECT_KEYS)
    try:
        pid = engine.rego.pid
        denied = await engine.decide(EK)
        assert (denied.allow, denied.reason) == (False, "The policy returned no decision.")
        assert (await engine.decide(PROJECT_KEY)).allow
        assert engine.rego.pid == pid and engine.rego.started == 1
    finally:
        await engine.close()


async def test_an_evaluator_that_dies_is_replaced_and_its_request_denied() -> None:
    engine = PolicyEngine(default_policy_text())
    try:
        os.kill(engine.rego.pid, signal.SIGKILL)
        lost = await engine.decide(PROJECT_KEY)
        assert (lost.allow, lost.reason) == (False, "Policy evaluation failed.")
        assert (await engine.decide(PROJECT_KEY)).allow, "a new evaluator answers the next request"
        assert engine.rego.started == 2
    finally:
        await engine.close()


def test_a_worn_evaluator_is_replaced_without_losing_a_request() -> None:
    rego = RegoProcess(default_policy_text(), max_evaluations=5)
    try:
        assert all(rego.evaluate(PROJECT_KEY)["allow"] for _ in range(12))
        assert rego.started == 3
    finally:
        rego.close()


@pytest.mark.slow
def test_authorized_requests_do_not_grow_the_gateway(tmp_path: Path) -> None:
    """The soak's finding: the gateway process grew ~26 KB per authorized request (832 MB over
    32k). 1,500 requests after a warm-up: under 12 MB (the leak was ~39 MB)."""
    limits = {"requests_per_minute": 1_000_000, "requests_per_minute_per_key": 1_000_000}
    gateway, key = configured_gateway(tmp_path, {"rate_limits": limits}, "soak", "soak")
    with gateway:
        assert gateway.proc is not None
        for _ in range(300):
            assert http("GET", f"{gateway.api_base}/models", key=key).status == 200
        before = rss_kib(gateway.proc.pid)
        for _ in range(1500):
            assert http("GET", f"{gateway.api_base}/models", key=key).status == 200
        grown = rss_kib(gateway.proc.pid) - before
    assert grown < 12 * 1024, f"the gateway grew {grown} KB over 1,500 requests"


async def test_an_evaluator_dropped_on_the_event_loop_stops_its_worker_without_blocking_it() -> None:
    """An evaluator nobody closed is finalized wherever the garbage collector runs, here on the
    event loop (the loop guard fails any blocking call there): its worker still ends, waited for
    on a thread of its own."""
    rego = await asyncio.to_thread(RegoProcess, default_policy_text())
    worker = rego._proc
    del rego
    gc.collect()  # on the loop: the finalizer must not wait for the process here
    assert await asyncio.to_thread(worker.wait, 30) is not None, "the dropped evaluator's worker ended"
