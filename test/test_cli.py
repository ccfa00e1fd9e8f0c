"""The `ovos-realtime` command: key management output, and one-line errors for user mistakes."""

from __future__ import annotations

import json
import os
import re
import signal
import sqlite3
import subprocess
import time
from pathlib import Path

import pytest

from ovos_realtime_gateway.cli import build_parser, settings_from_args
from ovos_realtime_gateway.cli_common import CliError

from .gateway_process import GatewayProcess, cli


def test_keys_create_prints_the_key_last_and_stores_only_a_hash(tmp_path: Path) -> None:
    done = cli("keys", "create", "--project", "kitchen", data_dir=tmp_path)
    lines = done.stdout.strip().splitlines()
    key = lines[-1]
    assert key.startswith("sk-ovos-")
    assert "created project kitchen" in lines[0]
    database = (tmp_path / "ovos-realtime.db").read_bytes()
    assert key.encode() not in database, "only a salted hash of the key may be stored"
    second = cli("keys", "create", "--project", "kitchen", data_dir=tmp_path).stdout
    assert "created project" not in second  # the project exists now


def test_keys_list_shows_status_and_a_hint_never_the_key(tmp_path: Path) -> None:
    key = cli("keys", "create", "--project", "p1", data_dir=tmp_path).stdout.strip().splitlines()[-1]
    cli("keys", "create", "--project", "p2", data_dir=tmp_path)
    listing = cli("keys", "list", data_dir=tmp_path).stdout
    assert "p1" in listing and "p2" in listing and "active" in listing
    assert key not in listing and key[-4:] in listing
    only_p1 = cli("keys", "list", "--project", "p1", data_dir=tmp_path).stdout
    assert "p2" not in only_p1


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (("keys", "revoke", "key_0000000000000000"), 1, "no key with id 'key_0000000000000000'"),
        (("keys", "rotate", "key_0000000000000000"), 1, "no key with id"),
        (("keys", "list", "--project", "nobody"), 1, "no project named 'nobody'"),
        (("keys", "create", "--project", "  "), 1, "project name must not be empty"),
    ],
)
def test_user_mistakes_are_one_line(tmp_path: Path, args: tuple[str, ...], code: int, message: str) -> None:
    done = cli(*args, data_dir=tmp_path, check=False)
    assert done.returncode == code
    assert done.stderr.startswith("ovos-realtime: error: ")
    assert message in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1
    assert "Traceback" not in done.stderr


def test_revoking_twice_is_refused(tmp_path: Path) -> None:
    key = cli("keys", "create", "--project", "p", data_dir=tmp_path).stdout.strip().splitlines()[-1]
    key_id = "key_" + key.split("-")[2]
    cli("keys", "revoke", key_id, data_dir=tmp_path)
    again = cli("keys", "revoke", key_id, data_dir=tmp_path, check=False)
    assert again.returncode == 1 and "already revoked" in again.stderr


def test_invalid_settings_are_one_line(tmp_path: Path) -> None:
    config = tmp_path / "bad.json"
    config.write_text(json.dumps({"port": "eighty", "surprise": True}))
    done = cli("serve", "--config", str(config), data_dir=tmp_path, check=False)
    assert done.returncode == 2
    assert done.stderr.startswith("ovos-realtime: error: invalid setting")
    assert "Traceback" not in done.stderr


def test_replica_url_flag_sets_the_cluster_setting_and_a_bad_one_is_named() -> None:
    """`--replica-url` is where a pod's own address goes (Kubernetes expands `$(POD_IP)` in args);
    it lands in `cluster.replica_url` beside the file's cluster settings, checked as they are."""
    parser = build_parser()
    args = ["serve", "--replica-url", "http://10.1.2.3:8080"]
    assert settings_from_args(parser.parse_args(args)).cluster.replica_url == "http://10.1.2.3:8080"
    with pytest.raises(CliError, match=r"invalid setting 'cluster.replica_url'"):
        settings_from_args(parser.parse_args(["serve", "--replica-url", "10.1.2.3:8080"]))


def test_unreadable_config_file(tmp_path: Path) -> None:
    done = cli("serve", "--config", str(tmp_path / "missing.yaml"), data_dir=tmp_path, check=False)
    assert done.returncode == 2 and "cannot read config file" in done.stderr


def test_yaml_config_is_accepted(tmp_path: Path) -> None:
    config = tmp_path / "ok.yaml"
    config.write_text("rate_limits:\n  requests_per_minute: 5\n")
    done = cli("keys", "list", "--config", str(config), data_dir=tmp_path)
    assert done.stdout.startswith("KEY_ID")


def test_usage_errors_exit_2(tmp_path: Path) -> None:
    done = cli("keys", "create", data_dir=tmp_path, check=False)
    assert done.returncode == 2 and "--project" in done.stderr


def test_keys_list_says_until_when_a_rotated_key_works(tmp_path: Path) -> None:
    key = cli("keys", "create", "--project", "p", data_dir=tmp_path).stdout.strip().splitlines()[-1]
    key_id = "key_" + key.split("-")[2]
    rotated = cli("keys", "rotate", key_id, "--grace-seconds", "3600", data_dir=tmp_path).stdout
    grace_ends = time.strftime("%Y-%m-%d %H:%M", time.gmtime(time.time() + 3600))
    assert "(until " in rotated and "UTC)" in rotated
    listing = cli("keys", "list", data_dir=tmp_path).stdout
    row = next(line for line in listing.splitlines() if line.startswith(key_id))
    assert "rotating" in row
    until = re.findall(r"\d{4}-\d{2}-\d{2} \d{2}:\d{2}:\d{2}", row)[1]
    ends = time.mktime(time.strptime(until, "%Y-%m-%d %H:%M:%S")) - time.mktime(
        time.strptime(grace_ends, "%Y-%m-%d %H:%M")
    )
    assert abs(ends) <= 120, (row, grace_ends)
    assert "UNTIL" in listing.splitlines()[0]


