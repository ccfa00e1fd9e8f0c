"""`rate_limits` and `project_limits`: what one project (and one key) may do per minute and at once."""

from __future__ import annotations

from pydantic import Field

from .section import Section


class RateLimits(Section):
    """Limits for one project (the defaults apply to every project without an override)."""

    requests_per_minute: int = Field(600, ge=1, description="REST requests per minute per project.")
    requests_per_minute_per_key: int = Field(300, ge=1, description="REST requests per minute per key.")
    concurrent_sessions: int = Field(20, ge=1, description="Open realtime sessions per project.")
    concurrent_sessions_per_key: int = Field(10, ge=1, description="Open realtime sessions per key.")
    max_session_seconds: int = Field(3600, ge=10, le=86_400, description="Realtime session lifetime cap.")
