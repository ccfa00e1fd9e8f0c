"""ovos-realtime listener plugin: the input side of realtime sessions inside OVOS.

Per-session VAD and STT through ovos-plugin-manager, and an OPM microphone fed by a realtime
session, arrive with the OVOS integration work; this release ships only the package.
"""

from .version import __version__

__all__ = ["__version__"]
