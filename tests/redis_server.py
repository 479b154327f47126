"""A private redis-server per test (or per session), on a free loopback port, that tests may kill and restart.

The server itself is loadtest.servers.RedisServer; here a missing binary fails the test loudly, never skips it.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from loadtest import servers


class RedisServer(servers.RedisServer):
    def __init__(self, workdir: Path, *, appendonly: bool = False) -> None:
        try:
            super().__init__(workdir, appendonly=appendonly)
        except servers.RedisMissing as exc:
            pytest.fail(f"{exc}: run scripts/test, which installs it")
