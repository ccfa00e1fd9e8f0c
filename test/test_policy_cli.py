"""`ovos-realtime policy test` (the policy's own Rego unit tests) and `policy eval` (one decision),
run as a user runs them: the CLI in a subprocess."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ovos_realtime_gateway.security.policy import default_policy_text
from ovos_realtime_gateway.security.rego_tests import DEFAULT_TESTS

from .gateway_process import cli

CROSS_PROJECT_READ: dict[str, Any] = {
    "principal": {"kind": "project_key", "project_id": "proj_a", "credential_id": "key_a", "key_id": "key_a"},
    "project": {"id": "proj_a"},
    "action": "sessions.read",
    "resource": {"kind": "session", "id": "sess_1", "project_id": "proj_b"},
    "request": {
        "time": 1800000000,
        "method": "GET",
        "path": "/v1/realtime/sessions/sess_1",
        "transport": "rest",
    },
}


def test_the_default_policy_passes_its_shipped_tests() -> None:
    done = cli("policy", "test")
    lines = done.stdout.splitlines()
    assert lines[-1] == f"{len(lines) - 1}/{len(lines) - 1} passed"
    assert len(lines) - 1 >= 10
    assert all(line.startswith("PASS  test_") for line in lines[:-1]), done.stdout
    assert "PASS  test_project_key_cannot_read_another_projects_session" in lines


def test_the_shipped_tests_catch_a_policy_without_tenant_isolation(tmp_path: Path) -> None:
    """Tenant isolation removed from the default policy: its tests say which ones fail, exit 1."""
    text = default_policy_text()
    rule = 'deny contains "The resource belongs to another project." if not same_project\n'
    assert rule in text
    policy = tmp_path / "open.rego"
    policy.write_text(text.replace(rule, ""))
    done = cli("policy", "test", "--policy", str(policy), str(DEFAULT_TESTS), check=False)
    assert done.returncode == 1, done.stdout + done.stderr
    assert (
        "FAIL  test_project_key_cannot_read_another_projects_session: evaluated to undefined" in done.stdout
    )
    assert "FAIL  test_microphone_belongs_to_its_owner" in done.stdout
    assert "PASS  test_expired_client_secret_is_denied" in done.stdout
    assert "did not" in done.stdout.splitlines()[-1]


def test_a_custom_policy_runs_the_tests_next_to_it(tmp_path: Path) -> None:
    policy = tmp_path / "quiet_hours.rego"
    policy.write_text(
        "package ovos_realtime\nimport rego.v1\n"
        "default allow := false\n"
        "allow if input.request.hour < 22\n"
        'decision := {"allow": allow, "reason": ""}\n'
    )
    (tmp_path / "quiet_hours_test.rego").write_text(
        "package ovos_realtime_test\nimport rego.v1\nimport data.ovos_realtime\n"
        "test_day if ovos_realtime.allow with input.request as {'hour': 9}\n".replace("'", '"')
        + "test_night_wrongly_expected if ovos_realtime.allow with input.request as {'hour': 23}\n".replace(
            "'", '"'
        )
    )
    done = cli("policy", "test", "--policy", str(policy), check=False)
    assert done.returncode == 1
    assert done.stdout.splitlines() == [
        "PASS  test_day",
        "FAIL  test_night_wrongly_expected: evaluated to undefined",
        "1/2 passed, 1 did not",
    ]


def test_a_test_module_that_crashes_the_evaluator_is_reported_not_fatal(tmp_path: Path) -> None:
    """A real fault, not an injected one: regopy 1.5.2 crashes (SIGSEGV) on `with input as {...}`
    when the policy's rules depend on one another (the shipped tests replace the input part by
    part instead). Each test is an ERROR saying so, and the command still reports and exits 1."""
    tests = tmp_path / "crashing_test.rego"
    tests.write_text(
        "package crashing_test\nimport rego.v1\nimport data.ovos_realtime\n"
        'test_whole_input if ovos_realtime.allow with input as {"action": "models.list"}\n'
        "test_trivial if true\n"
    )
    done = cli("policy", "test", str(tests), check=False)
    assert done.returncode == 1
    lines = done.stdout.splitlines()
    assert [line.split(":")[0] for line in lines[:2]] == ["ERROR test_whole_input", "ERROR test_trivial"]
    assert all("the Rego evaluator crashed" in line for line in lines[:2]), done.stdout
    assert lines[2] == "0/2 passed, 2 did not"


def test_a_policy_that_does_not_compile_is_one_line_naming_policy_file(tmp_path: Path) -> None:
    broken = tmp_path / "broken.rego"
    broken.write_text("package ovos_realtime\nallow if {")
    for command in (["test", str(DEFAULT_TESTS)], ["eval", "--input", "-"]):
        done = cli("policy", *command, "--policy", str(broken), check=False)
        assert done.returncode == 2, command
        last = done.stderr.strip().splitlines()[-1]
        assert last.startswith(f"ovos-realtime: error: policy_file {broken}: "), done.stderr
        assert "(line 2, column 10)" in last
        assert "Traceback" not in done.stderr
    # a test module that does not compile is named as such
    broken_tests = tmp_path / "broken_test.rego"
    broken_tests.write_text("package t\ntest_x if {")
    done = cli("policy", "test", str(broken_tests), check=False)
    assert done.returncode == 2
    assert done.stderr.startswith(f"ovos-realtime: error: {broken_tests}: the Rego module does not compile: ")


def test_eval_prints_the_decision_the_gateway_would_take(tmp_path: Path) -> None:
    given = tmp_path / "input.json"
    given.write_text(json.dumps(CROSS_PROJECT_READ))
    decision = json.loads(cli("policy", "eval", "--input", str(given)).stdout)
    assert decision["allow"] is False
    assert decision["reason"] == "The resource belongs to another project."
    same = {**CROSS_PROJECT_READ, "resource": {**CROSS_PROJECT_READ["resource"], "project_id": "proj_a"}}
    given.write_text(json.dumps(same))
    assert json.loads(cli("policy", "eval", "--input", str(given)).stdout)["allow"] is True
    # a policy that defines no decision for the input: denied, as the gateway would
    silent = tmp_path / "silent.rego"
    silent.write_text('package ovos_realtime\nimport rego.v1\ndecision := {"allow": true} if input.never\n')
    undefined = json.loads(cli("policy", "eval", "--input", str(given), "--policy", str(silent)).stdout)
    assert undefined == {"allow": False, "reason": "The policy returned no decision.", "decision": None}


def test_eval_names_an_input_that_is_not_json(tmp_path: Path) -> None:
    given = tmp_path / "input.json"
    given.write_text("{not json")
    done = cli("policy", "eval", "--input", str(given), check=False)
    assert done.returncode == 2
    assert done.stderr.startswith(f"ovos-realtime: error: --input {given}: not JSON")
