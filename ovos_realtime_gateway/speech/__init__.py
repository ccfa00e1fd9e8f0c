"""The gateway's speech adapters over ovos-plugin-manager: VAD plugins → the engine's
`SpeechDetector` (`vad.py`), STT plugins → its `Transcriber` (`stt.py`), TTS plugins → PCM
(`tts.py`, with `wav_stream.py` and `tts_transformers.py`), their timing (`timing.py`), the
speech profiles (`profiles.py`) and the crash probe every plugin passes first (`plugin_probe.py`).

Plugins are reached only through OPM's entry points, never imported from the plugin packages
(`ovos_realtime_listener_plugin`, `ovos_realtime_tts_plugin`), which import nothing of the gateway.
"""
