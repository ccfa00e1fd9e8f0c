"""ovos-realtime TTS plugin: the output side of realtime sessions inside OVOS.

Per-session synthesis through the device's OPM TTS arrives with the OVOS integration work;
this release ships only the package.
"""

from .version import __version__

__all__ = ["__version__"]
