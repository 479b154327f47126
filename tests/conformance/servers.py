"""Starting a server for the suite when no `--server-url` is given: `switchboard serve` as a subprocess.

The configuration is the demo contact center (`server/demo.toml`: the same queues, agents and
supervisor, part of its address book) with shorter timers where the demo's would make tests slow: the
video queue rings for 2 s, wraps up in 2 s and holds at most 2 waiting engagements, `hello` is due
within 1 s, a dropped agent's grace is 2 s, and the per-agent event log keeps 40 events. The
secret and the API key come from the environment (`SWITCHBOARD_SECRET`, `SWITCHBOARD_API_KEY`), so
the suite knows them. The server says where it listens on its first line of output.
"""

from __future__ import annotations

import os
import queue
import re
import shutil
import signal
import subprocess
import sys
import threading
from pathlib import Path
from typing import IO

CENTER_TOML = """
[server]
grace_s = 2
hello_timeout_s = {hello_timeout_s}
event_log_size = 40
missed_status = "not_ready"
missed_reason = "missed"
drain_retry_after_ms = 500
max_connections = {max_connections}
outbound_queue = {outbound_queue}

[[queues]]
id = "support-voice"
name = "Support (voice)"
channel = "voice"
acceptance = "manual"
strategy = "longest_idle"
ring_timeout_s = 20
wrap_up_s = 60
transcription = true
disposition_required = true
dispositions = [
  {{ code = "resolved", label = "Resolved" }},
  {{ code = "callback", label = "Call back" }},
  {{ code = "escalated", label = "Escalated" }},
]
overflow = {{ after_s = 180, queue = "escalations-voice" }}

[[queues]]
id = "escalations-voice"
name = "Escalations (voice)"
channel = "voice"
acceptance = "manual"
strategy = "ring_all"
ring_timeout_s = 15
wrap_up_s = 45
transcription = true
dispositions = [
  {{ code = "resolved", label = "Resolved" }},
  {{ code = "refund", label = "Refund granted" }},
]

[[queues]]
id = "sales-chat"
name = "Sales (chat)"
channel = "chat"
acceptance = "auto"
strategy = "most_skilled"
wrap_up_s = 30
dispositions = [
  {{ code = "sale", label = "Sale" }},
  {{ code = "no_sale", label = "No sale" }},
]

[[queues]]
id = "advice-video"
name = "Advice (video)"
channel = "video"
acceptance = "manual"
strategy = "round_robin"
ring_timeout_s = 2
wrap_up_s = 2
max_waiting = 2
transcription = true

[[queues]]
id = "care-email"
name = "Customer care (email)"
channel = "email"
inactivity_close_s = 259200
dispositions = [
  {{ code = "answered", label = "Answered" }},
  {{ code = "forwarded", label = "Forwarded" }},
]

[[agents]]
id = "alice"
name = "Alice Martin"
queues = [
  {{ id = "support-voice", priority = 2 }}, "escalations-voice", {{ id = "sales-chat", priority = 1 }}, "care-email",
]
capacity = {{ voice = 1, video = 1, chat = 3, email = 5 }}

[[agents]]
id = "bob"
name = "Bob Nguyen"
queues = ["support-voice", {{ id = "sales-chat", priority = 3 }}, "advice-video"]
capacity = {{ voice = 1, video = 1, chat = 2, email = 0 }}

[[agents]]
id = "carol"
name = "Carol Diaz"
queues = ["support-voice", "advice-video", "care-email"]

[[agents]]
id = "dan"
name = "Dan Okafor"
queues = ["escalations-voice", {{ id = "sales-chat", priority = 2 }}, "care-email"]

[[supervisors]]
id = "sam"
name = "Sam Keller"

[[address_book]]
id = "c-1001"
name = "Jeanne Dupont"
phone = "+33 6 12 34 56 78"
email = "jeanne.dupont@example.com"
fields = {{ tier = "gold", account = "ACC-48213", language = "fr", customer_since = "2019" }}

[[address_book]]
id = "c-1002"
name = "Omar Haddad"
phone = "+44 20 7946 0018"
email = "omar.haddad@example.org"
fields = {{ tier = "standard", account = "ACC-50977", language = "en" }}
"""


def center_toml(*, hello_timeout_s: float = 1.0, max_connections: int = 20_000, outbound_queue: int = 1000) -> str:
    return CENTER_TOML.format(
        hello_timeout_s=hello_timeout_s, max_connections=max_connections, outbound_queue=outbound_queue
    )


def switchboard_exe() -> str:
    beside = Path(sys.executable).parent / "switchboard"
    if beside.exists():
        return str(beside)
    found = shutil.which("switchboard")
    if found is None:
        raise RuntimeError("the `switchboard` command is not installed (pip install -e .)")
    return found


class ServerProcess:
    """`switchboard serve --port 0` on 127.0.0.1; `port` once it printed `listening on http://HOST:PORT`."""

    def __init__(self, config: Path, secret: str, api_key: str, logfile: Path) -> None:
        self.args = [switchboard_exe(), "serve", "--host", "127.0.0.1", "--port", "0", "--config", str(config)]
        self.args += ["--log-level", "warning"]
        self.env = {**os.environ, "SWITCHBOARD_SECRET": secret, "SWITCHBOARD_API_KEY": api_key}
        self.logfile = logfile
        self.proc: subprocess.Popen[str] | None = None
        self.port = 0
        self._reader: threading.Thread | None = None

    def start(self, timeout: float = 30.0) -> None:
        self.proc = subprocess.Popen(
            self.args, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=self.env
        )
        lines: queue.Queue[str | None] = queue.Queue()
        assert self.proc.stdout is not None
        self._reader = threading.Thread(target=self._pump, args=(self.proc.stdout, lines), daemon=True)
        self._reader.start()
        seen: list[str] = []
        while True:
            try:
                line = lines.get(timeout=timeout)
            except queue.Empty:
                line = None
            if line is None:
                self.stop()
                raise RuntimeError("switchboard serve did not start:\n" + "".join(seen))
            seen.append(line)
            if m := re.search(r"listening on http://[^\s:]+:(\d+)", line):
                self.port = int(m.group(1))
                return

    def _pump(self, stream: IO[str], lines: queue.Queue[str | None]) -> None:
        """Hand lines over until the port is known, then copy the rest into the log file."""
        with self.logfile.open("a") as log:
            for line in stream:
                log.write(line)
                log.flush()
                if not self.port:
                    lines.put(line)
        lines.put(None)

    @property
    def http(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws(self) -> str:
        return f"ws://127.0.0.1:{self.port}"

    def signal(self, sig: signal.Signals) -> None:
        assert self.proc is not None
        self.proc.send_signal(sig)

    def wait(self, timeout: float) -> int:
        assert self.proc is not None
        return self.proc.wait(timeout)

    def stop(self) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        if self._reader is not None:
            self._reader.join(5)
        if self.proc.stdout is not None:
            self.proc.stdout.close()
        self.proc = None
