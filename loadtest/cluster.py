"""The server side of a load test: nodes it starts itself (with a private Redis when there are
several), or a server given by URL."""

from __future__ import annotations

import contextlib
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import psutil

from loadtest.servers import NodeProcess, RedisServer


@dataclass
class Center:
    http_urls: list[str]
    ws_urls: list[str]
    secret: str
    api_key: str
    pids: list[int] = field(default_factory=list)
    redis_pid: int | None = None

    def server_cpu_s(self) -> float:
        """CPU seconds the node processes used so far (0 for a server given by URL)."""
        return _cpu_s(self.pids)

    def redis_cpu_s(self) -> float:
        """CPU seconds the private Redis used so far (0 without one): a cluster's cost includes it."""
        return _cpu_s([self.redis_pid] if self.redis_pid is not None else [])

    def server_rss_bytes(self) -> int:
        total = 0
        for pid in self.pids:
            with contextlib.suppress(psutil.NoSuchProcess):
                total += psutil.Process(pid).memory_info().rss
        return total


def _cpu_s(pids: list[int]) -> float:
    total = 0.0
    for pid in pids:
        with contextlib.suppress(psutil.NoSuchProcess):
            times = psutil.Process(pid).cpu_times()
            total += times.user + times.system
    return total


@contextlib.contextmanager
def center(
    config_toml: str, nodes: int, secret: str, api_key: str, url: str | None = None, *, redis: bool | None = None
) -> Iterator[Center]:
    """Serve `config_toml` on `nodes` fresh node processes, or use the server at `url`. The nodes share a
    private Redis when there are several, or when `redis` says so (one node on Redis, for comparison)."""
    if url is not None:
        base = url.rstrip("/")
        ws = base.replace("https://", "wss://").replace("http://", "ws://")
        yield Center([base], [ws], secret, api_key)
        return
    with tempfile.TemporaryDirectory(prefix="switchboard-load-") as tmp:
        work = Path(tmp)
        config = work / "center.toml"
        config.write_text(config_toml)
        store = RedisServer(work / "redis") if (nodes > 1 if redis is None else redis) else None
        processes = [NodeProcess(f"node{i}", config, store.url if store else None, "load", work) for i in range(nodes)]
        try:
            if store is not None:
                store.start()
            for process in processes:
                process.start()
            yield Center(
                [p.http for p in processes],
                [p.ws for p in processes],
                secret,
                api_key,
                [p.proc.pid for p in processes if p.proc is not None],
                store.proc.pid if store is not None and store.proc is not None else None,
            )
        finally:
            for process in processes:
                process.stop()
            if store is not None:
                store.stop()
