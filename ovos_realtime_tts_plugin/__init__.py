"""ovos-realtime TTS plugins: OPM plugins for the output side, usable by any OVOS device.

`piper.py` (`opm.tts` `ovos-realtime-tts-piper`, the default) and `espeak.py` (`opm.tts`
`ovos-realtime-tts-espeak-ng`, the light profile's). The package imports nothing of the gateway:
the gateway reaches these plugins through OPM's entry points (its adapters live in
`ovos_realtime_gateway/speech/`).
"""

from .version import __version__

__all__ = ["__version__"]
