"""The signed hop between replicas (`cluster/hop.py`): what one replica signs, another believes;
any change to the method, path, time, client, sender, body or `Authorization`, a stale time, a
wrong secret or a missing header is refused; a request without hop headers is no hop at all."""

from __future__ import annotations

import pytest

from ovos_realtime_gateway.cluster.hop import (
    CLIENT,
    FROM,
    MAX_AGE_S,
    SIGNATURE,
    TIME,
    Hop,
    HopRefused,
    HopSigner,
)
from ovos_realtime_gateway.security.gate import HOP_CLIENT, Caller
from ovos_realtime_gateway.security.secret_refs import SecretValue, parse_reference

NOW = 1_800_000_000.0
PATH = "/v1/realtime/calls/rtc_1/accept?x=1"
BODY = b'{"type":"realtime"}'


def _secret(value: str) -> SecretValue:
    return SecretValue("cluster.hop_secret", parse_reference(value), value)


AUTHORIZATION = "Bearer sk-proj-a"


def _signed(secret: str = "s3cret", **changes: str) -> dict[str, str]:
    signer = HopSigner(_secret(secret), "rep_aaaaaaaaaaaa")
    headers = signer.sign("POST", PATH, BODY, "10.0.0.7", AUTHORIZATION, now=NOW)
    return {"Authorization": AUTHORIZATION, **headers, **changes}


def test_a_signed_hop_is_believed() -> None:
    hop = HopSigner(_secret("s3cret"), "rep_bbbbbbbbbbbb").verify("POST", PATH, BODY, _signed(), now=NOW + 2)
    assert hop == Hop(client="10.0.0.7", sender="rep_aaaaaaaaaaaa")


def test_no_hop_headers_is_no_hop() -> None:
    assert HopSigner(_secret("s3cret"), "rep_b").verify("POST", PATH, BODY, {"Authorization": "x"}) is None
    assert HopSigner(None, "rep_b").verify("GET", PATH, b"", {}) is None


@pytest.mark.parametrize(
    ("method", "path", "body", "changes"),
    [
        ("GET", PATH, BODY, {}),  # another method
        ("POST", "/v1/realtime/calls/rtc_2/accept?x=1", BODY, {}),  # another call
        ("POST", PATH, b'{"type":"transcription"}', {}),  # another body
        ("POST", PATH, BODY, {CLIENT: "10.0.0.8"}),  # another client
        ("POST", PATH, BODY, {FROM: "rep_cccccccccccc"}),  # another sender
        ("POST", PATH, BODY, {TIME: str(int(NOW) + 1)}),  # another time
        ("POST", PATH, BODY, {SIGNATURE: "0" * 64}),  # a guessed signature
        ("POST", PATH, BODY, {"Authorization": "Bearer sk-proj-b"}),  # replayed with another key
    ],
)
def test_anything_changed_is_refused(method: str, path: str, body: bytes, changes: dict[str, str]) -> None:
    with pytest.raises(HopRefused, match="bad hop signature"):
        HopSigner(_secret("s3cret"), "rep_b").verify(method, path, body, _signed(**changes), now=NOW)


def test_stale_incomplete_or_unsigned_hops_are_refused() -> None:
    signer = HopSigner(_secret("s3cret"), "rep_b")
    with pytest.raises(HopRefused, match="stale"):
        signer.verify("POST", PATH, BODY, _signed(), now=NOW + MAX_AGE_S + 1)
    with pytest.raises(HopRefused, match="stale"):
        signer.verify("POST", PATH, BODY, _signed(), now=NOW - MAX_AGE_S - 1)  # from the future
    partial = _signed()
    del partial[SIGNATURE]
    with pytest.raises(HopRefused, match="incomplete"):
        signer.verify("POST", PATH, BODY, partial, now=NOW)
    with pytest.raises(HopRefused, match="bad hop signature"):
        signer.verify("POST", PATH, BODY, _signed(secret="another"), now=NOW)
    with pytest.raises(HopRefused, match="not in a cluster"):  # a gateway alone believes no hop
        HopSigner(None, "rep_b").verify("POST", PATH, BODY, _signed(), now=NOW)
    with pytest.raises(HopRefused, match="hop_secret is not set"):
        HopSigner(None, "rep_b").sign("POST", PATH, BODY, "10.0.0.7")


def test_the_previous_secret_is_accepted_while_the_new_one_spreads() -> None:
    secret = _secret("old-secret")
    signed_with_old = _signed(secret="old-secret")
    secret.update("new-secret")
    assert HopSigner(secret, "rep_b").verify("POST", PATH, BODY, signed_with_old, now=NOW) is not None


class _Request:
    method, path, remote = "POST", "/v1/models", "127.0.0.1"

    def __init__(self, values: dict[str, str]) -> None:
        self.headers = {"Authorization": "Bearer sk"}
        self.values = values

    def get(self, key: str, /) -> str | None:
        return self.values.get(key)


def test_the_gate_sees_the_hops_client_and_no_second_count() -> None:
    """Only a verified hop (the middleware sets HOP_CLIENT) changes what the gate sees."""
    assert Caller.of(_Request({})) == Caller("POST", "/v1/models", "127.0.0.1", "Bearer sk", hopped=False)
    hopped = Caller.of(_Request({HOP_CLIENT: "10.0.0.7"}))
    assert (hopped.remote, hopped.hopped) == ("10.0.0.7", True)
