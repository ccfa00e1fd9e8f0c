"""`ovos-realtime serve` (the gateway standalone) and `demo` (OVOS's messagebus and skills under
DATA_DIR/ovos, then the gateway on them)."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import time
from collections.abc import Coroutine
from typing import Any, NoReturn

from .cli_common import PROG, CliError, runnable_prog
from .runner import GatewayRunner
from .services import SERVICES, GatewayServices
from .settings import GatewaySettings
from .tasks import TaskSupervisor
from .tls import self_signed_paths
from .version import __version__


async def serve(settings: GatewaySettings) -> None:
    # Ctrl-C and SIGTERM stop it from the first moment: while the speech models load too. SIGTERM
    # drains first (up to drain_seconds: no new sessions, the live ones finish); a second SIGTERM,
    # or SIGINT, stops at once.
    stop, at_once = asyncio.Event(), asyncio.Event()

    def terminate() -> None:
        if stop.is_set():
            at_once.set()
        stop.set()

    def interrupt() -> None:
        stop.set()
        at_once.set()

    loop = asyncio.get_running_loop()
    for sig, handler in ((signal.SIGINT, interrupt), (signal.SIGTERM, terminate)):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, handler)
    runner = GatewayRunner(settings)
    await runner.start()
    try:
        print(
            f"{PROG} {__version__} listening on {runner.base_url} (data dir {settings.resolved_data_dir})",
            flush=True,
        )
        if settings.tls_self_signed:
            cert, _ = self_signed_paths(settings.resolved_data_dir)
            print(f"self-signed certificate: {cert} (Node: NODE_EXTRA_CA_CERTS={cert})", flush=True)
        vad = runner.app[SERVICES].vad
        if vad is not None and vad.unavailable is not None:
            name = settings.vad_plugin
            print(f"error: vad_plugin {name!r} could not be loaded: {vad.unavailable}", flush=True)
        if await _first_done(_speech_loaded(runner.app[SERVICES]), stop.wait()):
            if settings.talk_page:
                print(f"talk to it in a browser: {runner.base_url}/talk", flush=True)
            keys = f"{runnable_prog()} keys create --project NAME --data-dir {settings.resolved_data_dir}"
            print(f"create a key: {keys}", flush=True)
            await stop.wait()
        if not at_once.is_set():
            await _drain(runner, at_once)
    finally:
        await runner.stop()
        print(f"{PROG} stopped", flush=True)


async def _drain(runner: GatewayRunner, at_once: asyncio.Event) -> None:
    """SIGTERM: no new sessions or calls while the live ones go on, for up to drain_seconds."""
    drain = runner.app[SERVICES].drain
    if runner.settings.drain_seconds > 0 and drain.live > 0:
        print(
            f"draining: {drain.live} session(s) and call(s) live, new ones refused; stopping when "
            f"they end or in {runner.settings.drain_seconds:g} s (SIGTERM again: at once)",
            flush=True,
        )
    left = await runner.drain(at_once)
    if drain.draining:
        print("drained" if left == 0 else f"drain over: ending {left} session(s) and call(s)", flush=True)


async def _first_done(work: Coroutine[Any, Any, None], stopped: Coroutine[Any, Any, bool]) -> bool:
    """Run `work` until it finishes (True; its error raised) or `stopped` does first (False)."""
    tasks = TaskSupervisor("serve")
    working, stopping = tasks.spawn("work", work), tasks.spawn("stopped", stopped)
    try:
        await asyncio.wait({working, stopping}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        await tasks.close()  # the one still running is cancelled
    if not working.done() or working.cancelled():
        return False
    working.result()
    return True


async def _speech_loaded(services: GatewayServices) -> None:
    """Wait for the speech plugins and their models, saying what loads; one that cannot load is
    named with the setting to change (the gateway still serves text, and /readyz reports it)."""
    if services.warming is None:
        return
    print(f"loading speech: {', '.join(services.speech_status)} …", flush=True)
    await asyncio.shield(services.warming)
    failed = {name: state for name, state in services.speech_status.items() if state != "ready"}
    for name, state in failed.items():
        setting = "stt_plugin" if name == services.settings.stt_plugin else "tts_plugin"
        print(f"error: {setting} {name!r} could not be loaded: {state.removeprefix('failed: ')}", flush=True)
    print("speech is ready" if not failed else "speech is NOT ready: text answers only", flush=True)


class _Stopped(Exception):
    """SIGTERM while OVOS was starting (before the gateway's own handler is there)."""


def _stopped(signum: int, frame: object) -> NoReturn:
    raise _Stopped


def demo(settings: GatewaySettings) -> None:
    """OVOS (messagebus + ovos-core with its skills) under DATA_DIR/ovos, then the gateway on it.
    SIGTERM at any point stops all of it and exits 0 (`docker stop` of the assistant image)."""
    from .ovos.location import machine_timezone, with_timezone
    from .ovos.stack import CONVERSATIONAL_SKILLS, OvosStack

    timezone = settings.timezone or machine_timezone()
    place = {"location": with_timezone(None, timezone, settings.city)}
    stack = OvosStack(settings.resolved_data_dir / "ovos", lang=settings.lang, extra_config=place)
    print(f"starting OVOS (messagebus on {stack.bus_url}, skills; logs in {stack.root / 'logs'})", flush=True)
    print(f"answers are for time zone {timezone} (--timezone to change)", flush=True)
    signal.signal(signal.SIGTERM, _stopped)
    try:
        started = time.monotonic()
        stack.start()
        print(
            "waiting for ovos-core to load its skills (a first start sets them up: 1-2 minutes; "
            "a restart: about 30 s)",
            flush=True,
        )
        stack.wait_ready(300, progress=lambda line: print(line, flush=True))
        print(f"OVOS skills are ready ({time.monotonic() - started:.0f} s)", flush=True)
        demo: dict[str, Any] = {"messagebus_url": stack.bus_url, "timezone": timezone}
        if "converse_skills" not in settings.model_fields_set:
            demo["converse_skills"] = CONVERSATIONAL_SKILLS  # its skills: only parrot converses
        if "talk_page" not in settings.model_fields_set:
            demo["talk_page"] = True  # the demo is for talking to
        if "drain_seconds" not in settings.model_fields_set:
            demo["drain_seconds"] = 0  # one household's assistant: no other replica to drain to
        asyncio.run(serve(settings.model_copy(update=demo)))
    except _Stopped:
        print("stopped while OVOS was starting", flush=True)
    except (TimeoutError, RuntimeError, FileNotFoundError) as exc:
        raise CliError(f"OVOS did not start: {str(exc).splitlines()[0]}", 1) from None
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)  # the OVOS processes get their own SIGINT
        stack.stop()
