"""Servers the load tests (and the test suite) start for themselves: a private redis-server on a free
port, and real `switchboard serve` processes, started and killed as in production."""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import redis

EXE = Path(sys.executable).parent / "switchboard"


def own_environment() -> dict[str, str]:
    """The environment for a node this process starts: the operator's, without the `SWITCHBOARD_*`
    settings, which would override the configuration written for it (a secret exported in the shell
    would sign the node's tokens with another key than the load test's)."""
    return {k: v for k, v in os.environ.items() if not k.startswith("SWITCHBOARD_")}


class RedisMissing(RuntimeError):
    """There is no redis-server binary on this machine."""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class RedisServer:
    def __init__(self, workdir: Path, *, appendonly: bool = False) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            raise RedisMissing("redis-server is not installed (Debian: apt-get install redis-server)")
        self.binary = binary
        self.workdir = workdir
        self.appendonly = appendonly
        self.port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        self.workdir.mkdir(parents=True, exist_ok=True)
        args = [
            self.binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
            "--appendonly", "yes" if self.appendonly else "no", "--dir", str(self.workdir),
            "--protected-mode", "no", "--logfile", str(self.workdir / "redis.log"),
        ]  # fmt: skip
        self.proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
        client = redis.Redis(port=self.port)
        deadline = time.monotonic() + 10
        try:
            while True:
                try:
                    client.ping()
                    return
                except redis.ConnectionError:
                    if time.monotonic() > deadline or self.proc.poll() is not None:
                        raise RuntimeError(f"redis-server did not start: {self.log()}") from None
                    time.sleep(0.02)
        finally:
            client.close()

    def stop(self, kill: bool = False) -> None:
        if self.proc is None:
            return
        if kill:
            self.proc.kill()
        else:
            self.proc.terminate()
        self.proc.wait(10)
        self.proc = None

    def restart(self, kill: bool = True) -> None:
        self.stop(kill=kill)
        self.start()

    def log(self) -> str:
        path = self.workdir / "redis.log"
        return path.read_text()[-2000:] if path.exists() else ""


class NodeProcess:
    """One `switchboard serve` process; `url` once it said where it listens."""

    def __init__(self, name: str, config: Path, redis_url: str | None, prefix: str, logdir: Path) -> None:
        self.name = name
        self.args = [str(EXE), "serve", "--port", "0", "--config", str(config), "--log-level", "warning"]
        if redis_url is not None:
            self.args += ["--redis", redis_url, "--redis-prefix", prefix]
        self.logfile = logdir / f"{name}.log"
        self.proc: subprocess.Popen[str] | None = None
        self.port = 0

    def start(self) -> None:
        self.proc = subprocess.Popen(
            self.args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=own_environment()
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
