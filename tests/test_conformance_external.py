"""The conformance suite in `--server-url` mode, as it runs against a server it did not start.

One `switchboard serve` is started here (the suite's own short-timer configuration from
`tests/conformance/servers.py`, random `SWITCHBOARD_SECRET` and `SWITCHBOARD_API_KEY`, `--port 0`), then
`pytest tests/conformance --server-url ...` runs twice against that same live server, each in a process
of its own: first the contract only (what any server claiming protocol v1 is held to), then with
`--extensions` (our own server). The second run passing proves that the first cleaned up after itself.

The short timers keep it to about 20 s + 30 s; against the demo configuration (rings of 15 s and more)
each run would take about a minute. Find it with `-m conformance_external`.
"""

from __future__ import annotations

import re
import secrets
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conformance.servers import ServerProcess, center_toml

ROOT = Path(__file__).resolve().parent.parent
EXTENSION_SKIP = "run with --extensions"

pytestmark = [pytest.mark.conformance_external, pytest.mark.timeout(400)]


def run_suite(server: ServerProcess, api_key: str, secret: str, *extra: str) -> tuple[int, str]:
    args = [sys.executable, "-m", "pytest", "tests/conformance", "--server-url", server.ws]
    args += ["--api-key", api_key, "--secret", secret, "-p", "no:cacheprovider", "-q", *extra]
    done = subprocess.run(args, cwd=ROOT, capture_output=True, text=True, timeout=180, check=False)
    return done.returncode, done.stdout + done.stderr


def counts(output: str) -> dict[str, int]:
    """`3 failed, 77 passed, 48 skipped in 15.5s` -> {"failed": 3, "passed": 77, "skipped": 48}."""
    summary = output.strip().splitlines()[-1]
    return {word: int(n) for n, word in re.findall(r"(\d+) (\w+)", summary)}


def test_the_suite_passes_twice_against_one_live_server(tmp_path: Path) -> None:
    config = tmp_path / "center.toml"
    config.write_text(center_toml())
    secret, api_key = "conformance-" + secrets.token_hex(16), "key-" + secrets.token_hex(8)
    log = tmp_path / "server.log"
    server = ServerProcess(config, secret, api_key, log)
    server.start()
    try:
        code, output = run_suite(server, api_key, secret)
        assert code == 0, f"contract run failed:\n{output[-6000:]}\nserver log:\n{log.read_text()[-3000:]}"
        contract = counts(output)
        assert contract.get("passed", 0) > 0 and EXTENSION_SKIP in output, output[-3000:]

        code, output = run_suite(server, api_key, secret, "--extensions")
        assert code == 0, f"second run (--extensions) failed:\n{output[-6000:]}\nserver log:\n{log.read_text()[-3000:]}"
        extended = counts(output)
        assert EXTENSION_SKIP not in output, output[-3000:]
        assert extended.get("passed", 0) > contract["passed"], (contract, extended)
    finally:
        server.stop()
