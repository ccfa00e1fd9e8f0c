"""A Rego evaluator in a process of its own: run as a file (`python rego_worker.py`), never imported
by the gateway, so regopy is the first native library this process loads.

Why a process: regopy's `librego_shared.so` brings its own `operator new` / `delete` (snmalloc,
from rego-cpp) and also links the shared `libstdc++.so.6`. Where libstdc++ was loaded first by
another C++ extension (in the gateway: aiohttp's `frozenlist`, or sqlite-utils' imports),
libstdc++'s own allocations go to glibc's malloc while rego-cpp frees them with snmalloc's
`delete`, and the memory is never returned: ~24 KB per evaluation (docs/architecture.md). Here
nothing loads libstdc++ before regopy, so both sides use one allocator.

Protocol, one JSON document per line: the first line in is the policy text; the first line out is
`{"ready": true}` or `{"error": "..."}`; then each line in is a policy input and each line out is
`{"ok": true, "value": <the query's first expression, or null when undefined>}` or
`{"ok": false, "error": "..."}`. `{"libstdcxx_first": true}` in the ready line says libstdc++ was
loaded before regopy after all (a test checks it never is).
"""

from __future__ import annotations

import json
import os
import sys
from typing import IO, Any

QUERY = "data.ovos_realtime.decision"


def _libstdcxx_loaded() -> bool:
    with open("/proc/self/maps") as maps:
        return "libstdc++" in maps.read()


def first_value(output: Any) -> Any:
    """The query's first expression from the JSON regopy already parsed: never its native
    `expressions()`, which aborts the process when the result is undefined."""
    results = getattr(output, "results", None) or []
    expressions = results[0].expressions if results else []
    return expressions[0] if expressions else None


def protocol_out() -> IO[str]:
    """The protocol's own stdout; what else writes to stdout (rego-cpp's messages) goes to stderr."""
    out = os.fdopen(os.dup(1), "w", encoding="utf-8", errors="surrogatepass")
    os.dup2(2, 1)
    return out


def main() -> None:
    loaded_before = _libstdcxx_loaded()
    out = protocol_out()
    from regopy import Interpreter, RegoError

    policy_text = json.loads(sys.stdin.readline())
    interpreter = Interpreter()  # type: ignore[no-untyped-call]  # the library has no type hints
    try:
        interpreter.add_module("policy.rego", policy_text)
        bundle = interpreter.build(QUERY)
    except RegoError as exc:
        out.write(json.dumps({"error": str(exc)}) + "\n")
        out.flush()
        return
    out.write(json.dumps({"ready": True, "libstdcxx_first": loaded_before}) + "\n")
    out.flush()
    for line in sys.stdin:
        try:
            interpreter.set_input(json.loads(line))
            output = interpreter.query_bundle(bundle)
            if output.ok():
                reply = {"ok": True, "value": first_value(output)}
            else:
                reply = {"ok": False, "error": str(output)}
        except Exception as exc:  # one bad input costs its answer, never the worker
            reply = {"ok": False, "error": str(exc)}
        out.write(json.dumps(reply) + "\n")
        out.flush()


if __name__ == "__main__":
    main()
