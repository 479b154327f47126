"""Connecting: `hello`/`welcome`, credentials and their close codes, subprotocols, token refresh, origins."""

from __future__ import annotations

import asyncio
import json
import time

import httpx
import msgspec
import pytest

from tests.conformance.harness import Harness
from tests.conformance.wire import JSON, MSGPACK, NotClosed, Sock, mint


async def test_welcome_answers_hello_with_the_agents_state(h: Harness) -> None:
    agent_id = h.center.order[0]
    sock = await h.connect("/v1/agent", check_seq=True)
    await sock.send({"type": "hello", "id": "hi-1", "token": h.target.token(agent_id)})
    welcome = await sock.next()
    h.agents_used.add(agent_id)
    assert welcome["type"] == "welcome" and welcome["re"] == "hi-1"
    assert welcome["agent"] == agent_id
    assert welcome["status"] == "not_ready"  # an agent who connects is not ready until they say so
    assert welcome["engagements"] == []
    assert isinstance(welcome["seq"], int) and welcome["seq"] >= 0
    assert welcome["resumed"] is False
    assert (await h.agent_info(agent_id))["status"] == "not_ready"


@pytest.mark.extension
async def test_welcome_extensions(h: Harness) -> None:
    """`welcome` adds name, role, reason, activity, next status, offers, epoch and server_time."""
    agent_id = h.center.order[0]
    before = time.time()
    sock = await h.agent(agent_id)
    welcome = sock.welcome
    assert welcome["name"] == h.center.agents[agent_id]["name"]
    assert welcome["role"] == "agent"
    assert welcome["activity"] == "idle"
    assert welcome["reason"] != "" and welcome["next_status"] is None and welcome["next_reason"] is None
    assert welcome["offers"] == []
    assert isinstance(welcome["epoch"], str) and welcome["epoch"]
    assert before - 5 <= welcome["server_time"] <= time.time() + 5
    info = await h.agent_info(agent_id)
    assert info["connected"] is True and info["status"] == "not_ready"


@pytest.mark.extension
async def test_signing_in_from_offline_is_a_status_event(h: Harness, request: pytest.FixtureRequest) -> None:
    base = h.target.http
    if h.target.own is not None:  # a fresh server of its own, where every agent is offline
        base = request.getfixturevalue("own_server").start("fresh").http
    async with httpx.AsyncClient(base_url=base, timeout=10) as client:
        agents = await client.get("/v1/agents", headers={"Authorization": f"Bearer {h.target.api_key}"})
        offline = [a["id"] for a in agents.json() if a["status"] == "offline"]
    if not offline:
        pytest.skip("every agent has signed in before: none is offline (run against a fresh server)")
    sock = await Sock.open(base.replace("http", "ws", 1) + "/v1/agent", check_seq=True)
    h.sockets.append(sock)
    if base == h.target.http:
        h.agents_used.add(offline[0])
    welcome = await sock.request({"type": "hello", "token": h.target.token(offline[0])})
    assert welcome["type"] == "welcome" and welcome["status"] == "not_ready"
    status = await sock.expect("status")
    assert (status["status"], status["reason"], status["seq"]) == ("not_ready", None, welcome["seq"] + 1)


async def test_a_request_id_may_be_a_string_or_an_integer(h: Harness) -> None:
    sock = await h.agent(h.center.order[0])
    for rid in (7, "seven"):
        await sock.send({"type": "ping", "id": rid})
        pong = await sock.expect("pong")
        assert pong["re"] == rid


async def test_ping_without_id_still_gets_pong(h: Harness) -> None:
    sock = await h.agent(h.center.order[0])
    await sock.send({"type": "ping"})
    pong = await sock.expect("pong")
    assert pong["re"] is None


@pytest.mark.extension
async def test_pong_carries_the_server_time(h: Harness) -> None:
    sock = await h.agent(h.center.order[0])
    pong = await sock.ping()
    assert isinstance(pong["server_time"], float) and abs(pong["server_time"] - time.time()) < 60


