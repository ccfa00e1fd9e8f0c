"""The `ovos-realtime` command: serve | demo | keys create/list/revoke/rotate/show-pending | calls |
migrate | policy test/eval | data purge | backup | restore | healthcheck.

User mistakes are one line on stderr and exit code 2 (usage) or 1 (operation); never a traceback.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import shutil
import signal
import sys
import time
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from pathlib import Path
from typing import Any, NoReturn, TypeVar

from pydantic import ValidationError

from . import cli_data, cli_store, healthcheck, policy_cli
from .cli_store import connected_store
from .log import configure_logging
from .runner import GatewayRunner
from .security.key_admin import IssuedKey, KeyAdminError, create_key, revoke_key, rotate_key
from .security.key_rotation import pending_dir, rotation_due_at
from .security.policy import PolicyError
from .security.secret_refs import SecretError
from .services import SERVICES, GatewayServices
from .settings import GatewaySettings, load_config_file
from .store import ApiKey, AuditEntry, Store, StoreUnavailable
from .tls import self_signed_paths
from .version import __version__

T = TypeVar("T")
PROG = "ovos-realtime"


def runnable_prog() -> str:
    """This command as the user can type it in their shell: `ovos-realtime` when that name finds
    this installation on PATH, else its script's path (`.venv/bin/ovos-realtime` from a clone)."""
    script = Path(sys.executable).with_name(PROG)
    found = shutil.which(PROG)
    if found is not None and Path(found).resolve() == script.resolve():
        return PROG
    if not script.exists():
        return f"{sys.executable} -m ovos_realtime_gateway"
    relative = os.path.relpath(script)
    return relative if not relative.startswith("..") else str(script)


class CliError(Exception):
    """An error worth one line on stderr; `code` is the exit status."""

    def __init__(self, message: str, code: int = 1) -> None:
        super().__init__(message)
        self.code = code


def _fail(message: str, code: int) -> NoReturn:
    print(f"{PROG}: error: {message}", file=sys.stderr)
    raise SystemExit(code)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog=PROG, description="OpenAI-Realtime-compatible voice gateway for OVOS."
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    data_dir = argparse.ArgumentParser(add_help=False)
    data_dir.add_argument("--data-dir", type=Path, help="directory of the store (default from settings)")
    data_dir.add_argument("--config", type=Path, help="settings file (JSON or YAML)")
    data_dir.add_argument("--store-url", help="postgresql://… : the store is this PostgreSQL database")

    gateway = argparse.ArgumentParser(add_help=False)
    gateway.add_argument("--host", help="address to listen on (default 127.0.0.1)")
    gateway.add_argument("--port", type=int, help="port for HTTP/WebSocket, TLS when enabled (default 8080)")
    gateway.add_argument("--tls-cert", type=Path, help="PEM certificate (with --tls-key)")
    gateway.add_argument("--tls-key", type=Path, help="PEM private key (with --tls-cert)")
    gateway.add_argument(
        "--tls-self-signed", action="store_true", default=None, help="serve TLS with a generated certificate"
    )
    gateway.add_argument(
        "--speech-profile",
        choices=("neural", "light"),
        help="speech plugins: neural (Whisper, Piper; default) or light (pocketsphinx, espeak-ng)",
    )
    gateway.add_argument(
        "--timezone", help="IANA time zone sessions carry to the skills (e.g. Europe/Berlin)"
    )
    gateway.add_argument("--city", help="city name sessions carry to the skills")
    gateway.add_argument("--log-level", help="DEBUG, INFO, WARNING, ERROR")
    gateway.add_argument(
        "--log-format",
        choices=("json", "text", "auto"),
        help="json lines, text for people, or auto: JSON unless stderr is a terminal (default)",
    )
    gateway.add_argument("--log-json", action="store_true", default=None, help="same as --log-format json")

    sub.add_parser("serve", parents=[data_dir, gateway], help="run the gateway standalone")
    sub.add_parser(
        "demo",
        parents=[data_dir, gateway],
        help="run a whole assistant: OVOS messagebus, skills and the gateway (time zone: the machine's)",
    )

    keys = sub.add_parser("keys", help="manage project API keys")
    keys_sub = keys.add_subparsers(dest="keys_command", required=True, metavar="ACTION")
    create = keys_sub.add_parser(
        "create", parents=[data_dir], help="create a key (and the project if needed)"
    )
    create.add_argument("--project", required=True, help="project name")
    listing = keys_sub.add_parser("list", parents=[data_dir], help="list keys")
    listing.add_argument("--project", help="only this project")
    revoke = keys_sub.add_parser("revoke", parents=[data_dir], help="revoke a key at once")
    revoke.add_argument("key_id", metavar="KEY_ID")
    rotate = keys_sub.add_parser(
        "rotate", parents=[data_dir], help="issue a successor; the old key works for a grace period"
    )
    rotate.add_argument("key_id", metavar="KEY_ID")
    rotate.add_argument("--grace-seconds", type=int, help="how long the old key keeps working")
    pending = keys_sub.add_parser(
        "show-pending",
        parents=[data_dir],
        help="print the keys automatic rotation issued (kept in DATA_DIR/pending-keys until deleted)",
    )
    pending.add_argument("--project", help="only this project")
    pending.add_argument(
        "--delete", action="store_true", help="delete the files of the keys printed (they are shown once)"
    )

    calls = sub.add_parser("calls", help="the calls this gateway took (WebRTC and SIP)")
    calls_sub = calls.add_subparsers(dest="calls_command", required=True, metavar="ACTION")
    calls_listing = calls_sub.add_parser("list", parents=[data_dir], help="list calls, oldest first")
    calls_listing.add_argument("--project", help="only this project")

    sub.add_parser("migrate", parents=[data_dir], help="apply store migrations")
    policy_cli.add_parser(sub, data_dir)
    cli_data.add_parsers(sub, data_dir)  # data purge, backup, restore (issue 13: personal data)
    cli_store.add_parsers(sub, data_dir)  # store copy (issue 18: PostgreSQL)
    check = sub.add_parser(
        "healthcheck",
        parents=[data_dir, gateway],
        help="exit 0 when the gateway these settings serve answers /healthz (container HEALTHCHECK)",
    )
    healthcheck.add_arguments(check)
    return parser


