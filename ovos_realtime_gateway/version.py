"""Version of the ovos-realtime gateway (read by setup.py)."""

__version__ = "0.1.0"
