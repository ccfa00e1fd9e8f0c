"""Secret settings as references (issue 13): `env:`, `file:` and `vault:` (a real OpenBao dev
server, token and AppRole auth), re-read without a restart; a secret that cannot be read stops
the start naming the setting; the SIP webhook signs with the old and the new secret during a
rotation's overlap, as Standard Webhooks does (verified by the `standardwebhooks` library).

Long because every secret setting is tried against one real OpenBao server started once for the
module; split, each part would start its own."""

from __future__ import annotations

import asyncio
import base64
import json
import secrets
import time
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import openai
import pytest
from aiohttp import web
from pydantic import ValidationError
from standardwebhooks import Webhook, WebhookVerificationError

from ovos_realtime_gateway.security.secret_refs import SecretValue, parse_reference
from ovos_realtime_gateway.settings import GatewaySettings

from .gateway_process import GatewayProcess, cli, configured_gateway, http
from .loopback_app import OPA_DECISION_PATH, serve_post
from .openbao import OpenBao, start_openbao
from .sip_peer import PhoneCall, SipPeer
from .test_sip_calls import free_udp_port

ROTATION_SEEN_WITHIN_S = 60.0  # refresh is every 0.5 s here; the deadline is for a loaded machine


def whsec() -> str:
    return "whsec_" + base64.b64encode(secrets.token_bytes(24)).decode()


@dataclass
class Delivery:
    body: str
    headers: dict[str, str]

    def verifies_with(self, secret: str) -> bool:
        try:
            Webhook(secret).verify(self.body, self.headers)
        except WebhookVerificationError:
            return False
        return True

    @property
    def signatures(self) -> list[str]:
        return self.headers["webhook-signature"].split(" ")


@dataclass
class Receiver:
    url: str
    deliveries: asyncio.Queue[Delivery] = field(default_factory=asyncio.Queue)


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    """The app's webhook endpoint: keeps each delivery to verify it with chosen secrets."""
    queue: asyncio.Queue[Delivery] = asyncio.Queue()

    async def hook(request: web.Request) -> web.Response:
        queue.put_nowait(Delivery(await request.text(), dict(request.headers)))
        return web.Response(status=200)

    runner, base = await serve_post("/hook", hook)
    yield Receiver(f"{base}/hook", queue)
    await runner.cleanup()


@pytest.fixture(scope="module")
def openbao(tmp_path_factory: pytest.TempPathFactory) -> Iterator[OpenBao]:
    bao = start_openbao(tmp_path_factory.mktemp("openbao") / "bao.log")
    try:
        yield bao
    finally:
        bao.stop()


def sip_settings(receiver: Receiver, port: int, **sip: Any) -> dict[str, Any]:
    return {
        "sip": {
            "enabled": True,
            "port": port,
            "project": "phones",
            "webhook_url": receiver.url,
            **sip,
        }
    }


async def ring(port: int, receiver: Receiver) -> Delivery:
    """A phone calls the gateway and hangs up once the webhook announced the call; the webhook."""
    phone = await SipPeer.bind("127.0.0.1", port)
    try:
        call = PhoneCall(phone.address)
        phone.send(call.invite())
        delivery = await asyncio.wait_for(receiver.deliveries.get(), 30)
        phone.send(call.cancel())
        await phone.response("1 INVITE", 487)
    finally:
        phone.close()
    assert json.loads(delivery.body)["type"] == "realtime.call.incoming"
    return delivery


async def until_signed_with(port: int, receiver: Receiver, secret: str) -> Delivery:
    """Ring until a webhook verifies with `secret` (the gateway re-read its rotated secret)."""
    deadline = asyncio.get_running_loop().time() + ROTATION_SEEN_WITHIN_S
    while asyncio.get_running_loop().time() < deadline:
        delivery = await ring(port, receiver)
        if delivery.verifies_with(secret):
            return delivery
    raise AssertionError("the rotated secret was never used")


def _until(condition: Callable[[], bool], failure: str) -> None:
    deadline = time.monotonic() + ROTATION_SEEN_WITHIN_S
    while not condition():
        assert time.monotonic() < deadline, failure
        time.sleep(0.2)


def _metrics(gateway: GatewayProcess) -> str:
    return http("GET", f"{gateway.base_url}/metrics").body.decode()


def _never_logged(gateway: GatewayProcess, *values: str) -> None:
    printed = gateway.logs() + gateway.stdout_path.read_text()
    for value in values:
        assert value not in printed


