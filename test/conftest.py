"""Shared fixtures: one real gateway process on loopback with two projects' keys; the loop guards
(leaked tasks, blocking calls) around every async test."""

from __future__ import annotations

import inspect
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import openai
import pytest

from ovos_realtime_gateway.ovos.stack import OvosStack
from ovos_realtime_gateway.store import SqliteStore, Store

from .gateway_process import GatewayProcess, create_key
from .loop_guards import guarded_loop
from .postgres_server import PostgresServer
from .redis_server import RedisServer


@pytest.fixture(autouse=True)
def loop_guards(request: pytest.FixtureRequest) -> None:
    """Every coroutine test runs under `guarded_loop` (set up first, so checked last)."""
    if inspect.iscoroutinefunction(getattr(request, "function", None)):
        request.getfixturevalue("_guarded_loop")


@pytest.fixture
async def _guarded_loop(request: pytest.FixtureRequest) -> AsyncIterator[None]:
    watch_blocking = request.node.get_closest_marker("loop_may_block") is None
    async for _ in guarded_loop(watch_blocking):
        yield


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
        sdk = openai.OpenAI(base_url=base_url, api_key=api_key, max_retries=0, **options)  # type: ignore[arg-type]  # **options: object into the SDK's typed keywords
        made.append(sdk)
        return sdk

    yield make
    for sdk in made:
        sdk.close()


@pytest.fixture
def client(gateway: GatewayProcess, alpha_key: str, make_sdk: SdkFactory) -> openai.OpenAI:
    """The SDK pointed at the shared gateway with project alpha's key."""
    return make_sdk(gateway.api_base, alpha_key)


@pytest.fixture(scope="module")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    """A redis-server of the module's own (its tests freeze, kill and restart it)."""
    with RedisServer(tmp_path_factory.mktemp("redis")) as server:
        yield server


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresServer]:
    """One throwaway PostgreSQL cluster for the session (started by the first test that asks)."""
    with PostgresServer() as server:
        yield server


@pytest.fixture(params=["sqlite", "postgresql"])
def store_url(request: pytest.FixtureRequest) -> str | None:
    """None for the embedded sqlite store, else a new empty PostgreSQL database (its cluster
    started, when first asked, outside any test's event loop: it waits on a process)."""
    if request.param == "sqlite":
        return None
    url: str = request.getfixturevalue("postgres").create_database()
    return url


@pytest.fixture
async def store(store_url: str | None, tmp_path: Path) -> AsyncIterator[Store]:
    """A migrated, empty store of each backend: the same tests hold for both."""
    made: Store
    if store_url is None:
        made = SqliteStore(tmp_path / "data")
    else:
        from ovos_realtime_gateway.store.postgres import PostgresStore

        # several pooled connections from the start, as a busy gateway has: concurrency is real
        made = PostgresStore(store_url, min_size=4)
    await made.migrate()
    yield made
    await made.close()


@pytest.fixture(scope="session")
def ovos(tmp_path_factory: pytest.TempPathFactory) -> Iterator[OvosStack]:
    """One OVOS stack (messagebus + ovos-core with the demo's skills) for the whole run, shared by
    every module that only asks it questions (each through its own gateway and sessions): the
    German resources and the `Marvin` persona (answered by the offline failure solver) are for
    test_ovos_answers and change nothing for English questions. Tests that stop, kill or
    reconfigure a stack start their own."""
    personas = {"Marvin": {"solvers": ["ovos-solver-failure-plugin"]}}
    root = tmp_path_factory.mktemp("ovos")
    with OvosStack(root, extra_config={"secondary_langs": ["de-DE"]}, personas=personas) as stack:
        stack.wait_ready(180)
        yield stack
