"""Version of the ovos-realtime TTS plugin (read by setup.py)."""

__version__ = "0.1.0"
