"""ovos-realtime listener plugins: OPM plugins for the input side, usable by any OVOS device.

`whisper.py` (`opm.stt` `ovos-realtime-stt-whisper`, the default), `pocketsphinx_streaming.py`
(`opm.stt` `ovos-realtime-stt-pocketsphinx-streaming`) and `microphone.py` (`opm.microphone`, fed
by a realtime session). The package imports nothing of the gateway: the gateway reaches these
plugins through OPM's entry points (its adapters live in `ovos_realtime_gateway/speech/`).
"""

from .version import __version__

__all__ = ["__version__"]
