"""OpenAI-shaped errors: one exception type rendered as the REST envelope (and, later, the `error` event).

The REST envelope is `{"error": {"message", "type", "param", "code"}}`; the Python SDK picks its
exception class from the HTTP status alone and copies `code`/`param`/`type` from the body.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

INVALID_REQUEST = "invalid_request_error"
SERVER_ERROR = "server_error"


class ApiError(Exception):
    """An error a client should see, with OpenAI's status, type, code and param."""

    def __init__(
        self,
        status: int,
        message: str,
        *,
        type: str = INVALID_REQUEST,
        code: str | None = None,
        param: str | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.type = type
        self.code = code
        self.param = param
        self.headers: dict[str, str] = dict(headers or {})

    def body(self) -> dict[str, Any]:
        """The REST error envelope."""
        return {
            "error": {
                "message": self.message,
                "type": self.type,
                "param": self.param,
                "code": self.code,
            }
        }

    def __repr__(self) -> str:
        return f"ApiError({self.status}, {self.code!r}, {self.message!r}, param={self.param!r})"


def quote_list(values: Iterable[str]) -> str:
    """`'a', 'b', and 'c'` as OpenAI lists supported values."""
    quoted = [f"'{v}'" for v in values]
    if len(quoted) <= 1:
        return "".join(quoted)
    if len(quoted) == 2:
        return f"{quoted[0]} and {quoted[1]}"
    return ", ".join(quoted[:-1]) + f", and {quoted[-1]}"


def mask_key(key: str) -> str:
    """Mask a presented key as OpenAI does: a short head and tail, stars between."""
    if len(key) <= 12:
        return "*" * len(key)
    return f"{key[:6]}{'*' * min(len(key) - 10, 40)}{key[-4:]}"


def missing_credentials() -> ApiError:
    return ApiError(
        401,
        "Missing bearer or basic authentication in header",
        code=None,
    )


def invalid_metrics_token(presented: str | None) -> ApiError:
    """`GET /metrics` without the gateway's `metrics_token` (missing or wrong)."""
    message = (
        "Missing bearer authentication in header: /metrics needs the gateway's metrics_token."
        if presented is None
        else f"Incorrect metrics token provided: {mask_key(presented)}."
    )
    return ApiError(
        401,
        message,
        code=None if presented is None else "invalid_metrics_token",
        headers={"WWW-Authenticate": 'Bearer realm="metrics"'},
    )


def invalid_api_key(presented: str) -> ApiError:
    return ApiError(
        401,
        f"Incorrect API key provided: {mask_key(presented)}. "
        "You can create a key with `ovos-realtime keys create --project NAME`.",
        code="invalid_api_key",
    )


def expired_client_secret() -> ApiError:
    return ApiError(401, "The client secret provided has expired.", code="invalid_api_key")


def revoked_client_secret() -> ApiError:
    return ApiError(
        401,
        "The client secret provided was minted by an API key that has been revoked or has expired.",
        code="invalid_api_key",
    )


def revoked_during_session() -> ApiError:
    """A live session, call or sideband whose key was revoked (or whose rotation grace ended)."""
    return ApiError(
        401,
        "The API key this session was opened with has been revoked or has expired; the session is closed.",
        code="invalid_api_key",
    )


def permission_denied(reason: str) -> ApiError:
    return ApiError(
        403,
        f"You have insufficient permissions for this operation. {reason}".strip(),
        code="insufficient_permissions",
    )


def not_found(what: str) -> ApiError:
    return ApiError(404, what, code="not_found")


def invalid_url(method: str, path: str) -> ApiError:
    return ApiError(404, f"Invalid URL ({method} {path})")


def method_not_allowed(method: str, path: str, allowed: Iterable[str]) -> ApiError:
    allow = ", ".join(sorted(allowed))
    return ApiError(
        405,
        f"Method {method} is not allowed for {path}. Allowed: {allow}.",
        code="method_not_allowed",
        headers={"allow": allow},
    )


def body_too_large(limit: int) -> ApiError:
    return ApiError(
        413,
        f"Request body too large. The maximum size is {limit} bytes.",
        code="request_too_large",
    )


def unsupported_content_type(got: str, expected: str = "application/json") -> ApiError:
    return ApiError(
        415,
        f"Unsupported content type: '{got}'. This API method only accepts '{expected}' requests, "
        f"but you specified the header 'Content-Type: {got}'. "
        "Please try again with a supported content type.",
        code="unsupported_content_type",
    )


def invalid_json(detail: str) -> ApiError:
    return ApiError(
        400,
        "We could not parse the JSON body of your request. The API expects a JSON payload, "
        f"but what was sent was not valid JSON ({detail}).",
        code="invalid_json",
    )


def rate_limited(scope: str, limit: int, retry_after_s: float) -> ApiError:
    seconds = max(1, int(retry_after_s + 0.999))
    return ApiError(
        429,
        f"Rate limit reached for requests per minute on {scope}: Limit {limit}. "
        f"Please try again in {seconds}s.",
        type="requests",
        code="rate_limit_exceeded",
        headers={"retry-after": str(seconds), "retry-after-ms": str(int(retry_after_s * 1000))},
    )


def internal_error() -> ApiError:
    return ApiError(
        500,
        "The server had an error while processing your request. Sorry about that! "
        "The request id in the x-request-id header identifies it in the server's logs.",
        type=SERVER_ERROR,
    )


STORE_RETRY_AFTER_S = 5


def store_unavailable() -> ApiError:
    """The store (PostgreSQL, or a locked sqlite file) does not answer for the moment: a 503 the
    SDKs retry after `Retry-After`."""
    return ApiError(
        503,
        f"The server cannot reach its store for the moment. Please try again in {STORE_RETRY_AFTER_S}s.",
        type=SERVER_ERROR,
        code="store_unavailable",
        headers={"retry-after": str(STORE_RETRY_AFTER_S)},
    )


def event_error(
    code: str | None,
    message: str,
    *,
    param: str | None = None,
    type: str = INVALID_REQUEST,
) -> ApiError:
    """An in-band WebSocket error (non-fatal): status is irrelevant there, 400 by convention."""
    return ApiError(400, message, type=type, code=code, param=param)
