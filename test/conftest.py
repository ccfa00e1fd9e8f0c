"""Shared fixtures: one real gateway process on loopback with two projects' keys."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import openai
import pytest

from ovos_realtime_gateway.store import SqliteStore, Store

from .gateway_process import GatewayProcess, create_key
from .postgres_server import PostgresServer


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


SdkFactory = Callable[..., openai.OpenAI]


@pytest.fixture
def make_sdk() -> Iterator[SdkFactory]:
    """Builds real `openai` SDK clients (retries off: one call, one request); closes them after."""
    made: list[openai.OpenAI] = []

    def make(base_url: str, api_key: str, **options: object) -> openai.OpenAI:
        sdk = openai.OpenAI(base_url=base_url, api_key=api_key, max_retries=0, **options)  # type: ignore[arg-type]
        made.append(sdk)
        return sdk

    yield make
    for sdk in made:
        sdk.close()


@pytest.fixture
def client(gateway: GatewayProcess, alpha_key: str, make_sdk: SdkFactory) -> openai.OpenAI:
    """The SDK pointed at the shared gateway with project alpha's key."""
    return make_sdk(gateway.api_base, alpha_key)


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresServer]:
    """One throwaway PostgreSQL cluster for the session (started by the first test that asks)."""
    with PostgresServer() as server:
        yield server


@pytest.fixture(params=["sqlite", "postgresql"])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Store]:
    """A migrated, empty store of each backend: the same tests hold for both."""
    made: Store
    if request.param == "sqlite":
        made = SqliteStore(tmp_path / "data")
    else:
        from ovos_realtime_gateway.store.postgres import PostgresStore

        # several pooled connections from the start, as a busy gateway has: concurrency is real
        made = PostgresStore(request.getfixturevalue("postgres").create_database(), min_size=4)
    await made.migrate()
    yield made
    await made.close()