def test_the_key_command_the_gateway_prints_works_as_printed(tmp_path: Path) -> None:
    """`create a key: …` is a command the user can paste: no `.venv/bin` on PATH is needed."""
    with GatewayProcess(tmp_path / "data") as gateway:
        deadline = time.monotonic() + 60
        while not (found := re.search(r"create a key: (.+)", gateway.stdout_path.read_text())):
            assert time.monotonic() < deadline, gateway.stdout_path.read_text()
            time.sleep(0.1)
    printed = found.group(1).replace("NAME", "pasted")
    path = ":".join(p for p in os.environ["PATH"].split(":") if ".venv" not in p)
    done = subprocess.run(
        ["bash", "-c", printed], env={**os.environ, "PATH": path}, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, f"{printed!r}: {done.stderr}"
    assert done.stdout.strip().splitlines()[-1].startswith("sk-ovos-")
    assert "pasted" in cli("keys", "list", data_dir=tmp_path / "data").stdout


def test_a_second_bootstrap_does_not_touch_pip() -> None:
    """`scripts/demo` runs `scripts/bootstrap` at every start: with nothing changed, it says so
    and leaves the environment alone (no pip run, no setuptools warnings)."""
    root = Path(__file__).resolve().parent.parent
    for _ in range(2):  # the first may install (a clone bootstrapped with other extras)
        done = subprocess.run(
            [str(root / "scripts" / "bootstrap"), "test,lint"], capture_output=True, text=True, timeout=900
        )
        assert done.returncode == 0, done.stderr
    assert "bootstrap: .venv is up to date (extras: test,lint); pip not run" in done.stderr
    assert "Editable" not in done.stderr + done.stdout


SLOW_LOADING_TTS = Path(__file__).parent / "opm_test_plugins"


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_stopping_while_the_speech_models_load_exits_cleanly(tmp_path: Path, sig: signal.Signals) -> None:
    """Ctrl-C (or a container's SIGTERM) while a speech plugin is still loading: the gateway stops
    and exits 0 instead of ignoring the signal and serving on. The slow load is a deliberately
    injected fault (test/opm_test_plugins: a TTS plugin whose loading takes 20 s)."""
    config = tmp_path / "slow.json"
    config.write_text(
        json.dumps(
            {
                "messagebus_url": "ws://127.0.0.1:9/core",  # speech loads only for a gateway with OVOS
                "tts_plugin": "ovos-tts-plugin-injected-fault",
                "tts_config": {"load_seconds": 20},
            }
        )
    )
    path = os.pathsep.join(filter(None, [str(SLOW_LOADING_TTS), os.environ.get("PYTHONPATH")]))
    gateway = GatewayProcess(tmp_path / "data", "--config", str(config), env={"PYTHONPATH": path}).start()
    assert gateway.proc is not None
    deadline = time.monotonic() + 60
    while "loading speech:" not in gateway.stdout_path.read_text():
        assert time.monotonic() < deadline and gateway.proc.poll() is None, gateway.logs()[-3000:]
        time.sleep(0.1)
    gateway.proc.send_signal(sig)
    try:
        code = gateway.proc.wait(90)  # the loading thread finishes its 20 s first
    finally:
        gateway.stop()
    printed = gateway.stdout_path.read_text()
    assert code == 0, f"exit {code}:\n{printed}\n{gateway.logs()[-3000:]}"
    assert "ovos-realtime stopped" in printed
    assert "create a key:" not in printed, "it went on serving after the signal"


def test_key_commands_are_audited_by_id_only(tmp_path: Path) -> None:
    """create, rotate and revoke from the command line each leave an audit row (principal `cli`)
    naming the keys by id; the key itself is in no row."""
    created = cli("keys", "create", "--project", "audited", data_dir=tmp_path).stdout.strip().splitlines()
    key, first = created[-1], "key_" + created[-1].split("-")[2]
    rotated = cli("keys", "rotate", first, "--grace-seconds", "60", data_dir=tmp_path).stdout
    successor = re.search(r"-> (key_\w+)", rotated)
    assert successor is not None, rotated
    cli("keys", "revoke", successor.group(1), data_dir=tmp_path)
    with sqlite3.connect(tmp_path / "ovos-realtime.db") as db:
        rows = db.execute(
            "select action, principal, resource, detail from audit_log where principal = 'cli' order by ts"
        ).fetchall()
    assert [(action, resource) for action, _, resource, _ in rows] == [
        ("key.create", first),
        ("key.rotate", first),
        ("key.create", successor.group(1)),
        ("key.revoke", successor.group(1)),
    ]
    assert json.loads(rows[1][3]) == {"successor": successor.group(1), "grace_seconds": 60}
    new_key = rotated.strip().splitlines()[-1]
    assert not [row for row in rows if key in str(row) or new_key in str(row)], "a key in the audit"
