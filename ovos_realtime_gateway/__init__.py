"""ovos-realtime gateway: an OpenAI-Realtime-compatible endpoint served by OpenVoiceOS."""

from .app import create_app
from .runner import GatewayRunner
from .settings import GatewaySettings
from .version import __version__

__all__ = ["GatewayRunner", "GatewaySettings", "__version__", "create_app"]
