"""The server under test: the one at `--server-url`, or a `switchboard serve` the suite starts itself.

Options (registered in tests/conftest.py): `--server-url ws://HOST:PORT` (with `--api-key` and
`--secret`, both required then), `--supervisor` (a supervisor id of the server's config, `sam` by
default), `--max-timer-wait` (seconds a test may wait on one of the server's timers) and
`--extensions` (also check this implementation's extensions: the tests marked `extension`; always on
when the suite starts its own server, which is this implementation).
"""

from __future__ import annotations

import secrets
from collections.abc import AsyncIterator, Iterator

import httpx
import pytest

from tests.conformance.harness import Center, Harness, Target
from tests.conformance.servers import ServerProcess, center_toml


def extensions_enabled(config: pytest.Config) -> bool:
    """Extensions are checked against the suite's own server, and against another one on request."""
    return bool(config.getoption("--extensions")) or not config.getoption("--server-url")


@pytest.hookimpl(tryfirst=True)
def pytest_runtest_setup(item: pytest.Item) -> None:
    if item.get_closest_marker("extension") is not None and not extensions_enabled(item.config):
        pytest.skip("checks an extension of this implementation, beyond the DESIGN.md contract (run with --extensions)")


@pytest.fixture(scope="session")
def target(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Target]:
    url: str | None = request.config.getoption("--server-url")
    supervisor: str = request.config.getoption("--supervisor")
    max_wait: float = request.config.getoption("--max-timer-wait")
    extensions = extensions_enabled(request.config)
    if url:
        api_key, secret = request.config.getoption("--api-key"), request.config.getoption("--secret")
        if not api_key or not secret:
            pytest.exit("--server-url needs --api-key and --secret (the server's ingest key and token secret)", 4)
        url = url.rstrip("/")
        http = (
            "https://" + url.removeprefix("wss://")
            if url.startswith("wss://")
            else "http://" + url.removeprefix("ws://")
        )
        yield Target(
            http=http,
            ws=url,
            api_key=api_key,
            secret=secret,
            supervisor=supervisor,
            max_timer_wait=max_wait,
            extensions=extensions,
        )
        return
    workdir = tmp_path_factory.mktemp("conformance")
    config = workdir / "center.toml"
    config.write_text(center_toml())
    secret, api_key = "conformance-" + secrets.token_hex(16), "key-" + secrets.token_hex(8)
    server = ServerProcess(config, secret, api_key, workdir / "server.log")
    server.start()
    try:
        yield Target(
            http=server.http,
            ws=server.ws,
            api_key=api_key,
            secret=secret,
            supervisor=supervisor,
            max_timer_wait=max_wait,
            extensions=extensions,
            own=workdir,
        )
    finally:
        server.stop()


@pytest.fixture(scope="session")
def center(target: Target) -> Center:
    headers = {"Authorization": f"Bearer {target.api_key}"}
    with httpx.Client(base_url=target.http, headers=headers, timeout=10) as client:
        queues = client.get("/v1/queues").json()
        agents = client.get("/v1/agents").json()
    assert isinstance(queues, list) and isinstance(agents, list)
    return Center(
        queues={q["id"]: q for q in queues},
        agents={a["id"]: a for a in agents},
        order=[a["id"] for a in agents],
    )


@pytest.fixture
async def api(target: Target) -> AsyncIterator[httpx.AsyncClient]:
    headers = {"Authorization": f"Bearer {target.api_key}"}
    async with httpx.AsyncClient(base_url=target.http, headers=headers, timeout=10) as client:
        yield client


@pytest.fixture
async def h(target: Target, center: Center, api: httpx.AsyncClient) -> AsyncIterator[Harness]:
    harness = Harness(target, center, api)
    try:
        yield harness
    finally:
        await harness.cleanup()


@pytest.fixture
def own_server(target: Target) -> Iterator[ServerProcessFactory]:
    """Start dedicated servers like the suite's own (for tests that take a node down); own server only."""
    if target.own is None:
        pytest.skip("needs a server process of its own: only when the suite starts the server (no --server-url)")
    factory = ServerProcessFactory(target)
    try:
        yield factory
    finally:
        factory.stop_all()


class ServerProcessFactory:
    def __init__(self, target: Target) -> None:
        self.target = target
        self.started: list[ServerProcess] = []

    def start(self, name: str, *, max_connections: int = 20_000, outbound_queue: int = 1000) -> ServerProcess:
        workdir = self.target.own
        assert workdir is not None
        config = workdir / f"{name}.toml"
        config.write_text(center_toml(max_connections=max_connections, outbound_queue=outbound_queue))
        server = ServerProcess(config, self.target.secret, self.target.api_key, workdir / f"{name}.log")
        server.start()
        self.started.append(server)
        return server

    def stop_all(self) -> None:
        for server in self.started:
            server.stop()
