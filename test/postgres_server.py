"""A real PostgreSQL server (Debian's `postgresql` package) as a throwaway cluster: `initdb` into a
temporary directory, `postgres` listening on a unix socket there only (no TCP port to collide on),
trust authentication, durability off (a test cluster). Run as the `postgres` user when the tests
run as root (PostgreSQL refuses root). Each test gets its own empty database."""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import signal
import subprocess
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import psycopg

SUPERUSER = "ovos"


def _binaries() -> Path:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    assert found, "PostgreSQL is not installed (scripts/install-system-deps test: postgresql)"
    return Path(found[-1]).parent


class PostgresServer:
    """`postgres` on the unix socket `<dir>/.s.PGSQL.5432`; `url(db)` names one of its databases."""

    def __init__(self) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="ovos-pg-"))  # short: a socket path has ~100 bytes
        self.data = self.dir / "data"
        self.proc: subprocess.Popen[bytes] | None = None
        self._as: dict[str, Any] = {}
        if os.geteuid() == 0:
            account = pwd.getpwnam("postgres")
            os.chown(self.dir, account.pw_uid, account.pw_gid)
            self._as = {"user": account.pw_uid, "group": account.pw_gid, "extra_groups": []}

    def url(self, database: str = "postgres", user: str = SUPERUSER) -> str:
        return f"postgresql://{user}@/{database}?host={self.dir}"

    def start(self, timeout: float = 60.0) -> PostgresServer:
        bin_dir = _binaries()
        subprocess.run(
            [bin_dir / "initdb", "-D", self.data, "-U", SUPERUSER, "--auth=trust", "-E", "UTF8", "--no-sync"],
            check=True,
            capture_output=True,
            cwd=self.dir,
            **self._as,
        )
        # the superuser by the socket alone; every other role by its password (SCRAM), as in production
        hba = f"local all {SUPERUSER} trust\nlocal all all scram-sha-256\n"
        subprocess.run(
            ["tee", str(self.data / "pg_hba.conf")],
            input=hba.encode(),
            check=True,
            capture_output=True,
            **self._as,
        )
        return self._launch(timeout)

    def _launch(self, timeout: float) -> PostgresServer:
        """Run `postgres` on the initialised data directory until it accepts connections."""
        bin_dir = _binaries()
        log = open(self.dir / "postgres.log", "ab")  # noqa: SIM115 (the process writes it)
        options = {
            "listen_addresses": "",
            "unix_socket_directories": str(self.dir),
            "fsync": "off",
            "synchronous_commit": "off",
            "full_page_writes": "off",
            "max_connections": "200",
        }
        command = [str(bin_dir / "postgres"), "-D", str(self.data)]
        for name, value in options.items():
            command += ["-c", f"{name}={value}"]
        self.proc = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, cwd=self.dir, **self._as)
        log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"postgres exited: {(self.dir / 'postgres.log').read_text()}")
            try:
                with psycopg.connect(self.url(), connect_timeout=5):
                    return self
            except psycopg.OperationalError:
                time.sleep(0.1)
        raise AssertionError(f"postgres did not accept connections within {timeout}s")

    def create_database(self, prefix: str = "t") -> str:
        """A new empty database; its URL."""
        name = f"{prefix}_{uuid.uuid4().hex[:12]}"
        with psycopg.connect(self.url(), autocommit=True) as conn:
            conn.execute(f'create database "{name}"')
        return self.url(name)

    def create_user(self, name: str, password: str) -> str:
        """A login role that must give `password`, owning a new database; that database's URL
        (without the password)."""
        with psycopg.connect(self.url(), autocommit=True) as conn:
            conn.execute(f"create role {name} login password '{password}'")
            database = f"{name}_{uuid.uuid4().hex[:8]}"
            conn.execute(f'create database "{database}" owner {name}')
        return self.url(database, user=name)

    def halt(self) -> None:
        """Stop the server, keeping its data: PostgreSQL is down until `resume()`. SIGINT, its "fast"
        shutdown: the clients' connections are cut, as when the database host goes away."""
        self._terminate(signal.SIGINT)

    def resume(self, timeout: float = 60.0) -> PostgresServer:
        """Start the halted server again on the same socket, with the same databases."""
        assert self.proc is None, "the server is running"
        return self._launch(timeout)

    def _terminate(self, how: signal.Signals = signal.SIGTERM) -> None:
        if self.proc is not None:
            self.proc.send_signal(how)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
            self.proc = None

    def stop(self) -> None:
        self._terminate()
        shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self) -> PostgresServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