@pytest.mark.slow
async def test_a_vault_webhook_secret_signs_and_rotates_without_restart(
    tmp_path: Path, openbao: OpenBao, receiver: Receiver
) -> None:
    first, second = whsec(), whsec()
    await asyncio.to_thread(openbao.put, "ovos", webhook=first)
    port = await asyncio.to_thread(free_udp_port)
    settings = {
        **sip_settings(receiver, port, webhook_secret="vault:secret/ovos#webhook"),
        "vault": {"url": openbao.url, "token": "env:OVOS_TEST_BAO_TOKEN", "refresh_seconds": 0.5},
    }
    gateway, _ = await asyncio.to_thread(
        configured_gateway,
        tmp_path,
        settings,
        "phones",
        "vault",
        env={"OVOS_TEST_BAO_TOKEN": openbao.root_token},
    )
    async with gateway:
        before = await ring(port, receiver)
        assert before.verifies_with(first) and len(before.signatures) == 1
        assert not before.verifies_with(second)

        # rotated in OpenBao; the gateway is not restarted
        await asyncio.to_thread(openbao.put, "ovos", webhook=second)
        after = await until_signed_with(port, receiver, second)
        # the overlap (a day by default): the old secret signs too, so receivers switch at leisure
        assert after.verifies_with(first)
        for secret in (first, second):  # the openai SDK's verifier accepts it with either as well
            with openai.OpenAI(api_key="unused", webhook_secret=secret) as verifier:
                verifier.webhooks.verify_signature(after.body, after.headers)
        assert len(after.signatures) == 2
        assert after.signatures[0] == Webhook(second).sign(
            after.headers["webhook-id"], _timestamp(after), after.body
        ), "the new secret's signature comes first"
    _never_logged(gateway, first, second, openbao.root_token)


def _timestamp(delivery: Delivery) -> Any:
    import datetime as dt

    return dt.datetime.fromtimestamp(int(delivery.headers["webhook-timestamp"]), tz=dt.timezone.utc)


@pytest.mark.slow
async def test_file_and_env_secrets_rotate_and_a_previous_secret_overlaps(
    tmp_path: Path, receiver: Receiver
) -> None:
    """`file:` is re-read (overlap 0: the replaced secret stops signing at once); `env:` names
    the secret being rotated out explicitly (`webhook_previous_secret`), which keeps signing."""
    old, current, new = whsec(), whsec(), whsec()
    secret_file = tmp_path / "webhook.secret"
    secret_file.write_text(current + "\n")
    port = await asyncio.to_thread(free_udp_port)
    settings = {
        **sip_settings(
            receiver,
            port,
            webhook_secret=f"file:{secret_file}",
            webhook_previous_secret="env:OVOS_TEST_OLD_WEBHOOK_SECRET",
            webhook_secret_overlap_seconds=0,
        ),
        "vault": {"refresh_seconds": 0.5},
    }
    gateway, _ = await asyncio.to_thread(
        configured_gateway, tmp_path, settings, "phones", "local", env={"OVOS_TEST_OLD_WEBHOOK_SECRET": old}
    )
    async with gateway:
        first = await ring(port, receiver)
        assert first.verifies_with(current) and first.verifies_with(old)
        assert not first.verifies_with(new)

        secret_file.write_text(new + "\n")
        rotated = await until_signed_with(port, receiver, new)
        assert rotated.verifies_with(old), "webhook_previous_secret still signs"
        assert not rotated.verifies_with(current), "with no overlap the replaced secret stops at once"

        secret_file.unlink()  # a re-read that fails is counted, and the last value stays in use
        failures = 'ovos_realtime_secret_refresh_failures_total{setting="sip.webhook_secret"}'
        await asyncio.to_thread(_until, lambda: failures in _metrics(gateway), "no refresh failure counted")
        assert (await ring(port, receiver)).verifies_with(new)
    _never_logged(gateway, old, current, new)


