"""Packaging of ovos-realtime: the gateway and the OVOS listener and TTS plugin packages."""

from __future__ import annotations

import ast
from pathlib import Path

from setuptools import find_packages, setup

HERE = Path(__file__).parent


def required(name: str) -> list[str]:
    """Requirement lines of requirements/<name>.txt (comments and blanks skipped)."""
    lines = (HERE / "requirements" / f"{name}.txt").read_text().splitlines()
    return [line.split("#")[0].strip() for line in lines if line.split("#")[0].strip()]


def version(package: str) -> str:
    """`__version__` of a package, read without importing it."""
    tree = ast.parse((HERE / package / "version.py").read_text())
    for node in tree.body:
        if isinstance(node, ast.Assign) and getattr(node.targets[0], "id", "") == "__version__":
            return str(ast.literal_eval(node.value))
    raise RuntimeError(f"{package}/version.py has no __version__")


setup(
    name="ovos-realtime",
    version=version("ovos_realtime_gateway"),
    description="OpenAI-Realtime-compatible voice endpoint for OpenVoiceOS",
    long_description=(HERE / "README.md").read_text(),
    long_description_content_type="text/markdown",
    license="Apache-2.0",
    python_requires=">=3.10",
    packages=find_packages(
        include=["ovos_realtime_gateway*", "ovos_realtime_listener_plugin*", "ovos_realtime_tts_plugin*"]
    ),
    package_data={
        "ovos_realtime_gateway": ["py.typed"],
        "ovos_realtime_gateway.security": ["*.rego"],
        "ovos_realtime_gateway.rest": ["openapi.yaml"],
        "ovos_realtime_gateway.talk_page": ["*.html"],
        "ovos_realtime_listener_plugin": ["py.typed"],
        "ovos_realtime_tts_plugin": ["py.typed"],
    },
    install_requires=required("gateway"),
    extras_require={
        "ovos": required("ovos"),
        "clients": required("clients"),
        "test": required("test") + required("ovos"),
        "lint": required("lint"),
    },
    entry_points={
        "console_scripts": ["ovos-realtime=ovos_realtime_gateway.cli:main"],
        "opm.phal": ["ovos-realtime-gateway=ovos_realtime_gateway.phal:RealtimeGatewayPlugin"],
        "opm.tts": [
            "ovos-realtime-tts-espeak-ng=ovos_realtime_tts_plugin.espeak:EspeakNgTTS",
            "ovos-realtime-tts-piper=ovos_realtime_tts_plugin.piper:PiperTTS",
        ],
        "opm.stt": [
            "ovos-realtime-stt-pocketsphinx-streaming="
            "ovos_realtime_listener_plugin.pocketsphinx_streaming:PocketsphinxStreamingSTT",
            "ovos-realtime-stt-whisper=ovos_realtime_listener_plugin.whisper:WhisperSTT",
        ],
        "opm.microphone": [
            "ovos-microphone-plugin-realtime=ovos_realtime_listener_plugin.microphone:RealtimeMicrophone"
        ],
    },
    classifiers=[
        "Programming Language :: Python :: 3",
        "Programming Language :: Python :: 3.10",
        "Programming Language :: Python :: 3.11",
        "Programming Language :: Python :: 3.12",
        "Topic :: Multimedia :: Sound/Audio :: Speech",
    ],
)
