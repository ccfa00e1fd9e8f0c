"""GatewaySettings: every knob of the gateway, its default and what it does.

Precedence, lowest first: these defaults < the `PHAL.ovos-realtime-gateway` section of
mycroft.conf (when run as a PHAL plugin) < a `--config` file (JSON or YAML) < command-line flags.
Unknown keys are an error at start, never silently ignored.
"""

from __future__ import annotations

from .calls import IceServer, SipSettings
from .cluster import ClusterSettings
from .gateway import DEFAULT_MODELS, DEFAULT_TRANSCRIPTION_MODELS, GatewaySettings
from .layers import load_config_file
from .limits import RateLimits, SharedLimitsSettings
from .retention import RetentionSettings
from .secrets import KeyRotationPolicy, KeyRotationSettings, VaultSettings
from .section import Section
from .telemetry import EventBridgeSettings, TracingSettings, check_redis_url

__all__ = [
    "DEFAULT_MODELS",
    "ClusterSettings",
    "DEFAULT_TRANSCRIPTION_MODELS",
    "EventBridgeSettings",
    "GatewaySettings",
    "IceServer",
    "KeyRotationPolicy",
    "KeyRotationSettings",
    "RateLimits",
    "RetentionSettings",
    "Section",
    "SharedLimitsSettings",
    "SipSettings",
    "TracingSettings",
    "VaultSettings",
    "check_redis_url",
    "load_config_file",
]
