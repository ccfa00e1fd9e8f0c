"""Runs Rego unit tests in a process of its own (run as a file, like `rego_worker.py`), so a test
that crashes the evaluator costs that test, never the command that runs them.

Protocol, one JSON document per line: the first line in is `[[name, text], ...]` (the modules);
the first line out is `{"ready": true}` or `{"error": "...", "module": name}`; then each line in
is a query (`data.<package>.test_x`) and each line out is `{"ok": true, "value": <the query's first
expression, or null when undefined>}` or `{"ok": false, "error": "..."}`.
"""

from __future__ import annotations

import json
import sys

# run as a file: its folder is on sys.path, and rego_worker imports nothing native
from rego_worker import first_value, protocol_out  # type: ignore[import-not-found]  # run as a script beside rego_worker.py, not as a package module


def main() -> None:
    out = protocol_out()
    from regopy import Interpreter, RegoError

    interpreter = Interpreter()  # type: ignore[no-untyped-call]  # the library has no type hints
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
                {"ok": True, "value": first_value(output)}
                if output.ok()
                else {"ok": False, "error": str(output)}
            )
        except Exception as exc:  # one bad test costs its answer, never the run
            reply = {"ok": False, "error": str(exc)}
        out.write(json.dumps(reply) + "\n")
        out.flush()


if __name__ == "__main__":
    main()
