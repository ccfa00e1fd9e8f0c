"""The gateway is found by the installed ovos-plugin-manager as the PHAL plugin OVOS loads."""

from __future__ import annotations

import logging

import pytest
from ovos_plugin_manager.phal import find_phal_plugins

from ovos_realtime_gateway.phal import (
    RealtimeGatewayPlugin,
    RealtimeGatewayValidator,
    settings_from_plugin_config,
)


def test_discovered_under_its_entry_point_name() -> None:
    plugins = find_phal_plugins()
    assert plugins.get("ovos-realtime-gateway") is RealtimeGatewayPlugin


def test_validator_honours_enabled_and_rejects_bad_sections() -> None:
    assert RealtimeGatewayValidator.validate({"port": 8080}) is True
    assert RealtimeGatewayValidator.validate({}) is True
    assert RealtimeGatewayValidator.validate({"enabled": False, "port": 8080}) is False
    assert RealtimeGatewayValidator.validate({"port": "not a port"}) is False
    assert RealtimeGatewayValidator.validate({"no_such_setting": 1}) is False


def test_an_invalid_section_is_logged_without_the_values_given(caplog: pytest.LogCaptureFixture) -> None:
    """OVOS's log names the setting and why, never what was given: it may be a secret."""
    section = {
        "port": "sk-ovos-not-a-port",
        "event_bridge": {"redis_url": "redis://user:hunter2-password@127.0.0.1:notaport/0"},
    }
    with caplog.at_level(logging.ERROR):
        assert RealtimeGatewayValidator.validate(section) is False
    logged = caplog.text
    assert "port:" in logged and "event_bridge.redis_url:" in logged, logged
    assert "sk-ovos-not-a-port" not in logged and "hunter2-password" not in logged, logged


def test_section_becomes_gateway_settings() -> None:
    settings = settings_from_plugin_config(
        {
            "enabled": True,
            "module": "x",
            "host": "0.0.0.0",
            "port": 9000,
            "rate_limits": {"requests_per_minute": 7},
        }
    )
    assert (settings.host, settings.port, settings.rate_limits.requests_per_minute) == ("0.0.0.0", 9000, 7)


def test_the_device_config_gives_bus_language_speech_and_transformers() -> None:
    device = {
        "websocket": {"host": "0.0.0.0", "port": 8181, "route": "/core"},
        "lang": "en-GB",
        "tts": {"module": "ovos-realtime-tts-espeak-ng", "ovos-realtime-tts-espeak-ng": {"speed": 150}},
        "tts_transformers": {"ovos-tts-transformer-sox-plugin": {"default_effects": {}}},
    }
    settings = settings_from_plugin_config({"port": 9000, "lang": "en-US"}, device)
    assert settings.messagebus_url == "ws://127.0.0.1:8181/core"
    assert settings.lang == "en-US", "the plugin's own section wins"
    assert (settings.tts_plugin, settings.tts_config) == ("ovos-realtime-tts-espeak-ng", {"speed": 150})
    assert settings.tts_transformers == {"ovos-tts-transformer-sox-plugin": {"default_effects": {}}}
