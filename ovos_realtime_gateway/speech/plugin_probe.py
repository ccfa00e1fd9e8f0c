"""Load a speech plugin in a throwaway child process first, so one that crashes natively cannot
take the gateway down with it.

A plugin with native code — onnxruntime, CTranslate2, a wheel built for another CPU, a model that
trips a C++ assertion — can kill its process with a signal while it loads (seen: onnxruntime under
QEMU). `check_plugin(kind, name)` loads the plugin the way the gateway will (ovos-plugin-manager's
loader, which imports every plugin of that kind) in `python -m ovos_realtime_gateway.speech.plugin_probe`;
if that process dies, the gateway does not load the plugin and says which setting names it.

A success is remembered in `~/.cache/ovos-realtime/plugin-probes.json`, keyed by the interpreter,
the machine and the versions of every installed distribution, so only the first start after an
install pays the probe (about a second).
"""

from __future__ import annotations

import functools
import hashlib
import json
import os
import platform
import signal
import subprocess
import sys
from importlib import metadata
from pathlib import Path

LOADERS = {
    "stt": ("ovos_plugin_manager.stt", "load_stt_plugin", "stt_plugin"),
    "tts": ("ovos_plugin_manager.tts", "load_tts_plugin", "tts_plugin"),
    "vad": ("ovos_plugin_manager.vad", "load_vad_plugin", "vad_plugin"),
}
PROBE_TIMEOUT_S = 180.0


class PluginCrashed(RuntimeError):
    """Loading the plugin killed (or hung) the process that tried it."""


def check_plugin(kind: str, name: str, timeout_s: float = PROBE_TIMEOUT_S) -> None:
    """Raise PluginCrashed if loading `name` (an `opm.<kind>` plugin) kills a child process."""
    setting = LOADERS[kind][2]
    key = f"{kind}:{name}:{sys.executable}"  # several environments may share a home
    fingerprint = _fingerprint()
    cache = _cache_path()
    remembered = _read(cache)
    if remembered.get(key) == fingerprint:
        return
    try:
        done = subprocess.run(
            [sys.executable, "-m", "ovos_realtime_gateway.speech.plugin_probe", kind, name],
            capture_output=True,
            text=True,
            timeout=timeout_s,
        )
    except subprocess.TimeoutExpired:
        raise PluginCrashed(
            f"loading it did not finish within {timeout_s:.0f} s in a probe process; "
            f"the gateway did not load it (change `{setting}`)"
        ) from None
    if done.returncode < 0:
        died = signal.Signals(-done.returncode).name
        tail = " | ".join(done.stderr.strip().splitlines()[-3:])
        raise PluginCrashed(
            f"loading it crashed a probe process ({died}); the gateway did not load it "
            f"(change `{setting}`){': ' + tail if tail else ''}"
        )
    if done.returncode == 0:
        remembered[key] = fingerprint
        _write(cache, remembered)
    # any other outcome (not installed, an exception) the gateway's own loader reports, as before


@functools.cache  # what is installed does not change under a running gateway; ~60 ms to read
def _fingerprint() -> str:
    installed = sorted(f"{d.metadata['Name']}=={d.version}" for d in metadata.distributions())
    text = "\n".join([sys.executable, sys.version, platform.machine(), *installed])
    return hashlib.sha256(text.encode()).hexdigest()


def _cache_path() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "ovos-realtime" / "plugin-probes.json"


def _read(path: Path) -> dict[str, str]:
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return {str(k): str(v) for k, v in data.items()} if isinstance(data, dict) else {}


def _write(path: Path, data: dict[str, str]) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        temporary = path.with_suffix(f".{os.getpid()}.tmp")
        temporary.write_text(json.dumps(data, indent=1))
        temporary.replace(path)
    except OSError:  # a read-only home: probe again next time
        pass


def main() -> int:
    """The probe process: load the plugin; exit 0 if it loaded, 2 if not (a signal if it crashed)."""
    kind, name = sys.argv[1], sys.argv[2]
    module, loader, _ = LOADERS[kind]
    import importlib

    plugin = getattr(importlib.import_module(module), loader)(name)
    if plugin is None:
        sys.stderr.write(f"{kind} plugin {name!r} is not installed\n")
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
