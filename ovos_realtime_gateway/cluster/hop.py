"""The signed hop from one replica to another: a request for a call another replica holds is
replayed to it with headers signed with `cluster.hop_secret`.

The signature is an HMAC-SHA256 over the method, the path with its query, the hop's time, the
client's address, the sending replica, and the SHA-256 of the body and of the `Authorization` header
(a captured hop cannot be replayed with another key, to skip the rate limit or borrow the client's
address). A replica believes the hop's client
address, and does not count the request against the rate limit again, only when the signature is
right and at most `MAX_AGE_S` old; a hop header without a valid signature refuses the request."""

from __future__ import annotations

import hashlib
import hmac
import time
from collections.abc import Mapping
from dataclasses import dataclass

from ..security.secret_refs import SecretValue

TIME = "X-OVOS-Hop-Time"
CLIENT = "X-OVOS-Hop-Client"
FROM = "X-OVOS-Hop-From"
SIGNATURE = "X-OVOS-Hop-Signature"
HEADERS = (TIME, CLIENT, FROM, SIGNATURE)
MAX_AGE_S = 30.0  # a hop older (or further ahead) than this is refused: replayed, or a clock far off
SECRET_OVERLAP_S = 300.0  # after the hop secret changed, the previous one is still accepted this long


class HopRefused(Exception):
    """Hop headers without a valid, fresh signature."""


@dataclass(frozen=True)
class Hop:
    """A verified hop: the client's address and the replica that sent it."""

    client: str
    sender: str


def _message(  # noqa: PLR0913 - every part of what is signed
    method: str, path_qs: str, at: str, client: str, sender: str, body: bytes, authorization: str
) -> bytes:
    digest = hashlib.sha256(body).hexdigest()
    credentials = hashlib.sha256(authorization.encode()).hexdigest()
    return "\n".join((method.upper(), path_qs, at, client, sender, digest, credentials)).encode()


def _mac(secret: str, message: bytes) -> str:
    return hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


class HopSigner:
    """Signs the hops this replica sends and checks the ones it receives (`hop_secret`)."""

    def __init__(self, secret: SecretValue | None, replica_id: str) -> None:
        self.secret = secret
        self.replica_id = replica_id

    def sign(  # noqa: PLR0913
        self,
        method: str,
        path_qs: str,
        body: bytes,
        client: str,
        authorization: str = "",
        now: float | None = None,
    ) -> dict[str, str]:
        """The hop headers for a request carrying `authorization` (its `Authorization` header)."""
        if self.secret is None:
            raise HopRefused("cluster.hop_secret is not set: this gateway forwards nothing")
        at = str(int(now if now is not None else time.time()))
        message = _message(method, path_qs, at, client, self.replica_id, body, authorization)
        mac = _mac(self.secret.value, message)
        return {TIME: at, CLIENT: client, FROM: self.replica_id, SIGNATURE: mac}

    def verify(
        self,
        method: str,
        path_qs: str,
        body: bytes,
        headers: Mapping[str, str],
        now: float | None = None,
    ) -> Hop | None:
        """None without hop headers; the hop when they are signed and fresh; else `HopRefused`."""
        if not any(name in headers for name in HEADERS):
            return None
        values = [headers.get(name) for name in HEADERS]
        at, client, sender, signature = values
        if at is None or client is None or sender is None or signature is None:
            raise HopRefused("incomplete hop headers")
        if self.secret is None:
            raise HopRefused("this gateway is not in a cluster (no cluster.hop_secret)")
        try:
            age = abs((now if now is not None else time.time()) - int(at))
        except ValueError:
            raise HopRefused("unreadable hop time") from None
        if age > MAX_AGE_S:
            raise HopRefused(f"stale hop ({age:.0f} s old)")
        message = _message(method, path_qs, at, client, sender, body, headers.get("Authorization", ""))
        secrets = [self.secret.value, self.secret.previous_within(SECRET_OVERLAP_S)]
        if not any(s and hmac.compare_digest(_mac(s, message), signature) for s in secrets):
            raise HopRefused("bad hop signature")
        return Hop(client, sender)
