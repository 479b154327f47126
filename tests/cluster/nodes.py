"""Real `switchboard serve --redis` processes for cluster tests, started and killed like in production."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

EXE = Path(sys.executable).parent / "switchboard"

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


class NodeProcess:
    """One `switchboard serve` process; `url` once it said where it listens."""

    def __init__(self, name: str, config: Path, redis_url: str, prefix: str, logdir: Path) -> None:
        self.name = name
        self.args = [str(EXE), "serve", "--port", "0", "--config", str(config), "--redis", redis_url,
                     "--redis-prefix", prefix, "--log-level", "warning"]  # fmt: skip
        self.logfile = logdir / f"{name}.log"
        self.proc: subprocess.Popen[str] | None = None
        self.port = 0

    def start(self) -> None:
        self.proc = subprocess.Popen(
            self.args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env={**os.environ}
        )
        assert self.proc.stdout is not None
        deadline = time.monotonic() + 30
        lines = []
        while time.monotonic() < deadline:
            line = self.proc.stdout.readline()
            if not line:
                break
            lines.append(line)
            if m := re.search(r"listening on http://127\.0\.0\.1:(\d+)", line):
                self.port = int(m.group(1))
                threading.Thread(target=self._drain, args=(self.proc.stdout,), daemon=True).start()
                return
        raise RuntimeError(f"node {self.name} did not start:\n{''.join(lines)}")

    def _drain(self, stream: object) -> None:
        with self.logfile.open("a") as out:
            for line in stream:  # type: ignore[attr-defined]
                out.write(line)

    @property
    def http(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws(self) -> str:
        return f"ws://127.0.0.1:{self.port}"

    def kill(self) -> None:
        """kill -9: no goodbye, no cleanup."""
        if self.proc is not None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(10)
            self.proc.stdout.close()  # type: ignore[union-attr]
            self.proc = None

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
            self.proc.stdout.close()  # type: ignore[union-attr]
            self.proc = None


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
