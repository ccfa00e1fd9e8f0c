"""`ovos-realtime keys create/list/revoke/rotate/show-pending` and `calls list`: what an operator
does to keys (audited, principal `cli`, by id only) and what the store says of keys and calls."""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from pathlib import Path
from typing import Any

from .cli_common import CliError, with_store
from .cli_common import utc as _utc
from .cluster.news import News, announce
from .security.key_admin import IssuedKey, KeyAdminError, create_key, revoke_key, rotate_key
from .security.key_rotation import pending_dir, rotation_due_at
from .settings import GatewaySettings
from .store import ApiKey, AuditEntry, Store


def add_parsers(sub: Any, data_dir: argparse.ArgumentParser) -> None:
    """The `keys` and `calls` commands."""
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


def run_keys(args: argparse.Namespace, settings: GatewaySettings) -> None:
    command = args.keys_command
    if command == "create":
        issued = asyncio.run(with_store(settings, lambda s: _audited_create(s, args.project)))
        if issued.project_created:
            print(f"created project {issued.project.name} ({issued.project.id})")
        print(f"created key {issued.record.id} for project {issued.project.name}; it is shown only once:")
        print(issued.secret)
    elif command == "list":
        _print_keys(settings, args.project)
    elif command == "show-pending":
        _print_pending(settings, args.project, args.delete)
    elif command == "revoke":
        key = asyncio.run(with_store(settings, lambda s: _audited_revoke(s, args.key_id)))
        print(f"revoked key {key.id}")
        _tell_replicas(settings, key.id)
    elif command == "rotate":
        grace = args.grace_seconds if args.grace_seconds is not None else settings.key_rotation_grace_seconds
        if grace < 0:
            raise CliError("--grace-seconds must be >= 0", 2)
        issued = asyncio.run(with_store(settings, lambda s: _audited_rotate(s, args.key_id, grace)))
        print(
            f"rotated {args.key_id} -> {issued.record.id}; the old key works for {grace} more seconds "
            f"(until {_utc(time.time() + grace)} UTC)"
        )
        print(issued.secret)
        _tell_replicas(settings, args.key_id)


def _tell_replicas(settings: GatewaySettings, key_id: str) -> None:
    """After the store's commit: with a cluster, every replica checks the key at once and ends
    the live sessions, sidebands and calls that hold it (said on stderr: stdout ends with the key)."""
    told = asyncio.run(announce(settings, News("revoked", (key_id,))))
    if told is not None:
        sys.stderr.write(told + "\n")


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

    rows = asyncio.run(with_store(settings, gather))
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

    rows = asyncio.run(with_store(settings, gather))
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


def print_calls(settings: GatewaySettings, project_name: str | None) -> None:
    async def gather(store: Store) -> list[tuple[str, dict[str, Any]]]:
        projects = {p.id: p.name for p in await store.list_projects()}
        if project_name is not None and project_name not in projects.values():
            raise KeyAdminError(f"no project named '{project_name}'")
        project_id = next((pid for pid, name in projects.items() if name == project_name), None)
        return [(projects.get(c["project_id"], "?"), c) for c in await store.list_calls(project_id)]

    rows = asyncio.run(with_store(settings, gather))
    print(f"{'CALL_ID':37} {'PROJECT':20} {'VIA':7} {'STATUS':10} {'STARTED (UTC)':20} {'SECONDS':>8} END")
    for project, call in rows:
        ended = call.get("ended_at")
        seconds = f"{ended - call['created_at']:8d}" if ended else f"{'-':>8}"
        end = call.get("end_reason") or "-"
        print(
            f"{call['id']:37} {project:20} {call['transport']:7} {call['status']:10} "
            f"{_utc(call['created_at']):20} {seconds} {end}"
        )