@pytest.mark.slow
def test_approle_reads_a_turn_credential(tmp_path: Path, openbao: OpenBao) -> None:
    """AppRole auth (no token anywhere): the talk page offers the TURN credential read from
    OpenBao; when the AppRole's token expires the gateway logs in again and still follows a
    rotation; a role that may not read a secret stops the start, naming the setting."""
    turn, rotated = "turn-" + secrets.token_hex(8), "turn-" + secrets.token_hex(8)
    openbao.put("turn", credential=turn)
    openbao.put("elsewhere", credential="not-for-this-role")
    role_id, secret_id = openbao.approle("ovos-turn", readable="turn", token_ttl="3s")
    secret_id_file = tmp_path / "secret-id"
    secret_id_file.write_text(secret_id)
    vault = {"url": openbao.url, "role_id": role_id, "secret_id": f"file:{secret_id_file}"}

    def ice(reference: str) -> dict[str, Any]:
        servers = [{"urls": ["turn:127.0.0.1:3478"], "username": "ovos", "credential": reference}]
        return {"talk_page": True, "ice_servers": servers, "vault": {**vault, "refresh_seconds": 0.5}}

    env = {"VAULT_TOKEN": "", "VAULT_ADDR": ""}  # only the AppRole can log in
    gateway, _ = configured_gateway(tmp_path, ice("vault:secret/turn#credential"), "x", "approle", env=env)
    with gateway:
        page = http("GET", f"{gateway.base_url}/talk")
        assert page.status == 200
        assert f'"credential": "{turn}"' in page.body.decode()
        _until(lambda: "logging in again with AppRole" in gateway.logs(), "the AppRole token never expired")
        openbao.put("turn", credential=rotated)
        _until(lambda: rotated in http("GET", f"{gateway.base_url}/talk").body.decode(), "rotation unseen")
        assert "could not refresh" not in gateway.logs()
    _never_logged(gateway, turn, rotated, secret_id)

    config = tmp_path / "forbidden.json"
    config.write_text(json.dumps(ice("vault:secret/elsewhere#credential")))
    refused = cli("serve", "--port", "0", "--config", str(config), data_dir=tmp_path / "d", check=False)
    assert refused.returncode == 1
    assert "setting 'ice_servers.0.credential'" in refused.stderr and "refused" in refused.stderr


@pytest.mark.slow
def test_a_secret_that_cannot_be_read_stops_the_start(tmp_path: Path, openbao: OpenBao) -> None:
    openbao.put("ovos", webhook=whsec())
    vault = {"url": openbao.url, "token": openbao.root_token}
    closed = free_udp_port()  # nothing listens there over TCP either
    turn = [{"urls": ["turn:127.0.0.1:3478"], "credential": "vault:secret/ovos#nofield"}]
    cases: list[tuple[dict[str, Any], int, list[str]]] = [
        (  # every secret that cannot be read is named, each with why
            {
                "sip": {
                    "webhook_secret": "vault:secret/missing#webhook",
                    "webhook_previous_secret": "env:OVOS_TEST_UNSET_SECRET",
                },
                "ice_servers": turn,
                "opa_url": "http://127.0.0.1:9",
                "opa_token": f"file:{tmp_path / 'absent'}",
                "vault": vault,
            },
            1,
            [
                "setting 'sip.webhook_secret' (vault:secret/missing#webhook): no such secret",
                "setting 'sip.webhook_previous_secret' (env:OVOS_TEST_UNSET_SECRET): the environment "
                "variable OVOS_TEST_UNSET_SECRET is not set",
                "setting 'ice_servers.0.credential' (vault:secret/ovos#nofield): the secret secret/ovos "
                "has no field 'nofield'",
                "setting 'opa_token' (file:",
            ],
        ),
        (
            {
                "opa_url": "http://127.0.0.1:9",
                "opa_token": "vault:secret/ovos#webhook",
                "vault": {**vault, "url": f"http://127.0.0.1:{closed}"},
            },
            1,
            ["setting 'opa_token'", "cannot reach Vault"],
        ),
        (
            {"sip": {"webhook_secret": "vault:secret/ovos"}},
            2,
            ["invalid setting 'sip.webhook_secret'", "expected vault:MOUNT/PATH#FIELD"],
        ),
    ]
    for n, (settings, code, said) in enumerate(cases):
        config = tmp_path / f"bad-{n}.json"
        config.write_text(json.dumps(settings))
        done = cli("serve", "--port", "0", "--config", str(config), data_dir=tmp_path / f"d{n}", check=False)
        assert done.returncode == code, (settings, done.stderr)
        for words in said:
            assert words in done.stderr, (settings, done.stderr)
        assert "listening on" not in done.stdout and "Traceback" not in done.stderr