def settings_from_args(args: argparse.Namespace) -> GatewaySettings:
    layers: list[dict[str, Any]] = []
    if getattr(args, "config", None):
        try:
            layers.append(load_config_file(args.config))
        except (OSError, ValueError) as exc:
            raise CliError(f"cannot read config file {args.config}: {exc}", 2) from None
    flags = {
        "host": getattr(args, "host", None),
        "port": getattr(args, "port", None),
        "data_dir": getattr(args, "data_dir", None),
        "store_url": getattr(args, "store_url", None),
        "tls_cert": getattr(args, "tls_cert", None),
        "tls_key": getattr(args, "tls_key", None),
        "tls_self_signed": getattr(args, "tls_self_signed", None),
        "log_level": getattr(args, "log_level", None),
        "log_format": getattr(args, "log_format", None),
        "log_json": getattr(args, "log_json", None),
        "speech_profile": getattr(args, "speech_profile", None),
        "timezone": getattr(args, "timezone", None),
        "city": getattr(args, "city", None),
    }
    layers.append(flags)
    try:
        return GatewaySettings.layered(*layers)
    except ValidationError as exc:
        first = exc.errors(include_url=False)[0]
        where = ".".join(str(p) for p in first["loc"]) or "settings"
        raise CliError(f"invalid setting '{where}': {first['msg']}", 2) from None


def _migrate(settings: GatewaySettings) -> None:
    async def run() -> tuple[list[int], int, str]:
        async with connected_store(settings, migrate=False) as store:
            applied = await store.migrate()
            where = store.where if settings.store_url else str(settings.resolved_data_dir)
            return applied, await store.schema_version(), where

    applied, version, where = asyncio.run(run())
    if applied:
        print(f"applied {', '.join(map(str, applied))}: store {where} is at schema version {version}")
    else:
        print(f"store {where} is already at schema version {version}")


async def _with_store(settings: GatewaySettings, action: Callable[[Store], Awaitable[T]]) -> T:
    async with connected_store(settings) as store:
        return await action(store)


async def _serve(settings: GatewaySettings) -> None:
    # Ctrl-C and SIGTERM stop it from the first moment: while the speech models load too
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)
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
    finally:
        await runner.stop()
        print(f"{PROG} stopped", flush=True)


async def _first_done(work: Coroutine[Any, Any, None], stopped: Coroutine[Any, Any, bool]) -> bool:
    """Run `work` until it finishes (True; its error raised) or `stopped` does first (False)."""
    working, stopping = asyncio.ensure_future(work), asyncio.ensure_future(stopped)
    await asyncio.wait({working, stopping}, return_when=asyncio.FIRST_COMPLETED)
    loser = stopping if working.done() else working
    loser.cancel()
    await asyncio.gather(loser, return_exceptions=True)
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


