"""The dependency rule of docs/architecture.md, read off the imports: nothing below the REST layer
imports it (the gate lives in security/), and the services do not import calls/."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "ovos_realtime_gateway"


def _imports(path: Path) -> set[str]:
    """The modules of ours `path` imports (as dotted names under the package), lazy imports too."""
    module = path.relative_to(PACKAGE.parent).with_suffix("").parts
    package = module[:-1]  # (for __init__.py, the package itself)
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.ImportFrom):
            base = list(package[: len(package) - node.level + 1]) if node.level else []
            name = ".".join([*base, node.module] if node.module else base)
            found.add(name)
            found.update(f"{name}.{alias.name}" for alias in node.names)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
    return {name for name in found if name.startswith("ovos_realtime_gateway")}


def _importers_of(target: str, *packages: str) -> list[str]:
    offenders = []
    for package in packages:
        root = PACKAGE / package
        paths = sorted(root.rglob("*.py")) if root.is_dir() else [root.with_suffix(".py")]
        for path in paths:
            if any(name == target or name.startswith(f"{target}.") for name in _imports(path)):
                offenders.append(str(path.relative_to(PACKAGE.parent)))
    return offenders


def test_nothing_below_rest_imports_it() -> None:
    offenders = _importers_of("ovos_realtime_gateway.rest", "transports", "calls", "ovos", "security")
    assert offenders == [], f"import the REST layer from below it: {offenders}"


def test_the_services_do_not_import_calls() -> None:
    assert _importers_of("ovos_realtime_gateway.calls", "services") == []


def test_the_check_sees_imports() -> None:
    """The rule above would pass on a reader that finds nothing: it finds what rest/ imports."""
    assert _importers_of("ovos_realtime_gateway.transports", "rest") != []
    assert _importers_of("ovos_realtime_gateway.security", "transports") != []
