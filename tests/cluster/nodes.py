"""Real `switchboard serve --redis` processes for cluster tests, started and killed like in production."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from loadtest.servers import NodeProcess

CLUSTER_TOML = """
[server]
secret = "{secret}"
api_keys = ["{api_key}"]
grace_s = {grace_s}
heartbeat_s = 0.2
node_timeout_s = 1.0

[[queues]]
id = "calls"
channel = "voice"
ring_timeout_s = {ring_timeout_s}
wrap_up_s = 30
dispositions = [{{ code = "ok" }}]
transcription = true

[[queues]]
id = "chat"
channel = "chat"
acceptance = "auto"
wrap_up_s = 30

[[queues]]
id = "mail"
channel = "email"

[[agents]]
id = "ann"
queues = ["calls", "chat", "mail"]

[[agents]]
id = "ben"
queues = ["calls", "chat", "mail"]

[[agents]]
id = "cat"
queues = ["calls", "chat"]

[[supervisors]]
id = "sue"
"""


@contextmanager
def cluster(
    count: int, redis_url: str, workdir: Path, *, secret: str, api_key: str, grace_s: float = 1.0,
    ring_timeout_s: float = 30.0,
) -> Iterator[list[NodeProcess]]:  # fmt: skip
    config = workdir / "center.toml"
    config.write_text(
        CLUSTER_TOML.format(secret=secret, api_key=api_key, grace_s=grace_s, ring_timeout_s=ring_timeout_s)
    )
    prefix = f"c{os.getpid()}{int(time.monotonic() * 1000) % 100000}"
    nodes = [NodeProcess(chr(ord("A") + i), config, redis_url, prefix, workdir) for i in range(count)]
    try:
        for node in nodes:
            node.start()
        yield nodes
    finally:
        for node in nodes:
            node.stop()