def _demo(settings: GatewaySettings) -> None:
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
        asyncio.run(_serve(settings.model_copy(update=demo)))
    except _Stopped:
        print("stopped while OVOS was starting", flush=True)
    except (TimeoutError, RuntimeError, FileNotFoundError) as exc:
        raise CliError(f"OVOS did not start: {str(exc).splitlines()[0]}", 1) from None
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)  # the OVOS processes get their own SIGINT
        stack.stop()


def _keys(args: argparse.Namespace, settings: GatewaySettings) -> None:
    command = args.keys_command
    if command == "create":
        issued = asyncio.run(_with_store(settings, lambda s: _audited_create(s, args.project)))
        if issued.project_created:
            print(f"created project {issued.project.name} ({issued.project.id})")
        print(f"created key {issued.record.id} for project {issued.project.name}; it is shown only once:")
        print(issued.secret)
    elif command == "list":
        _print_keys(settings, args.project)
    elif command == "show-pending":
        _print_pending(settings, args.project, args.delete)
    elif command == "revoke":
        key = asyncio.run(_with_store(settings, lambda s: _audited_revoke(s, args.key_id)))
        print(f"revoked key {key.id}")
    elif command == "rotate":
        grace = args.grace_seconds if args.grace_seconds is not None else settings.key_rotation_grace_seconds
        if grace < 0:
            raise CliError("--grace-seconds must be >= 0", 2)
        issued = asyncio.run(_with_store(settings, lambda s: _audited_rotate(s, args.key_id, grace)))
        print(
            f"rotated {args.key_id} -> {issued.record.id}; the old key works for {grace} more seconds "
            f"(until {_utc(time.time() + grace)} UTC)"
        )
        print(issued.secret)


# What an operator does to keys from the command line is audited (principal `cli`), by id only.


async def _audit_cli(store: Store, action: str, project_id: str, key_id: str, **detail: Any) -> None:
    entry = AuditEntry(time.time(), None, action, "allow", 200, project_id, "cli", key_id, detail)
    await store.write_audit([entry])


async def _audited_create(store: Store, project: str) -> IssuedKey:
    issued = await create_key(store, project)
    await _audit_cli(store, "key.create", issued.project.id, issued.record.id)
    return issued


async def _audited_revoke(store: Store, key_id: str) -> ApiKey:
    key = await revoke_key(store, key_id)
    await _audit_cli(store, "key.revoke", key.project_id, key.id)
    return key


async def _audited_rotate(store: Store, key_id: str, grace: int) -> IssuedKey:
    issued = await rotate_key(store, key_id, grace)
    successor = issued.record
    await _audit_cli(
        store, "key.rotate", successor.project_id, key_id, successor=successor.id, grace_seconds=grace
    )
    await _audit_cli(store, "key.create", successor.project_id, successor.id, rotated_from=key_id)
    return issued


def _print_keys(settings: GatewaySettings, project_name: str | None) -> None:
    async def gather(store: Store) -> list[tuple[str, Any]]:
        projects = {p.id: p.name for p in await store.list_projects()}
        if project_name is not None and project_name not in projects.values():
            raise KeyAdminError(f"no project named '{project_name}'")
        project_id = next((pid for pid, name in projects.items() if name == project_name), None)
        return [(projects.get(k.project_id, "?"), k) for k in await store.list_api_keys(project_id)]

    rows = asyncio.run(_with_store(settings, gather))
    now = time.time()
    rotation = settings.key_rotation
    print(
        f"{'KEY_ID':22} {'PROJECT':20} {'STATUS':9} {'CREATED (UTC)':20} {'UNTIL (UTC)':20} "
        f"{'ROTATES (UTC)':20} HINT"
    )
    for project, key in rows:
        # UNTIL: when it was revoked, or when its rotation grace ends (a rotated key)
        ends = key.revoked_at if key.revoked_at is not None else key.expires_at
        until = _utc(ends) if ends is not None else "-"
        due = rotation_due_at(key, rotation.policy_for(key.project_id, project))
        rotates = _utc(due) if due is not None else "-"
        print(
            f"{key.id:22} {project:20} {key.status(now):9} {_utc(key.created_at):20} {until:20} "
            f"{rotates:20} {key.hint}"
        )


