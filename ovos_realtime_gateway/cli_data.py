"""`ovos-realtime data purge`, `backup` and `restore`: personal data and the store as a whole.

Each works while a gateway runs on the data dir (sqlite WAL), except `restore --force`, which
replaces a store: stop its gateway first.
"""

from __future__ import annotations

import argparse
import asyncio
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from .cli_common import CliError, connected_store
from .settings import GatewaySettings
from .store import PurgeRefused, PurgeResult
from .store.backup import BackupError, backup, restore
from .store.sqlite import DB_FILENAME


def add_parsers(sub: Any, data_dir: argparse.ArgumentParser) -> None:
    """The `data`, `backup` and `restore` commands, on the main parser's subcommands `sub`."""
    data = sub.add_parser("data", help="personal data in the store")
    data_sub = data.add_subparsers(dest="data_command", required=True, metavar="ACTION")
    purge = data_sub.add_parser(
        "purge",
        parents=[data_dir],
        help="delete sessions with their conversations, client secrets and calls (a live session is refused)",
    )
    which = purge.add_mutually_exclusive_group(required=True)
    which.add_argument("--project", help="every session of this project (name or id)")
    which.add_argument("--session", help="this session (id)")
    purge.add_argument(
        "--before", help="with --project: only sessions created before this date (ISO 8601, UTC)"
    )

    to = sub.add_parser("backup", parents=[data_dir], help="copy the store into one file (while it serves)")
    to.add_argument("--to", type=Path, required=True, help="the backup file to write (0600)")
    to.add_argument("--force", action="store_true", help="replace the file if it exists")

    back = sub.add_parser("restore", parents=[data_dir], help="make a backup file the store of --data-dir")
    back.add_argument("--from", dest="source", type=Path, required=True, help="a file `backup` wrote")
    back.add_argument("--force", action="store_true", help="replace a store that holds data")


def run(args: argparse.Namespace, settings: GatewaySettings) -> None:
    if args.command == "data":
        _purge(args, settings)
    elif args.command == "backup":
        path = settings.resolved_data_dir / DB_FILENAME
        size = _backup_errors(lambda: backup(path, args.to, args.force))
        print(f"backed up {path} to {args.to} ({size} bytes)")
    elif args.command == "restore":
        if args.data_dir is None:
            raise CliError("restore needs --data-dir (the store it makes)", 2)
        target = _backup_errors(lambda: restore(args.source, settings.resolved_data_dir, args.force))
        print(f"restored {args.source} into {target}")


def _backup_errors(action: Any) -> Any:
    try:
        return action()
    except BackupError as exc:
        raise CliError(str(exc)) from None


def parse_before(text: str) -> float:
    """`2026-11-30` or `2026-11-30T10:00[:00][+01:00]` (UTC unless it says) → a Unix time."""
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        raise CliError(f"--before {text!r} is not an ISO 8601 date (e.g. 2026-11-30)", 2) from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    return when.timestamp()


def _purge(args: argparse.Namespace, settings: GatewaySettings) -> None:
    if args.before is not None and args.project is None:
        raise CliError("--before goes with --project", 2)
    before = parse_before(args.before) if args.before is not None else None
    if not settings.store_url and not (settings.resolved_data_dir / DB_FILENAME).exists():
        raise CliError(f"no store in {settings.resolved_data_dir}")

    async def go() -> PurgeResult:
        async with connected_store(settings) as store:
            if args.session is not None:
                return await store.purge(session_id=args.session)
            projects = await store.list_projects()
            found = [p.id for p in projects if args.project in (p.name, p.id)]
            if not found:
                raise CliError(f"no project named '{args.project}'")
            return await store.purge(project_id=found[0], before=before)

    try:
        result = asyncio.run(go())
    except PurgeRefused as exc:
        raise CliError(f"nothing purged: {exc}") from None
    print(
        f"purged {len(result.sessions)} sessions, {result.items} conversation items, "
        f"{len(result.client_secrets)} client secrets, {len(result.calls)} calls (audit {result.audit_id})"
    )
    for session_id in result.sessions:
        print(session_id)
