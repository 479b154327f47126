"""Fixtures shared by every test module: private Redis servers."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.redis_server import RedisServer


@pytest.fixture(scope="session")
def shared_redis(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    """One private redis-server for the tests that only need one; each uses its own key prefix."""
    server = RedisServer(tmp_path_factory.mktemp("redis"))
    server.start()
    yield server
    server.stop()


@pytest.fixture
def private_redis(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    """A redis-server of the test's own, which it may kill and restart."""
    server = RedisServer(tmp_path_factory.mktemp("redis"))
    server.start()
    yield server
    server.stop(kill=True)


def pytest_addoption(parser: pytest.Parser) -> None:
    """Options of the protocol conformance suite (tests/conformance/README.md)."""
    group = parser.getgroup("conformance", "protocol conformance suite (tests/conformance)")
    group.addoption("--server-url", help="run tests/conformance against this server (ws://HOST:PORT)")
    group.addoption("--api-key", help="the server's ingest API key (with --server-url)")
    group.addoption("--secret", help="the server's token secret, to sign HS256 tokens (with --server-url)")
    group.addoption("--supervisor", default="sam", help="a supervisor id of the server's config (default: sam)")
    group.addoption(
        "--max-timer-wait",
        type=float,
        default=16.0,
        help="longest a conformance test waits on one of the server's timers before skipping (seconds)",
    )
    group.addoption(
        "--extensions",
        action="store_true",
        default=False,
        help="also run the checks of this implementation's extensions (tests marked `extension`); "
        "always on when the suite starts its own server",
    )


def pytest_configure(config: pytest.Config) -> None:
    """Markers (strict markers are on)."""
    config.addinivalue_line(
        "markers",
        "extension: checks this implementation's documented extensions beyond the DESIGN.md contract; "
        "with --server-url they run only with --extensions (tests/conformance/README.md)",
    )
    config.addinivalue_line(
        "markers",
        "conformance_external: runs tests/conformance in --server-url mode against a server started outside it",
    )
