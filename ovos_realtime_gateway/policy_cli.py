"""`ovos-realtime policy test | eval | apply | clear`: the tools a policy author needs, and the way
an operator changes the policy of every running gateway at once.

`policy test` runs the policy's own Rego unit tests (`test_*` rules; by default the tests next to
the policy, `<name>_test.rego`, or the shipped ones for the shipped policy) and prints PASS, FAIL
or ERROR per test; exit 1 when one did not pass. `policy eval --input FILE` prints the decision
the gateway would take for one policy input (docs/security.md), evaluated the way the gateway
evaluates it. The policy is `--policy FILE`, else the settings' `policy_file`, else the shipped one.

`policy apply FILE` checks FILE (it compiles; its Rego tests pass: TEST_FILE…, else
`<name>_test.rego` beside it) and stores it in the store the settings name: every gateway on that
store decides with it from then on (policy_updates.py), told at once through the cluster's Redis
when there is one. `policy clear` stores "none": each gateway goes back to its own `policy_file`.
Both are audited (`policy.apply`, `policy.clear`, principal `cli`).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from .security.policy import PolicyError, RegoProcess, _decision, default_policy_text, read_policy_file
from .security.rego_tests import DEFAULT_TESTS, run_tests
from .settings import GatewaySettings


class PolicyCliError(Exception):
    """A mistake in the command's input: one line, exit code 2."""


def add_parser(sub: Any, config: argparse.ArgumentParser) -> None:
    policy = sub.add_parser("policy", help="test a Rego policy, or see what it decides")
    policy_sub = policy.add_subparsers(dest="policy_command", required=True, metavar="ACTION")
    which = argparse.ArgumentParser(add_help=False)
    which.add_argument("--policy", type=Path, help="Rego policy (default: the settings' policy_file)")
    test = policy_sub.add_parser("test", parents=[config, which], help="run the policy's Rego unit tests")
    test.add_argument(
        "tests",
        nargs="*",
        type=Path,
        metavar="TEST_FILE",
        help="Rego test modules (default: <policy>_test.rego)",
    )
    evaluate = policy_sub.add_parser("eval", parents=[config, which], help="print the decision for one input")
    evaluate.add_argument("--input", type=Path, required=True, help="policy input as JSON ('-': stdin)")
    apply = policy_sub.add_parser(
        "apply", parents=[config], help="check a policy and make it the policy of every gateway on the store"
    )
    apply.add_argument("file", type=Path, metavar="FILE", help="the Rego policy")
    apply.add_argument(
        "tests", nargs="*", type=Path, metavar="TEST_FILE", help="its Rego tests (default: <FILE>_test.rego)"
    )
    apply.add_argument("--untested", action="store_true", help="apply a policy that has no Rego tests")
    policy_sub.add_parser(
        "clear", parents=[config], help="drop the applied policy: each gateway decides with its policy_file"
    )


def run(args: argparse.Namespace, settings: GatewaySettings) -> int:
    if args.policy_command in ("apply", "clear"):
        from .policy_apply import apply, clear

        return (
            apply(args.file, args.tests, args.untested, settings)
            if args.policy_command == "apply"
            else clear(settings)
        )
    path: Path | None = args.policy or settings.policy_file
    name, text = (
        (f"policy_file {path}", read_policy_file(path))
        if path
        else ("default_policy.rego", default_policy_text())
    )
    if args.policy_command == "test":
        return _test(path, name, text, args.tests)
    return _eval(path, text, args.input)


def _test(path: Path | None, name: str, text: str, given: list[Path]) -> int:
    files = given or [path.with_name(f"{path.stem}_test.rego") if path else DEFAULT_TESTS]
    tests: list[tuple[str, str]] = []
    for file in files:
        try:
            tests.append((str(file), file.read_text(encoding="utf-8")))
        except OSError as exc:
            raise PolicyCliError(f"cannot read the test module {file} ({exc.strerror or exc})") from None
    outcomes = run_tests((name, text), tests)
    for outcome in outcomes:
        _say(f"{outcome.status:5} {outcome.name}" + (f": {outcome.detail}" if outcome.detail else ""))
    failed = sum(o.status != "PASS" for o in outcomes)
    _say(f"{len(outcomes) - failed}/{len(outcomes)} passed" + (f", {failed} did not" if failed else ""))
    if not outcomes:
        raise PolicyCliError(f"no test_ rules found in {', '.join(n for n, _ in tests)}")
    return 1 if failed else 0


def _eval(path: Path | None, text: str, input_file: Path) -> int:
    try:
        evaluator = RegoProcess(text)  # the policy first: a broken one is the error, whatever the input
    except PolicyError as exc:
        raise PolicyError(f"policy_file {path or '(the default policy)'}: {exc}") from None
    try:
        value = evaluator.evaluate(_read_input(input_file))
    finally:
        evaluator.close()
    decision = _decision(value, "embedded")
    _say(json.dumps({"allow": decision.allow, "reason": decision.reason, "decision": value}, indent=2))
    return 0


def _read_input(input_file: Path) -> dict[str, Any]:
    try:
        raw = sys.stdin.read() if str(input_file) == "-" else input_file.read_text(encoding="utf-8")
    except OSError as exc:
        raise PolicyCliError(f"--input {input_file}: cannot be read ({exc.strerror or exc})") from None
    try:
        policy_input = json.loads(raw)
    except ValueError as exc:
        raise PolicyCliError(f"--input {input_file}: not JSON ({exc})") from None
    if not isinstance(policy_input, dict):
        raise PolicyCliError(f"--input {input_file}: the policy input is a JSON object")
    return policy_input


def _say(line: str) -> None:
    sys.stdout.write(line + "\n")
