"""Runs Rego unit tests in a process of its own (run as a file, like `rego_worker.py`), so a test
that crashes the evaluator costs that test, never the command that runs them.

Protocol, one JSON document per line: the first line in is `[[name, text], ...]` (the modules);
the first line out is `{"ready": true}` or `{"error": "...", "module": name}`; then each line in
is a query (`data.<package>.test_x`) and each line out is `{"ok": true, "value": <the query's first
expression, or null when undefined>}` or `{"ok": false, "error": "..."}`.
"""

from __future__ import annotations

import json
import os
import sys
from typing import Any


def _first_value(output: Any) -> Any:
    results = getattr(output, "results", None) or []
    expressions = results[0].expressions if results else []
    return expressions[0] if expressions else None


def main() -> None:
    out = os.fdopen(os.dup(1), "w", encoding="utf-8", errors="surrogatepass")
    os.dup2(2, 1)  # rego-cpp prints its messages to stdout: they go to stderr, not into the protocol
    from regopy import Interpreter, RegoError

    interpreter = Interpreter()  # type: ignore[no-untyped-call]
    for name, text in json.loads(sys.stdin.readline()):
        try:
            interpreter.add_module(name, text)
        except RegoError as exc:
            out.write(json.dumps({"error": str(exc), "module": name}) + "\n")
            out.flush()
            return
    out.write(json.dumps({"ready": True}) + "\n")
    out.flush()
    for line in sys.stdin:
        try:
            output = interpreter.query(json.loads(line))
            reply = (
                {"ok": True, "value": _first_value(output)}
                if output.ok()
                else {"ok": False, "error": str(output)}
            )
        except Exception as exc:  # one bad test costs its answer, never the run
            reply = {"ok": False, "error": str(exc)}
        out.write(json.dumps(reply) + "\n")
        out.flush()


if __name__ == "__main__":
    main()
