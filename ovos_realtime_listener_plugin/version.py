"""Version of the ovos-realtime listener plugin (read by setup.py)."""

__version__ = "0.1.0"
