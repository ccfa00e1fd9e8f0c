"""The `realtime.call.incoming` webhook, signed as OpenAI signs it (Standard Webhooks)."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import json
import logging
import secrets
import time
from collections.abc import Sequence
from typing import Any

import aiohttp

log = logging.getLogger("ovos_realtime.sip")
ATTEMPTS = 3


def signature(secret: str, webhook_id: str, timestamp: int, body: str) -> str:
    """`v1,<base64 HMAC-SHA256>` of `id.timestamp.body`; a `whsec_` secret is base64 key material."""
    key = base64.b64decode(secret[6:]) if secret.startswith("whsec_") else secret.encode()
    digest = hmac.new(key, f"{webhook_id}.{timestamp}.{body}".encode(), hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


def incoming_call_event(call_id: str, sip_headers: list[tuple[str, str]]) -> dict[str, Any]:
    return {
        "id": "evt_" + secrets.token_hex(16),
        "object": "event",
        "created_at": int(time.time()),
        "type": "realtime.call.incoming",
        "data": {
            "call_id": call_id,
            "sip_headers": [{"name": name, "value": value} for name, value in sip_headers],
            "sip_media_security": "rtp",
        },
    }


async def deliver(url: str, secrets: Sequence[str], event: dict[str, Any]) -> bool:
    """POST the event (a few tries, backing off); True once the app answered 2xx. Signed with each
    of `secrets` (space-separated signatures, as Standard Webhooks does while a secret rotates)."""
    body = json.dumps(event, separators=(",", ":"))
    timestamp = int(time.time())
    headers = {
        "Content-Type": "application/json",
        "webhook-id": event["id"],
        "webhook-timestamp": str(timestamp),
    }
    if secrets:
        headers["webhook-signature"] = " ".join(signature(s, event["id"], timestamp, body) for s in secrets)
    timeout = aiohttp.ClientTimeout(total=10)
    async with aiohttp.ClientSession(timeout=timeout) as client:
        for attempt in range(ATTEMPTS):
            try:
                async with client.post(url, data=body.encode(), headers=headers) as answer:
                    if 200 <= answer.status < 300:
                        return True
                    log.warning("webhook %s answered %s", url, answer.status)
            except (aiohttp.ClientError, TimeoutError) as exc:
                log.warning("webhook %s failed: %s", url, exc)
            if attempt + 1 < ATTEMPTS:
                await asyncio.sleep(0.5 * 2**attempt)
    return False