def test_references_are_parsed_and_malformed_ones_name_the_setting() -> None:
    assert parse_reference("whsec_abc").kind == "literal"
    assert parse_reference("https://not-a-reference").kind == "literal"
    vault = parse_reference("vault:kv/apps/ovos#webhook")
    assert (vault.kind, vault.target, vault.field) == ("vault", "kv/apps/ovos", "webhook")
    for bad, setting in [
        ({"opa_url": "http://opa", "opa_token": "env:"}, "opa_token"),
        ({"opa_url": "http://opa", "opa_token": "env:1BAD"}, "opa_token"),
        ({"opa_token": "env:OPA_TOKEN"}, ""),
        ({"sip": {"webhook_secret": "file:"}}, "sip.webhook_secret"),
        ({"ice_servers": [{"urls": ["turn:h"], "credential": "vault:secret#f"}]}, "ice_servers.0.credential"),
        ({"vault": {"secret_id": "vault:a/b#c", "role_id": "r"}}, "vault.secret_id"),
        ({"vault": {"role_id": "r"}}, "vault"),
        ({"tls_key_password": "x"}, "tls_key_password"),
    ]:
        with pytest.raises(ValidationError) as raised:
            GatewaySettings.model_validate(bad)
        where = {".".join(str(p) for p in e["loc"]) for e in raised.value.errors()}
        assert where & {setting, ""}, (bad, where)


def test_a_secret_value_keeps_the_replaced_one_for_the_overlap_only() -> None:
    value = SecretValue("sip.webhook_secret", parse_reference("env:X"))
    assert value.update("one") and value.previous_within(3600) is None
    assert value.update("two") and value.value == "two"
    assert value.previous_within(3600) == "one"
    assert value.previous_within(0) is None
    assert not value.update("two")
    assert "two" not in repr(value) and "one" not in repr(value)


@pytest.mark.slow
def test_an_encrypted_tls_key_opens_with_a_referenced_passphrase(tmp_path: Path) -> None:
    from cryptography.hazmat.primitives import serialization

    from ovos_realtime_gateway.tls import ensure_self_signed

    from .test_tls_and_metrics import _healthz_from_python

    cert, plain_key = ensure_self_signed(tmp_path / "made", ["127.0.0.1"])
    passphrase = secrets.token_urlsafe(16)
    key = serialization.load_pem_private_key(plain_key.read_bytes(), None)
    encrypted = tmp_path / "key.pem"
    encrypted.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.BestAvailableEncryption(passphrase.encode()),
        )
    )
    settings = {
        "tls_cert": str(cert),
        "tls_key": str(encrypted),
        "tls_key_password": "env:OVOS_TEST_TLS_PASS",
    }
    gateway, _ = configured_gateway(tmp_path, settings, "x", "tls", env={"OVOS_TEST_TLS_PASS": passphrase})
    with gateway:
        assert _healthz_from_python(gateway.base_url, cert) == 200
    _never_logged(gateway, passphrase)


@pytest.mark.slow
async def test_the_opa_token_is_sent_and_follows_its_rotation(tmp_path: Path) -> None:
    """No OPA server ships on PyPI or Debian: a stand-in answers OPA's decision API on loopback,
    allowing only requests that carry the token it currently expects."""
    first, second = secrets.token_urlsafe(16), secrets.token_urlsafe(16)
    expected = {"token": first}

    async def decide(request: web.Request) -> web.Response:
        if request.headers.get("Authorization") != f"Bearer {expected['token']}":
            return web.json_response({"code": "unauthorized"}, status=401)
        return web.json_response({"result": {"allow": True, "reason": ""}})

    runner, opa = await serve_post(OPA_DECISION_PATH, decide)
    token_file = tmp_path / "opa.token"
    token_file.write_text(first)
    settings = {"opa_url": opa, "opa_token": f"file:{token_file}", "vault": {"refresh_seconds": 0.5}}
    gateway, key = await asyncio.to_thread(configured_gateway, tmp_path, settings, "p", "opa")
    try:
        async with gateway:
            models = f"{gateway.api_base}/models"
            assert (await asyncio.to_thread(http, "GET", models, key=key)).status == 200
            expected["token"] = second  # OPA's token rotated: the old one is refused ...
            assert (await asyncio.to_thread(http, "GET", models, key=key)).status == 503
            token_file.write_text(second)  # ... until the gateway re-reads it
            deadline = asyncio.get_running_loop().time() + ROTATION_SEEN_WITHIN_S
            while (await asyncio.to_thread(http, "GET", models, key=key)).status != 200:
                assert asyncio.get_running_loop().time() < deadline, "the new OPA token was never sent"
                await asyncio.sleep(0.2)
        _never_logged(gateway, first, second)
    finally:
        await runner.cleanup()