def _print_pending(settings: GatewaySettings, project_name: str | None, delete: bool) -> None:
    """The successors automatic rotation wrote to DATA_DIR/pending-keys, with the key each replaces
    and when that one stops working; `delete` removes the files printed."""
    folder = pending_dir(settings.resolved_data_dir)

    async def gather(store: Store) -> list[tuple[Path, str, ApiKey | None, ApiKey | None]]:
        projects = {p.id: p.name for p in await store.list_projects()}
        if project_name is not None and project_name not in projects.values():
            raise KeyAdminError(f"no project named '{project_name}'")
        every = await store.list_api_keys()
        found = []
        for path in sorted(folder.glob("key_*.key")) if folder.is_dir() else []:
            key = next((k for k in every if k.id == path.stem), None)
            old = next((k for k in every if k.rotated_to == path.stem), None)
            project = projects.get(key.project_id, "?") if key else "?"
            if project_name is None or project == project_name:
                found.append((path, project, key, old))
        return found

    rows = asyncio.run(_with_store(settings, gather))
    if not rows:
        print(f"no pending keys in {folder}")
        return
    now = time.time()
    for path, project, key, old in rows:
        if key is None:
            print(f"{path.stem}: not in the store (its rotation did not complete); not usable")
        else:
            replaces = "nothing"
            if old is not None:
                grace = _utc(old.expires_at) if old.expires_at is not None else "-"
                replaces = f"{old.id}, which works until {grace} UTC"
            print(f"{key.id} of project {project} ({key.status(now)}) replaces {replaces}:")
            print(path.read_text().strip())
        if delete:
            path.unlink()
            print(f"deleted {path}")


def _print_calls(settings: GatewaySettings, project_name: str | None) -> None:
    async def gather(store: Store) -> list[tuple[str, dict[str, Any]]]:
        projects = {p.id: p.name for p in await store.list_projects()}
        if project_name is not None and project_name not in projects.values():
            raise KeyAdminError(f"no project named '{project_name}'")
        project_id = next((pid for pid, name in projects.items() if name == project_name), None)
        return [(projects.get(c["project_id"], "?"), c) for c in await store.list_calls(project_id)]

    rows = asyncio.run(_with_store(settings, gather))
    print(f"{'CALL_ID':37} {'PROJECT':20} {'VIA':7} {'STATUS':10} {'STARTED (UTC)':20} {'SECONDS':>8} END")
    for project, call in rows:
        ended = call.get("ended_at")
        seconds = f"{ended - call['created_at']:8d}" if ended else f"{'-':>8}"
        end = call.get("end_reason") or "-"
        print(
            f"{call['id']:37} {project:20} {call['transport']:7} {call['status']:10} "
            f"{_utc(call['created_at']):20} {seconds} {end}"
        )


def _healthcheck(args: argparse.Namespace, settings: GatewaySettings) -> int:
    """0 when /healthz answers; else 1 with one line saying why (what `docker inspect` shows)."""
    if args.like_pid is not None:
        try:
            words, cwd = healthcheck.process_arguments(args.like_pid)
        except ValueError as exc:
            raise CliError(str(exc), 1) from None
        os.chdir(cwd)  # its relative --config/--data-dir paths are relative to it
        settings = settings_from_args(build_parser().parse_args(words))
    problem = healthcheck.probe(healthcheck.probe_url(settings), args.timeout)
    if problem is not None:
        print(f"{PROG}: unhealthy: {problem}", file=sys.stderr)
        return 1
    return 0


def _utc(ts: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(ts))


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        settings = settings_from_args(args)
        if args.command == "serve":
            configure_logging(settings.log_level, settings.effective_log_format)
            asyncio.run(_serve(settings))
        elif args.command == "demo":
            configure_logging(settings.log_level, settings.effective_log_format)
            _demo(settings)
        elif args.command == "keys":
            _keys(args, settings)
        elif args.command == "calls":
            _print_calls(settings, args.project)
        elif args.command == "migrate":
            _migrate(settings)
        elif args.command == "policy":
            return policy_cli.run(args, settings)
        elif args.command in ("data", "backup", "restore"):
            cli_data.run(args, settings)
        elif args.command == "store":
            cli_store.run(args, settings)
        elif args.command == "healthcheck":
            return _healthcheck(args, settings)
    except CliError as exc:
        _fail(str(exc), exc.code)
    except (cli_data.DataCommandError, cli_store.StoreCommandError) as exc:
        _fail(str(exc), exc.code)
    except StoreUnavailable as exc:
        _fail(str(exc), 1)
    except KeyAdminError as exc:
        _fail(str(exc), 1)
    except (PolicyError, policy_cli.PolicyCliError) as exc:
        _fail(str(exc), 2)
    except SecretError as exc:
        _fail(f"a secret could not be read: {exc}", 1)
    except OSError as exc:
        _fail(f"{exc.strerror or exc} ({exc.filename or ''})".replace(" ()", ""), 1)
    except KeyboardInterrupt:
        return 130
    return 0
