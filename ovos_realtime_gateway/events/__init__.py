"""The event bridge: what happens in the gateway (sessions, responses, calls, policy decisions),
published to an external stream (Redis) without ever holding up a session."""

from .bridge import EventBridge
from .event import EventKind, GatewayEvent
from .exporter import EventExporter, Sink

__all__ = ["EventBridge", "EventExporter", "EventKind", "GatewayEvent", "Sink"]
