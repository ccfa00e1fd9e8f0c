"""Bad REST input gets the right 4xx envelope, never a 5xx, and writes nothing."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator

import pytest

from .gateway_process import GatewayProcess, HttpResult, http

TABLES = ("client_secrets", "sessions")


def _counts(gateway: GatewayProcess) -> dict[str, int]:
    with sqlite3.connect(gateway.data_dir / "ovos-realtime.db") as db:
        return {t: db.execute(f"select count(*) from {t}").fetchone()[0] for t in TABLES}


@pytest.fixture
def unchanged_store(gateway: GatewayProcess) -> Iterator[None]:
    """Fails the test if it wrote any client secret or session."""
    before = _counts(gateway)
    yield
    assert _counts(gateway) == before, "a rejected request must not write anything"


def _post(gateway: GatewayProcess, key: str, **kwargs: object) -> HttpResult:
    return http("POST", f"{gateway.api_base}/realtime/client_secrets", key=key, **kwargs)  # type: ignore[arg-type]  # **kwargs: object into typed keywords


def _error(result: HttpResult, status: int) -> dict[str, object]:
    assert result.status == status, result.body
    body = result.json()
    assert set(body) == {"error"}
    assert set(body["error"]) == {"message", "type", "param", "code"}
    assert result.headers["x-request-id"].startswith("req_")
    error: dict[str, object] = body["error"]
    return error


@pytest.mark.usefixtures("unchanged_store")
class TestRejectedBodies:
    def test_malformed_json(self, gateway: GatewayProcess, alpha_key: str) -> None:
        error = _error(
            _post(gateway, alpha_key, body=b'{"session": ', headers={"Content-Type": "application/json"}), 400
        )
        assert error["code"] == "invalid_json"

    def test_non_object_json(self, gateway: GatewayProcess, alpha_key: str) -> None:
        error = _error(_post(gateway, alpha_key, json_body=[1, 2]), 400)
        assert error["code"] == "invalid_type"

    @pytest.mark.parametrize("depth", [100, 50_000])
    def test_json_nested_deep_is_refused(self, gateway: GatewayProcess, alpha_key: str, depth: int) -> None:
        """A hostile probe's 50k-deep bodies were 500s (RecursionError)."""
        body = b'{"metadata": ' + b"[" * depth + b"]" * depth + b"}"
        error = _error(
            _post(gateway, alpha_key, body=body, headers={"Content-Type": "application/json"}), 400
        )
        assert error["code"] == "invalid_json" and "nested deeper than 64" in str(error["message"])

    def test_a_lone_surrogate_is_refused(self, gateway: GatewayProcess, alpha_key: str) -> None:
        """`\\ud800` decodes in Python but no UTF-8 store can write it: it was a 500 from sqlite."""
        body = b'{"session": {"type": "realtime", "instructions": "hello \\ud800 there"}}'
        error = _error(
            _post(gateway, alpha_key, body=body, headers={"Content-Type": "application/json"}), 400
        )
        assert error["code"] == "invalid_json" and "surrogate" in str(error["message"])

    def test_nan_is_not_json(self, gateway: GatewayProcess, alpha_key: str) -> None:
        body = b'{"expires_after": {"seconds": NaN}}'
        error = _error(
            _post(gateway, alpha_key, body=body, headers={"Content-Type": "application/json"}), 400
        )
        assert error["code"] == "invalid_json"

    @pytest.mark.parametrize(
        ("body", "param"),
        [
            ({"expires_after": {"seconds": "600"}}, "expires_after.seconds"),
            ({"session": {"type": "realtime", "instructions": 5}}, "session.instructions"),
            ({"session": {"type": "realtime", "tools": {"name": "x"}}}, "session.tools"),
            (
                {"session": {"type": "realtime", "audio": {"output": {"speed": "fast"}}}},
                "session.audio.output.speed",
            ),
            ({"session": "realtime"}, "session"),
        ],
    )
    def test_wrong_types_name_the_param(
        self, gateway: GatewayProcess, alpha_key: str, body: dict[str, object], param: str
    ) -> None:
        error = _error(_post(gateway, alpha_key, json_body=body), 400)
        assert error["code"] == "invalid_type"
        assert error["param"] == param
        assert f"'{param}'" in str(error["message"])

    @pytest.mark.parametrize(
        ("body", "param"),
        [
            ({"surprise": 1}, "surprise"),
            ({"session": {"type": "realtime", "bogus_field": 1}}, "session.bogus_field"),
            (
                {"session": {"type": "realtime", "audio": {"input": {"nope": True}}}},
                "session.audio.input.nope",
            ),
            ({"session": {"type": "realtime", "modalities": ["text"]}}, "session.modalities"),
        ],
    )
    def test_unknown_fields(
        self, gateway: GatewayProcess, alpha_key: str, body: dict[str, object], param: str
    ) -> None:
        error = _error(_post(gateway, alpha_key, json_body=body), 400)
        assert error["code"] == "unknown_parameter"
        assert error["param"] == param
        assert error["message"] == f"Unknown parameter: '{param}'."

    def test_missing_session_type(self, gateway: GatewayProcess, alpha_key: str) -> None:
        error = _error(_post(gateway, alpha_key, json_body={"session": {"model": "gpt-realtime"}}), 400)
        assert (error["code"], error["param"]) == ("missing_required_parameter", "session.type")

    def test_invalid_enum_value(self, gateway: GatewayProcess, alpha_key: str) -> None:
        body = {"session": {"type": "realtime", "output_modalities": ["video"]}}
        error = _error(_post(gateway, alpha_key, json_body=body), 400)
        assert error["code"] == "invalid_value"
        assert error["param"] == "session.output_modalities[0]"
        assert "'text'" in str(error["message"]) and "'audio'" in str(error["message"])

    def test_body_of_20_mb(self, gateway: GatewayProcess, alpha_key: str) -> None:
        body = b'{"session": {"type": "realtime", "instructions": "' + b"x" * 20_000_000 + b'"}}'
        error = _error(
            _post(gateway, alpha_key, body=body, headers={"Content-Type": "application/json"}), 413
        )
        assert error["code"] == "request_too_large"

    def test_wrong_content_type(self, gateway: GatewayProcess, alpha_key: str) -> None:
        result = _post(gateway, alpha_key, body=b"session=realtime", headers={"Content-Type": "text/plain"})
        error = _error(result, 415)
        assert error["code"] == "unsupported_content_type"
        assert "text/plain" in str(error["message"])

    def test_deterministic_failures_are_not_retried_by_sdks(
        self, gateway: GatewayProcess, alpha_key: str
    ) -> None:
        result = _post(gateway, alpha_key, json_body={"surprise": 1})
        assert result.headers.get("x-should-retry") == "false"


def test_unknown_route_is_an_envelope(gateway: GatewayProcess, alpha_key: str) -> None:
    error = _error(http("GET", f"{gateway.api_base}/nothing/here", key=alpha_key), 404)
    assert error["message"] == "Invalid URL (GET /v1/nothing/here)"


def test_wrong_method_is_an_envelope(gateway: GatewayProcess, alpha_key: str) -> None:
    result = http("GET", f"{gateway.api_base}/realtime/client_secrets", key=alpha_key)
    error = _error(result, 405)
    assert error["code"] == "method_not_allowed"
    assert "POST" in result.headers["allow"]


def test_the_connection_survives_bad_input(gateway: GatewayProcess, alpha_key: str) -> None:
    """After a burst of bad requests the same server still mints secrets."""
    for _ in range(5):
        _post(gateway, alpha_key, body=b"{", headers={"Content-Type": "application/json"})
    assert _post(gateway, alpha_key, json_body={}).status == 200
