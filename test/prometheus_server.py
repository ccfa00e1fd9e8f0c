"""A real Prometheus (Debian's package) on loopback for tests: started with a given config, its
HTTP API's URL handed out, stopped after."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from ovos_realtime_gateway.ovos.stack import free_port


@dataclass
class Prometheus:
    api: str  # http://127.0.0.1:PORT/api/v1
    process: subprocess.Popen[bytes]
    log: Path

    def check_alive(self) -> None:
        """Fail with its log when it has exited."""
        assert self.process.poll() is None, self.log.read_text()[-3000:]


@contextmanager
def prometheus_server(root: Path, config: dict[str, Any]) -> Iterator[Prometheus]:
    """Prometheus with `config` (written to `root/prometheus.yml`), its data under `root`."""
    binary = shutil.which("prometheus")
    if binary is None:
        pytest.fail("prometheus is missing: scripts/install-system-deps test installs it")
    (root / "prometheus.yml").write_text(yaml.safe_dump(config))
    port = free_port()
    log = root / "prometheus.log"
    with open(log, "wb") as out:
        process = subprocess.Popen(
            [
                binary,
                f"--config.file={root / 'prometheus.yml'}",
                f"--storage.tsdb.path={root / 'data'}",
                f"--web.listen-address=127.0.0.1:{port}",
            ],
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        yield Prometheus(f"http://127.0.0.1:{port}/api/v1", process, log)
    finally:
        process.terminate()
        process.wait(30)
