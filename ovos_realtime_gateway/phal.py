"""The gateway as an OVOS PHAL plugin (`opm.phal` entry point `ovos-realtime-gateway`).

ovos-PHAL builds it as `RealtimeGatewayPlugin(bus=bus, config=PHAL["ovos-realtime-gateway"])`
after `validator.validate(config)` agreed. It runs the same application as `ovos-realtime serve`
on its own event-loop thread and stops it when OVOS shuts the plugin down.
"""

from __future__ import annotations

import logging
from typing import Any

from ovos_plugin_manager.templates.phal import PHALPlugin, PHALValidator
from pydantic import ValidationError

from .runner import ThreadedGateway
from .settings import GatewaySettings

PLUGIN_NAME = "ovos-realtime-gateway"
log = logging.getLogger("ovos_realtime.phal")
_NOT_SETTINGS = {"enabled", "module"}


def settings_from_plugin_config(config: dict[str, Any] | None) -> GatewaySettings:
    """GatewaySettings from the plugin's mycroft.conf section (PHAL's own keys removed)."""
    section = {k: v for k, v in (config or {}).items() if k not in _NOT_SETTINGS}
    return GatewaySettings.layered(section)


class RealtimeGatewayValidator(PHALValidator):  # type: ignore[misc]
    @staticmethod
    def validate(config: dict[str, Any] | None = None) -> bool:
        """Load only when enabled and the section is valid settings (errors are logged)."""
        config = config or {}
        if config.get("enabled", True) is not True:
            return False
        try:
            settings_from_plugin_config(config)
        except ValidationError as exc:
            log.error("PHAL.%s is not valid: %s", PLUGIN_NAME, exc)
            return False
        return True


class RealtimeGatewayPlugin(PHALPlugin):  # type: ignore[misc]
    """Serves the OpenAI Realtime API from inside the OVOS PHAL service."""

    validator = RealtimeGatewayValidator

    def __init__(self, bus: Any = None, config: dict[str, Any] | None = None) -> None:
        super().__init__(bus=bus, name=PLUGIN_NAME, config=config)
        self.gateway = ThreadedGateway(settings_from_plugin_config(self.config))
        self.gateway.start()

    def shutdown(self) -> None:
        self.gateway.stop()
        super().shutdown()
