"""The dependency rule of docs/architecture.md for speech: the OPM plugin packages and the gateway
import nothing of each other (the gateway reaches the plugins through OPM's entry points), and
the engine imports nothing of `speech/`, which implements the engine's protocols.

Read from the source (every `import`, lazy ones inside functions included), so a cycle hidden
by a lazy import is caught as well as a top-level one."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
GATEWAY = "ovos_realtime_gateway"
PLUGIN_PACKAGES = ("ovos_realtime_listener_plugin", "ovos_realtime_tts_plugin")
DEVICE_DOC = ROOT / "docs" / "ovos-device.md"


def imported_modules(path: Path, package: str) -> set[str]:
    """Every module `path` (a module of `package`) imports, relative imports resolved."""
    parts = [package, *path.relative_to(ROOT / package).with_suffix("").parts]
    if parts[-1] == "__init__":
        parts.pop()
    else:
        parts.pop()  # the module's own package is where `.` points
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = parts[: len(parts) - node.level + 1]
                module = ".".join([*base, node.module] if node.module else base)
            else:
                module = node.module or ""
            found.add(module)
            found.update(f"{module}.{alias.name}" for alias in node.names)
    return found


def offenders(package: str, forbidden: tuple[str, ...], under: str = "") -> list[str]:
    """`file: module` for each import of a `forbidden` package from `package` (or its `under` part)."""
    found = []
    for path in sorted((ROOT / package / under).rglob("*.py")):
        for module in imported_modules(path, package):
            if module.split(".")[0] in forbidden or any(module.startswith(f"{f}.") for f in forbidden):
                found.append(f"{path.relative_to(ROOT)}: {module}")
    return sorted(set(found))


def test_the_resolver_sees_relative_and_lazy_imports() -> None:
    """The check would be empty if it missed the forms the old cycle used."""
    speech = ROOT / GATEWAY / "speech" / "vad.py"
    assert f"{GATEWAY}.engine.voice_input" in imported_modules(speech, GATEWAY)  # `from ..engine…`
    assert f"{GATEWAY}.speech.plugin_probe" in imported_modules(speech, GATEWAY)  # `from .plugin_probe`
    assert "ovos_plugin_manager.vad" in imported_modules(speech, GATEWAY)  # inside a function


@pytest.mark.parametrize("package", PLUGIN_PACKAGES)
def test_the_plugin_packages_import_nothing_of_the_gateway(package: str) -> None:
    assert offenders(package, (GATEWAY,)) == []


def test_the_gateway_imports_no_plugin_package() -> None:
    """It loads them by name through OPM (`load_stt_plugin`, `load_tts_plugin`), like any plugin."""
    assert offenders(GATEWAY, PLUGIN_PACKAGES) == []


def test_the_engine_imports_nothing_of_speech() -> None:
    """`speech/` implements the engine's protocols; the engine knows plugins only through them."""
    found = [
        line
        for line in offenders(GATEWAY, (GATEWAY,), "engine")
        if line.split(": ")[1].startswith(f"{GATEWAY}.speech")
    ]
    assert found == []


def test_the_device_docs_name_every_opm_plugin_and_its_module() -> None:
    """docs/ovos-device.md's table of the OPM plugins the distribution installs matches setup.py."""
    tree = ast.parse((ROOT / "setup.py").read_text())
    groups = next(
        ast.literal_eval(node.value)
        for node in ast.walk(tree)
        if isinstance(node, ast.keyword) and node.arg == "entry_points"
    )
    declared = {
        (name.strip(), target.split(":")[0].strip().replace(".", "/") + ".py")
        for group, entries in groups.items()
        if group.startswith("opm.")
        for name, target in (entry.split("=", 1) for entry in entries)
    }
    documented = set(
        re.findall(r"^\| `opm\.[\w.]+` \| `([\w-]+)`[^|]*\| `([\w/]+\.py)` \|$", DEVICE_DOC.read_text(), re.M)
    )
    assert len(declared) >= 6
    assert documented == declared
