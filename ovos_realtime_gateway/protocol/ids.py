"""Minting of the identifiers OpenAI's API uses (`sess_…`, `ek_…`, `req_…`, …)."""

from __future__ import annotations

import os
import secrets

_ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"


def random_token(length: int = 21) -> str:
    """Return `length` random base-62 characters (OpenAI ids use 21 after the prefix)."""
    raw = os.urandom(length)
    return "".join(_ALPHABET[b % 62] for b in raw)


def request_id() -> str:
    """`req_` + 32 hex digits, as OpenAI's `x-request-id`."""
    return "req_" + secrets.token_hex(16)


def session_id() -> str:
    return "sess_" + random_token()


def project_id() -> str:
    return "proj_" + random_token(24)


def key_id() -> str:
    """Public id of an API key (`key_` + 16 hex), also embedded in the secret itself."""
    return "key_" + secrets.token_hex(8)


def client_secret_id() -> str:
    return "cs_" + secrets.token_hex(8)


def audit_id() -> str:
    return "aud_" + random_token()


def event_id() -> str:
    return "event_" + random_token()


def item_id() -> str:
    return "item_" + random_token()


def response_id() -> str:
    return "resp_" + random_token()


def conversation_id() -> str:
    return "conv_" + random_token()


def call_id() -> str:
    """`rtc_` + 32 hex digits, as OpenAI's WebRTC and SIP call ids."""
    return "rtc_" + secrets.token_hex(16)
