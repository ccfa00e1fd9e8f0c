"""`ovos-realtime healthcheck`: is the gateway configured by these settings alive? For container
HEALTHCHECKs and probes: it reads the scheme (TLS or not) and port from the same settings `serve`
takes, or from the command line of a running `serve`/`demo` process (`--like-pid 1` in an image),
so a container started with `--tls-self-signed` is probed over https without a second setting.
"""

from __future__ import annotations

import argparse
import ssl
import urllib.error
import urllib.request
from pathlib import Path

from .settings import GatewaySettings

RUN_COMMANDS = ("serve", "demo")


def process_arguments(pid: int, proc: Path = Path("/proc")) -> tuple[list[str], Path]:
    """The `serve`/`demo` arguments process `pid` was started with, and its working directory (for
    relative paths in them). ValueError when it is not an ovos-realtime server."""
    try:
        argv = (proc / str(pid) / "cmdline").read_bytes().split(b"\0")
        cwd = (proc / str(pid) / "cwd").resolve()
    except OSError as exc:
        raise ValueError(f"cannot read process {pid}: {exc}") from None
    words = [w.decode(errors="replace") for w in argv if w]
    for n, word in enumerate(words):
        if word in RUN_COMMANDS:
            return words[n:], cwd
    raise ValueError(f"process {pid} is not `ovos-realtime serve` or `demo`: {' '.join(words)[:200]}")


def probe_url(settings: GatewaySettings) -> str:
    """/healthz on loopback, with the scheme and port the settings serve."""
    scheme = "https" if settings.tls_enabled else "http"
    return f"{scheme}://127.0.0.1:{settings.port}/healthz"


def probe(url: str, timeout: float) -> str | None:
    """None when `url` answers 200, else what went wrong. The certificate is not checked: this is
    a liveness probe on loopback, not a trust decision (a self-signed or a public name's cert)."""
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    try:
        with urllib.request.urlopen(url, timeout=timeout, context=context) as answer:  # noqa: S310 - our own URL
            return None if answer.status == 200 else f"{url} answered {answer.status}"
    except urllib.error.HTTPError as exc:
        return f"{url} answered {exc.code}"
    except (OSError, ValueError) as exc:
        return f"{url}: {getattr(exc, 'reason', exc)}"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--like-pid",
        type=int,
        metavar="PID",
        help="take the settings from the command line of this running serve/demo process (images: 1)",
    )
    parser.add_argument("--timeout", type=float, default=3.0, help="seconds to wait for an answer")
