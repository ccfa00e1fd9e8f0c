"""The docs a newcomer reads stay in step with the code."""

from __future__ import annotations

import re
from pathlib import Path

from ovos_realtime_gateway.settings import (
    ClusterSettings,
    EventBridgeSettings,
    GatewaySettings,
    KeyRotationSettings,
    RateLimits,
    RetentionSettings,
    SharedLimitsSettings,
    SipSettings,
    TracingSettings,
    VaultSettings,
)

ROOT = Path(__file__).resolve().parent.parent


def test_every_setting_is_documented() -> None:
    text = (ROOT / "docs" / "configuration.md").read_text().split("\n## Speech")[0]
    documented = set(re.findall(r"^\| `([a-z_.]+)` \|", text, re.MULTILINE))
    sections = (
        GatewaySettings,
        RateLimits,
        SharedLimitsSettings,
        ClusterSettings,
        RetentionSettings,
        SipSettings,
        EventBridgeSettings,
        VaultSettings,
        KeyRotationSettings,
        TracingSettings,
    )
    expected = {name for section in sections for name in section.model_fields}
    assert expected <= documented, f"undocumented settings: {sorted(expected - documented)}"
    assert documented <= expected, f"documented settings that do not exist: {sorted(documented - expected)}"


def _table_keys(section: str) -> set[str]:
    text = (ROOT / "docs" / "configuration.md").read_text()
    part = text.split(f"\n### {section}")[1].split("\n### ")[0]
    rows = re.findall(r"^\| `([a-z_]+)`(?:, `([a-z_]+)`)? \|", part, re.MULTILINE)
    return {key for pair in rows for key in pair if key}


def _config_keys(module: str) -> set[str]:
    return set(re.findall(r'config\.get\("([a-z_]+)"', (ROOT / module).read_text())) - {"enable_streaming"}


def test_every_speech_plugin_setting_is_documented() -> None:
    assert _table_keys("Whisper") == _config_keys("ovos_realtime_listener_plugin/whisper.py")
    assert _table_keys("Piper") == _config_keys("ovos_realtime_tts_plugin/piper.py")


def test_readme_starts_with_the_two_commands() -> None:
    lines = (ROOT / "README.md").read_text().splitlines()
    block = lines[lines.index("```bash") + 1 : lines.index("```bash") + 3]
    assert block[0].startswith("scripts/demo") and block[1].startswith("scripts/test")
    for command in ("scripts/demo", "scripts/serve", "scripts/test"):
        assert (ROOT / command).stat().st_mode & 0o111


def test_ci_runs_the_readme_test_command() -> None:
    assert "scripts/test" in (ROOT / ".ci" / "run").read_text()


def test_linked_docs_exist() -> None:
    readme = (ROOT / "README.md").read_text()
    for link in re.findall(r"\]\((docs/[^)]+)\)", readme):
        path, _, anchor = link.partition("#")
        assert (ROOT / path).exists(), link
        if anchor:
            headings = re.findall(r"^#+ (.+)$", (ROOT / path).read_text(), re.MULTILINE)
            slugs = {re.sub(r"[^a-z0-9 -]", "", h.lower()).replace(" ", "-") for h in headings}
            assert anchor in slugs, f"{link}: no such heading"


PACKAGES = ("ovos_realtime_gateway", "ovos_realtime_listener_plugin", "ovos_realtime_tts_plugin")


def test_every_module_is_named_in_the_architecture() -> None:
    """docs/architecture.md names every module: its file name in backticks, or its path."""
    named = set(re.findall(r"`([^`\n]+)`", (ROOT / "docs" / "architecture.md").read_text()))
    missing = []
    for package in PACKAGES:
        for path in sorted((ROOT / package).rglob("*.py")):
            if path.name == "__init__.py":
                continue
            inner = path.relative_to(ROOT / package).as_posix()
            by_path = any(name == inner or name.endswith(f"/{inner}") for name in named)
            if path.name not in named and not by_path:
                missing.append(path.relative_to(ROOT).as_posix())
    assert not missing, f"modules docs/architecture.md does not name: {missing}"
