"""Where the device is, as OVOS sessions carry it: skills answer "what time is it" in the
session's time zone (`Session.location_preferences`), not the gateway process's OVOS default
(Lawrence, Kansas, when nothing configures one)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

ZONEINFO = "zoneinfo/"


def machine_timezone() -> str:
    """The machine's IANA time zone: `TZ`, /etc/timezone, or where /etc/localtime points; UTC."""
    candidates = [os.environ.get("TZ", "").lstrip(":")]
    with_file = Path("/etc/timezone")
    if with_file.is_file():
        candidates.append(with_file.read_text().strip())
    localtime = Path("/etc/localtime")
    if localtime.is_symlink():
        target = str(localtime.resolve())
        if ZONEINFO in target:
            candidates.append(target.split(ZONEINFO, 1)[1])
    for name in candidates:
        if name and is_timezone(name):
            return name
    return "UTC"


def is_timezone(name: str) -> bool:
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return False
    return name in available_timezones() or name == "UTC"


def with_timezone(location: dict[str, Any] | None, timezone: str, city: str | None = None) -> dict[str, Any]:
    """An OVOS `location` block with its time zone (and city name) replaced."""
    out = dict(location or {})
    offset = ZoneInfo(timezone).utcoffset(_now())
    millis = int(offset.total_seconds() * 1000) if offset is not None else 0
    out["timezone"] = {"code": timezone, "name": timezone, "offset": millis, "dstOffset": 0}
    if city:
        state = (out.get("city") or {}).get("state") or {}
        out["city"] = {"code": city, "name": city, "state": state}
    return out


def _now() -> Any:
    import datetime

    return datetime.datetime.now(datetime.timezone.utc).replace(tzinfo=None)
