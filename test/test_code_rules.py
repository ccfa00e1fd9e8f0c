"""Rules of the code base that review alone would let slip (issue 14): every `type: ignore` names
its error code and says why; a module over 400 lines says why it is long at its top; tasks are
started only through `tasks.py`'s supervisor."""

from __future__ import annotations

import ast
import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("ovos_realtime_gateway", "ovos_realtime_listener_plugin", "ovos_realtime_tts_plugin")
SOURCES = sorted(p for top in (*PACKAGES, "test", "bench") for p in (ROOT / top).rglob("*.py"))
IGNORE = re.compile(r"#\s*type: ignore(?P<code>\[[^\]]+\])?(?P<rest>.*)$")
MAX_LINES = 400


def test_every_type_ignore_names_its_code_and_says_why() -> None:
    bare = []
    for path in SOURCES:
        for number, line in enumerate(path.read_text().splitlines(), 1):
            found = IGNORE.search(line)
            if found and (not found["code"] or not found["rest"].strip().startswith("#")):
                bare.append(f"{path.relative_to(ROOT)}:{number}: {line.strip()}")
    assert not bare, "a type: ignore without [code]  # reason:\n" + "\n".join(bare)


def test_a_module_over_400_lines_says_why_at_its_top() -> None:
    unexplained = []
    for path in SOURCES:
        text = path.read_text()
        if text.count("\n") <= MAX_LINES:
            continue
        docstring = ast.get_docstring(ast.parse(text)) or ""
        if not re.search(r"\blong\b|\blength\b", docstring, re.IGNORECASE):
            unexplained.append(f"{path.relative_to(ROOT)} ({text.count(chr(10))} lines)")
    assert not unexplained, "say at the top why these are long, or split them: " + ", ".join(unexplained)


def test_tasks_are_started_only_through_the_supervisor() -> None:
    starts = re.compile(r"\b(create_task|ensure_future)\(")
    elsewhere = [
        f"{path.relative_to(ROOT)}:{number}"
        for top in PACKAGES
        for path in sorted((ROOT / top).rglob("*.py"))
        if path.name != "tasks.py"
        for number, line in enumerate(path.read_text().splitlines(), 1)
        if starts.search(line)
    ]
    assert not elsewhere, "start tasks with TaskSupervisor.spawn (tasks.py): " + ", ".join(elsewhere)


def test_a_coroutine_test_awaits_something() -> None:
    """An `async def` test that awaits nothing runs its blocking calls on the event loop, which the
    loop guard catches only when a call happens to block (a slow subprocess): make it `def`."""
    idle = []
    for path in sorted((ROOT / "test").glob("test_*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.AsyncFunctionDef) and node.name.startswith("test_"):
                waits = (ast.Await, ast.AsyncWith, ast.AsyncFor)
                if not any(isinstance(inner, waits) for inner in ast.walk(node)):
                    idle.append(f"{path.name}:{node.lineno} {node.name}")
    assert not idle, f"coroutine tests that await nothing: {idle}"
