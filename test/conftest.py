"""Shared fixtures: one real gateway process on loopback with two projects' keys."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import openai
import pytest

from .gateway_process import GatewayProcess, create_key


@pytest.fixture(scope="session")
def shared_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("gateway") / "data"


@pytest.fixture(scope="session")
def gateway(shared_dir: Path) -> Iterator[GatewayProcess]:
    with GatewayProcess(shared_dir) as process:
        yield process


@pytest.fixture(scope="session")
def alpha_key(gateway: GatewayProcess) -> str:
    return create_key(gateway.data_dir, "alpha")


@pytest.fixture(scope="session")
def beta_key(gateway: GatewayProcess) -> str:
    return create_key(gateway.data_dir, "beta")


@pytest.fixture
def client(gateway: GatewayProcess, alpha_key: str) -> openai.OpenAI:
    """The real `openai` SDK pointed at the gateway, retries off so each call is one request."""
    return openai.OpenAI(base_url=gateway.api_base, api_key=alpha_key, max_retries=0)
