"""The gateway is found by the installed ovos-plugin-manager as the PHAL plugin OVOS loads."""

from __future__ import annotations

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