async def test_the_token_may_come_in_the_url(h: Harness) -> None:
    agent_id = h.center.order[1]
    h.agents_used.add(agent_id)
    sock = await h.connect("/v1/agent", query=f"token={h.target.token(agent_id)}")
    welcome = await sock.request({"type": "hello"})
    assert welcome["type"] == "welcome" and welcome["agent"] == agent_id


def _forged(h: Harness, agent_id: str) -> str:
    return mint("not-the-server-secret-but-long-enough-0123456789", agent_id)


@pytest.mark.parametrize(
    "credential",
    ["forged", "expired", "unknown_agent", "garbage", "missing"],
)
async def test_a_bad_token_in_hello_is_closed_with_4401(h: Harness, credential: str) -> None:
    agent_id = h.center.order[0]
    token = {
        "forged": _forged(h, agent_id),
        "expired": h.target.token(agent_id, ttl_s=-60),
        "unknown_agent": h.target.token("nobody-by-that-name"),
        "garbage": "not.a.jwt",
        "missing": None,
    }[credential]
    sock = await h.connect("/v1/agent")
    hello = {"type": "hello", "id": 1} | ({"token": token} if token else {})
    await sock.send(hello)
    code, _ = await sock.closed()
    assert code == 4401
    assert not [f for f in sock.buffer if f["type"] == "welcome"]


async def test_a_bad_token_in_the_url_is_closed_before_hello(h: Harness) -> None:
    sock = await h.connect("/v1/agent", query=f"token={h.target.token(h.center.order[0], ttl_s=-60)}")
    code, _ = await sock.closed()
    assert code == 4401


async def test_a_role_that_does_not_fit_the_path_is_closed_with_4403(h: Harness) -> None:
    sock = await h.connect("/v1/agent")
    await sock.send({"type": "hello", "token": h.target.token(h.target.supervisor, "supervisor")})
    assert (await sock.closed())[0] == 4403
    sock = await h.connect("/v1/supervisor")
    await sock.send({"type": "hello", "token": h.target.token(h.center.order[0])})
    assert (await sock.closed())[0] == 4403


async def test_the_first_frame_must_be_hello(h: Harness) -> None:
    sock = await h.connect("/v1/agent")
    await sock.send({"type": "ping", "id": 42})
    error = await sock.expect("error")
    assert error["re"] == 42 and error["code"] == "hello_required"
    assert (await sock.closed())[0] == 4400


async def test_a_malformed_first_frame_is_closed_with_4400(h: Harness) -> None:
    sock = await h.connect("/v1/agent")
    await sock.send("{this is not json")
    code, _ = await sock.closed()
    assert code == 4400
    assert [f["type"] for f in sock.buffer] == ["error"]


async def test_no_hello_in_time_is_closed_with_4408(h: Harness) -> None:
    wait = h.target.max_timer_wait
    sock = await h.connect("/v1/agent")
    try:
        code, _ = await sock.closed(timeout=wait)
    except NotClosed:
        pytest.skip(f"the server's hello timeout is longer than --max-timer-wait ({wait:g}s)")
    assert code == 4408


async def test_json_subprotocol_uses_text_frames(h: Harness) -> None:
    sock = await h.agent(h.center.order[0], subprotocols=(JSON,))
    assert sock.ws.subprotocol == JSON
    await sock.ping()  # the socket checks every frame is a text frame holding a JSON object


async def test_json_is_the_default_without_a_subprotocol(h: Harness) -> None:
    agent_id = h.center.order[0]
    h.agents_used.add(agent_id)
    sock = await h.connect("/v1/agent", subprotocols=None)
    assert sock.ws.subprotocol is None
    await sock.send({"type": "hello", "id": 1, "token": h.target.token(agent_id)})
    raw = await asyncio.wait_for(sock.ws.recv(), 5)
    assert isinstance(raw, str) and json.loads(raw)["type"] == "welcome"


