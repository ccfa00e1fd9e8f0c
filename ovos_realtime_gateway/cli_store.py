"""`ovos-realtime store copy --to postgresql://…`: an embedded sqlite store, with its history, into
PostgreSQL."""

from __future__ import annotations

import argparse
import asyncio
from typing import Any

from .cli_common import CliError, connected_store
from .settings import GatewaySettings
from .store.backends import check_store_url, redact
from .store.copy import CopyError, copy_store


def add_parsers(sub: Any, data_dir: argparse.ArgumentParser) -> None:
    """The `store` command, on the main parser's subcommands `sub`."""
    store = sub.add_parser("store", help="the store as a whole (PostgreSQL)")
    store_sub = store.add_subparsers(dest="store_command", required=True, metavar="ACTION")
    copy = store_sub.add_parser(
        "copy",
        parents=[data_dir],
        help="copy the embedded sqlite store of --data-dir, with all its history, into an empty "
        "PostgreSQL database",
    )
    copy.add_argument(
        "--to",
        required=True,
        help="postgresql://USER@HOST:PORT/DB (a password: in the URL, PGPASSWORD, ~/.pgpass or --password)",
    )
    copy.add_argument(
        "--password", help="the database password: a reference (env:NAME, file:PATH, vault:…) or a literal"
    )


def run(args: argparse.Namespace, settings: GatewaySettings) -> None:
    try:
        url = check_store_url(args.to, "--to")
    except ValueError as exc:
        raise CliError(str(exc), 2) from None
    target_settings = settings.model_copy(update={"store_url": url, "store_password": args.password})
    source = settings.resolved_data_dir

    async def go() -> dict[str, int]:
        async with connected_store(target_settings, migrate=False) as target:
            from .store.postgres import PostgresStore

            assert isinstance(target, PostgresStore)
            return await copy_store(source, target)

    try:
        counts = asyncio.run(go())
    except CopyError as exc:
        raise CliError(f"nothing copied: {exc}") from None
    copied = ", ".join(f"{n} {table}" for table, n in counts.items())
    print(f"copied {source} into {redact(url)}: {copied}")
