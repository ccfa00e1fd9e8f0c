"""The gateway as an OVOS PHAL plugin (`opm.phal` entry point `ovos-realtime-gateway`).

ovos-PHAL builds it as `RealtimeGatewayPlugin(bus=bus, config=PHAL["ovos-realtime-gateway"])`
after `validator.validate(config)` agreed. It runs the same application as `ovos-realtime serve`
on its own event-loop thread and stops it when OVOS shuts the plugin down.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from ovos_plugin_manager.templates.phal import PHALPlugin, PHALValidator
from pydantic import ValidationError

from .runner import ThreadedGateway
from .settings import GatewaySettings

PLUGIN_NAME = "ovos-realtime-gateway"
log = logging.getLogger("ovos_realtime.phal")
_NOT_SETTINGS = {"enabled", "module"}


def device_defaults(device: Mapping[str, Any]) -> dict[str, Any]:
    """What a gateway inside OVOS takes from the device's mycroft.conf: its messagebus, its
    language, its `stt` / `tts` modules with their config and its `tts_transformers` — so the
    realtime endpoint hears and speaks like the device does. The plugin's own section overrides
    any of it."""
    socket = device.get("websocket") or {}
    host = socket.get("host") or "127.0.0.1"
    host = "127.0.0.1" if host in ("0.0.0.0", "::") else host
    scheme = "wss" if socket.get("ssl") else "ws"
    defaults: dict[str, Any] = {
        "messagebus_url": f"{scheme}://{host}:{socket.get('port') or 8181}{socket.get('route') or '/core'}"
    }
    if device.get("lang"):
        defaults["lang"] = device["lang"]
    for kind in ("stt", "tts"):
        section = device.get(kind) or {}
        module = section.get("module")
        if module:
            defaults[f"{kind}_plugin"] = module
            defaults[f"{kind}_config"] = dict(section.get(module) or {})
    if device.get("tts_transformers"):
        defaults["tts_transformers"] = dict(device["tts_transformers"])
    return defaults


def settings_from_plugin_config(
    config: Mapping[str, Any] | None, device: Mapping[str, Any] | None = None
) -> GatewaySettings:
    """GatewaySettings from the plugin's mycroft.conf section (PHAL's own keys removed), over the
    device's defaults (`device`: the whole mycroft.conf; none given: the device's own)."""
    if device is None:
        from ovos_config import Configuration

        device = Configuration()
    section = {k: v for k, v in (config or {}).items() if k not in _NOT_SETTINGS}
    return GatewaySettings.layered(device_defaults(device), section)


class RealtimeGatewayValidator(PHALValidator):  # type: ignore[misc]  # OVOS's base class is untyped
    @staticmethod
    def validate(config: dict[str, Any] | None = None) -> bool:
        """Load only when enabled and the section is valid settings (errors are logged)."""
        config = config or {}
        if config.get("enabled", True) is not True:
            return False
        try:
            settings_from_plugin_config(config)
        except ValidationError as exc:
            # each problem by setting and reason, never the value given (a password in a URL, a secret)
            problems = "; ".join(
                f"{'.'.join(str(part) for part in error['loc']) or 'settings'}: {error['msg']}"
                for error in exc.errors(include_url=False, include_input=False)
            )
            log.error("PHAL.%s is not valid: %s", PLUGIN_NAME, problems)
            return False
        return True


class RealtimeGatewayPlugin(PHALPlugin):  # type: ignore[misc]  # OVOS's base class is untyped
    """Serves the OpenAI Realtime API from inside the OVOS PHAL service."""

    validator = RealtimeGatewayValidator

    def __init__(self, bus: Any = None, config: dict[str, Any] | None = None) -> None:
        super().__init__(bus=bus, name=PLUGIN_NAME, config=config)
        self.gateway = ThreadedGateway(settings_from_plugin_config(self.config))
        self.gateway.start()

    def shutdown(self) -> None:
        self.gateway.stop()
        super().shutdown()
