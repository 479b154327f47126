"""The `switchboard` command as a user runs it: real processes, real output."""

from __future__ import annotations

import contextlib
import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx

from server.auth import verify
from server.config import load

EXE = Path(sys.executable).parent / "switchboard"


def run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(EXE), *args], capture_output=True, text=True, timeout=60, env=env)


def test_token_is_signed_with_the_configured_secret():
    out = run("token", "alice")
    assert out.returncode == 0
    claims = verify(load(None).server.secret or "", out.stdout.strip())
    assert (claims.sub, claims.role) == ("alice", "agent")


def test_token_follows_the_secret_from_the_environment():
    secret = "e" * 48
    out = run("token", "sam", "--role", "supervisor", "--ttl", "60", env={**os.environ, "SWITCHBOARD_SECRET": secret})
    claims = verify(secret, out.stdout.strip())
    assert claims.role == "supervisor" and claims.exp - claims.iat == 60


def test_token_for_someone_unknown_fails():
    out = run("token", "nobody")
    assert out.returncode == 2 and "no agent 'nobody'" in out.stderr


def test_schema_prints_the_json_schema():
    out = run("schema")
    schema = json.loads(out.stdout)
    assert "Ring" in schema["$defs"] and "Hello" in schema["$defs"]


def test_serve_refuses_a_bad_config_and_names_the_key(tmp_path):
    bad = tmp_path / "center.toml"
    bad.write_text('[server]\nsecret = "x"\n[[queues]]\nid = "q"\nchannel = "pigeon"\n')
    out = run("serve", "--config", str(bad))
    assert out.returncode == 2
    assert "queues[0].channel" in out.stderr


@contextlib.contextmanager
def serving(*args: str, env: dict[str, str] | None = None) -> Iterator[tuple[str, list[str]]]:
    """`switchboard serve --port 0 ARGS`: its URL, and the lines it printed until it said so."""
    with subprocess.Popen(
        [str(EXE), "serve", "--port", "0", *args], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env
    ) as proc:
        try:
            assert proc.stdout is not None
            deadline = time.monotonic() + 30
            url = None
            lines: list[str] = []
            while time.monotonic() < deadline and url is None:
                line = proc.stdout.readline()
                lines.append(line)
                if m := re.search(r"listening on (http://\S+)", line):
                    url = m.group(1)
            assert url, f"the server did not say where it listens: {lines}"
            while len(lines) < 40 and "token:" not in lines[-1]:  # the rest of the banner
                lines.append(proc.stdout.readline())
            yield url, lines
        finally:
            proc.terminate()
            proc.wait(10)


def test_serve_with_no_arguments_runs_the_demo_center_in_memory_and_says_so():
    key = {"Authorization": f"Bearer {load(None).server.api_keys[0]}"}
    with serving() as (url, lines):
        assert httpx.get(f"{url}/healthz").json() == {"status": "ok"}
        queues = httpx.get(f"{url}/v1/queues", headers=key).json()
        assert {q["channel"] for q in queues} == {"voice", "video", "chat", "email"}
        people = httpx.get(f"{url}/v1/demo/people")  # no sign-in list without --demo: the page asks for a token
        assert people.status_code == 404 and people.json()["code"] == "not_found"
    banner = "".join(lines)
    assert "every engagement is lost when this process stops" in banner and "--redis" in banner
    assert "built-in demo token secret and API key in use" in banner  # one warning line, on loopback


def test_serve_demo_hands_out_the_demo_sign_in_list():
    with serving("--demo") as (url, _):
        people = httpx.get(f"{url}/v1/demo/people").json()
    assert people["enabled"] is True
    alice = next(p for p in people["agents"] if p["id"] == "alice")
    assert verify(load(None).server.secret or "", alice["token"]).sub == "alice"


def test_serve_beyond_loopback_with_the_demo_credentials_refuses_to_start_and_says_what_to_set():
    out = run("serve", "--host", "0.0.0.0", "--port", "0", env=without_overrides())
    assert out.returncode == 2
    assert "token secret: set SWITCHBOARD_SECRET" in out.stderr and "API key: set SWITCHBOARD_API_KEY" in out.stderr
    assert "listening" not in out.stdout


def test_demo_sign_in_beyond_loopback_is_refused_even_with_real_credentials():
    env = {**without_overrides(), "SWITCHBOARD_SECRET": "s" * 40, "SWITCHBOARD_API_KEY": "a-real-key"}
    for args in (("serve", "--demo"), ("demo",)):
        out = run(*args, "--host", "0.0.0.0", "--port", "0", env=env)
        assert out.returncode == 2 and "demo sign-in" in out.stderr, args


def without_overrides() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if not k.startswith("SWITCHBOARD_")}


def test_json_logs_follow_an_engagement_with_its_ids():
    config = load(None)
    with subprocess.Popen(
        [str(EXE), "serve", "--port", "0", "--log-format", "json"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    ) as proc:
        try:
            assert proc.stdout is not None
            url = None
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline and url is None:
                if m := re.search(r"listening on (http://\S+)", proc.stdout.readline()):
                    url = m.group(1)
            assert url, "the server did not say where it listens"
            key = {"Authorization": f"Bearer {config.server.api_keys[0]}"}
            created = httpx.post(f"{url}/v1/engagements", json={"queue": "support-voice"}, headers=key).json()
            assert httpx.post(f"{url}/v1/engagements/{created['id']}/end", headers=key).status_code == 200
        finally:
            proc.terminate()
            _, err = proc.communicate(timeout=10)
    lines = [json.loads(line) for line in err.splitlines() if line.strip()]  # every line is JSON
    mine = [line for line in lines if line.get("engagement") == created["id"]]
    assert [line["event"] for line in mine] == ["created", "abandoned"]
    assert all(line["node"] and line["queue"] == "support-voice" and line["level"] == "info" for line in mine)
    assert "created" in mine[0]["message"] and mine[1]["actor"] == "consumer"
