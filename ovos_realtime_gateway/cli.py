"""The `ovos-realtime` command: serve | demo | keys create/list/revoke/rotate/show-pending | calls |
migrate | policy test/eval | data purge | backup | restore | healthcheck.

User mistakes are one line on stderr and exit code 2 (usage) or 1 (operation); never a traceback.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NoReturn

from pydantic import ValidationError

from . import cli_data, cli_keys, cli_serve, cli_store, healthcheck, policy_cli
from .cli_common import PROG, CliError, connected_store
from .log import configure_logging
from .security.key_admin import KeyAdminError
from .security.policy import PolicyError
from .security.secret_refs import SecretError
from .settings import GatewaySettings, load_config_file
from .store import StoreUnavailable
from .version import __version__


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
    gateway.add_argument(
        "--replica-url",
        help="cluster.replica_url: the base URL other replicas reach this one at (in a Kubernetes pod: "
        "http://$(POD_IP):8080, the pod's IP from the downward API)",
    )

    sub.add_parser("serve", parents=[data_dir, gateway], help="run the gateway standalone")
    sub.add_parser(
        "demo",
        parents=[data_dir, gateway],
        help="run a whole assistant: OVOS messagebus, skills and the gateway (time zone: the machine's)",
    )

    cli_keys.add_parsers(sub, data_dir)  # keys, calls
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
    if getattr(args, "replica_url", None) is not None:
        flags["cluster"] = {"replica_url": args.replica_url}
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


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        settings = settings_from_args(args)
        if args.command == "serve":
            configure_logging(settings.log_level, settings.effective_log_format)
            asyncio.run(cli_serve.serve(settings))
        elif args.command == "demo":
            configure_logging(settings.log_level, settings.effective_log_format)
            cli_serve.demo(settings)
        elif args.command == "keys":
            cli_keys.run_keys(args, settings)
        elif args.command == "calls":
            cli_keys.print_calls(settings, args.project)
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