async def test_msgpack_subprotocol_uses_binary_frames_both_ways(h: Harness) -> None:
    agent_id = h.center.order[0]
    sock = await h.agent(agent_id, subprotocols=(MSGPACK,))
    assert sock.ws.subprotocol == MSGPACK and sock.binary
    assert sock.welcome["agent"] == agent_id
    reply = await h.ready(sock)  # a request, its event and its reply, all MessagePack
    status = await sock.expect("status", status="ready")
    assert reply["re"] and status["seq"] > sock.welcome["seq"]
    await sock.send("{not msgpack, and a text frame}")
    assert (await sock.expect("error"))["code"] == "bad_frame"
    raw = msgspec.msgpack.encode({"type": "ping", "id": 5})
    await sock.send(raw)
    assert (await sock.expect("pong"))["re"] == 5


async def test_the_server_picks_the_clients_first_supported_subprotocol(h: Harness) -> None:
    sock = await h.connect("/v1/agent", subprotocols=("example.unknown", MSGPACK, JSON))
    assert sock.ws.subprotocol == MSGPACK
    sock = await h.connect("/v1/agent", subprotocols=(JSON, MSGPACK))
    assert sock.ws.subprotocol == JSON


async def test_only_unknown_subprotocols_are_closed_with_4400(h: Harness) -> None:
    sock = await h.connect("/v1/agent", subprotocols=("graphql-ws",))
    assert (await sock.closed())[0] == 4400


@pytest.mark.extension
async def test_a_second_hello_refreshes_the_token(h: Harness) -> None:
    """A second `hello` with a fresh token keeps the socket going under the new token; like every `hello`
    (DESIGN.md) it is answered with `welcome`: the agent's standing now, nothing replayed."""
    agent_id, other = h.center.order[0], h.center.order[1]
    sock = await h.agent(agent_id)
    again = await sock.request({"type": "hello", "token": h.target.token(agent_id, ttl_s=3600)})
    assert again["type"] == "welcome" and again["agent"] == agent_id and again["resumed"] is True
    assert again["status"] == "not_ready" and again["engagements"] == []
    await sock.refused({"type": "hello", "token": h.target.token(other)}, "forbidden")
    await sock.refused({"type": "hello", "token": _forged(h, agent_id)}, "unauthorized")
    await sock.ping()


@pytest.mark.extension
async def test_an_idle_socket_is_closed_with_4401_when_its_token_expires_unless_a_hello_refreshed_it(
    h: Harness,
) -> None:
    quiet_agent, busy_agent = h.center.order[0], h.center.order[1]
    h.agents_used.update((quiet_agent, busy_agent))
    quiet = await h.connect("/v1/agent")
    assert (await quiet.request({"type": "hello", "token": h.target.token(quiet_agent, ttl_s=2)}))["type"] == "welcome"
    kept = await h.connect("/v1/agent")
    assert (await kept.request({"type": "hello", "token": h.target.token(busy_agent, ttl_s=2)}))["type"] == "welcome"
    refreshed = await kept.request({"type": "hello", "token": h.target.token(busy_agent, ttl_s=60)})
    assert refreshed["type"] == "welcome"
    # JWT times are whole seconds: the quiet one expires within 2 s, and is closed then, sending nothing
    assert (await quiet.closed(timeout=5))[0] == 4401
    await kept.ping()  # the refreshed socket outlives its first token


async def test_a_page_from_the_servers_own_origin_may_connect(h: Harness) -> None:
    """The browser desktop is served at `/`: its sockets carry the server's own origin."""
    agent_id = h.center.order[0]
    h.agents_used.add(agent_id)
    same = await h.connect("/v1/agent", origin=h.target.http)
    welcome = await same.request({"type": "hello", "token": h.target.token(agent_id)})
    assert welcome["type"] == "welcome"


@pytest.mark.extension
async def test_a_page_from_another_site_is_closed_with_4403(h: Harness) -> None:
    sock = await h.connect("/v1/agent", origin="https://evil.example")
    assert (await sock.closed())[0] == 4403


async def test_a_supervisor_is_welcomed(h: Harness) -> None:
    sup = await h.supervisor()
    assert sup.welcome["type"] == "welcome"
    await sup.ping()


@pytest.mark.extension
async def test_supervisor_welcome_has_their_id_and_no_status(h: Harness) -> None:
    sup = await h.supervisor()
    assert sup.welcome["role"] == "supervisor"
    assert sup.welcome["agent"] == h.target.supervisor
    assert sup.welcome["status"] is None
