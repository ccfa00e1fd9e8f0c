"""scripts/audit (pip-audit of the locked dependencies): a known vulnerability in a pin fails it,
naming the package and the advisory; an advisory listed in requirements/audit-ignore with a reason is
accepted; an entry without a reason is refused.

The advisory service is a STAND-IN on loopback (no internet at test time): a small OSV-API server
that reports one made-up advisory against the pinned aiohttp, asked through pip-audit's own
`-s osv --osv-url`. Everything else (pip-audit, the script, the constraints file) is real."""

from __future__ import annotations

import json
import os
import subprocess
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
ADVISORY = "GHSA-test-0000-0000"
PINNED = dict(
    line.split("==", 1)
    for line in (ROOT / "requirements" / "constraints.txt").read_text().splitlines()
    if "==" in line and not line.startswith("#")
)


class StandInOsv(BaseHTTPRequestHandler):
    """POST /v1/query as OSV answers it: one advisory for the pinned aiohttp, nothing for the rest."""

    def do_POST(self) -> None:
        query = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        answer: dict[str, object] = {}
        if query["package"]["name"] == "aiohttp" and query["version"] == PINNED["aiohttp"]:
            answer = {
                "vulns": [
                    {
                        "id": ADVISORY,
                        "summary": "made up for the test",
                        "affected": [
                            {
                                "package": {"name": "aiohttp", "ecosystem": "PyPI"},
                                "ranges": [{"type": "ECOSYSTEM", "events": [{"introduced": "0"}]}],
                            }
                        ],
                    }
                ]
            }
        body = json.dumps(answer).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def osv_url() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), StandInOsv)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}/v1/query"
    server.shutdown()
    server.server_close()
    thread.join(10)


def audit(osv_url: str, ignore: Path, cache: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "OVOS_REALTIME_AUDIT_IGNORE": str(ignore), "NO_PROXY": "127.0.0.1"}
    command = [str(ROOT / "scripts" / "audit"), "-s", "osv", "--osv-url", osv_url, "--cache-dir", str(cache)]
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)


def test_a_known_vulnerability_in_a_pin_fails_naming_it(osv_url: str, tmp_path: Path) -> None:
    ignore = tmp_path / "audit-ignore"
    ignore.write_text("# nothing accepted\n")
    done = audit(osv_url, ignore, tmp_path / "cache")
    assert done.returncode == 1, done.stdout + done.stderr
    assert f"aiohttp {PINNED['aiohttp']} {ADVISORY}" in " ".join(done.stderr.split()), done.stderr
    assert "audit: failed" in done.stderr


def test_an_advisory_listed_with_a_reason_is_accepted(osv_url: str, tmp_path: Path) -> None:
    ignore = tmp_path / "audit-ignore"
    ignore.write_text(f"{ADVISORY}  the affected code path is never reached by the gateway\n")
    done = audit(osv_url, ignore, tmp_path / "cache")
    assert done.returncode == 0, done.stderr
    assert f"no known vulnerabilities in {len(PINNED)} locked dependencies" in done.stderr


def test_an_entry_without_a_reason_is_refused(osv_url: str, tmp_path: Path) -> None:
    ignore = tmp_path / "audit-ignore"
    ignore.write_text(f"# header\n{ADVISORY}\n")
    done = audit(osv_url, ignore, tmp_path / "cache")
    assert done.returncode == 2
    assert f"line 2: {ADVISORY} has no reason" in done.stderr, done.stderr
