"""Limits and the close codes that say why: frame size (1009), floods (4429), garbage (4400), a full
node (1013), a client that stops reading (4500), and a draining node (`closing`, then 4503)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal

import httpx
import pytest
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from tests.conformance.conftest import ServerProcessFactory
from tests.conformance.harness import Harness
from tests.conformance.wire import Frame, Sock

MIB = 1 << 20


async def send_until_closed(sock: Sock, payloads: list[Frame | str]) -> None:
    """Send as fast as possible; the server may close the socket before the last one."""
    try:
        for payload in payloads:
            await sock.send(payload)
    except ConnectionClosed:
        return


async def close_code(ws: ClientConnection, within: float) -> int | None:
    """Read a bare socket until the server closes it; its close code."""
    try:
        async with asyncio.timeout(within):
            while True:
                await ws.recv()
    except ConnectionClosed as exc:
        return exc.rcvd.code if exc.rcvd else None
    except TimeoutError:
        raise AssertionError(f"the server did not close the socket within {within:g}s") from None


async def test_a_frame_over_the_size_limit_closes_with_1009(h: Harness) -> None:
    sock = await h.agent(h.center.order[0])
    await sock.ping()
    with contextlib.suppress(ConnectionClosed):  # the server may close before it has read it all
        await sock.send({"type": "note", "id": 1, "engagement": "e-x", "text": "a" * (MIB + 1024)})
    code, _ = await sock.closed()
    assert code == 1009


@pytest.mark.extension
async def test_notes_over_64_kib_are_too_large_and_the_socket_stays(h: Harness) -> None:
    queue = h.center.find_queue("a manual voice queue", channel="voice", acceptance="manual")
    sock, ring = await h.call(h.center.able(queue["id"])[0], queue["id"])
    eid = ring["engagement"]["id"]
    await sock.refused({"type": "note", "engagement": eid, "text": "n" * (65 * 1024)}, "too_large")
    await sock.ok({"type": "note", "engagement": eid, "text": "n" * (60 * 1024)})


async def test_a_flood_is_answered_rate_limited_then_closed_with_4429(h: Harness) -> None:
    sock = await h.agent(h.center.order[0])
    # a short burst over the rate (the default allows bursts of 100): each frame over it is answered
    # `rate_limited` and dropped, and the socket stays open, so every answer is read
    burst = [{"type": "ping", "id": i} for i in range(150)]
    answers: list[Frame] = []
    with contextlib.suppress(ConnectionClosed):
        for frame in burst:
            await sock.send(frame)
        for _ in burst:
            answers.append(await sock.first(lambda f: f["type"] in ("pong", "error"), what="an answer to a ping"))
    # then a flood, closed with 4429 (the answers queued when the close comes may be lost with the socket)
    await send_until_closed(sock, [{"type": "ping", "id": i} for i in range(150, 3150)])
    code, _ = await sock.closed(timeout=10)
    limited = [f for f in answers + sock.buffer if f["type"] == "error"]
    assert limited, "no rate_limited error before the close"
    assert {f["code"] for f in limited} == {"rate_limited"}
    assert all(isinstance(f["re"], int) for f in limited)  # each refusal names its request
    assert code == 4429


async def test_a_client_sending_only_garbage_is_closed_with_4400(h: Harness) -> None:
    sock = await h.agent(h.center.order[0])
    await sock.send("{garbage")
    assert (await sock.expect("error"))["code"] == "bad_frame"
    await sock.ping()  # a good frame resets the count
    await send_until_closed(sock, ["\x00garbage"] * 500)
    code, _ = await sock.closed(timeout=10)
    assert code == 4400
    assert {f["code"] for f in sock.buffer if f["type"] == "error"} == {"bad_frame"}


async def test_a_node_at_its_connection_limit_closes_new_sockets_with_1013(
    h: Harness, own_server: ServerProcessFactory
) -> None:
    server = own_server.start("full", max_connections=1)
    first = await Sock.open(f"{server.ws}/v1/agent")
    h.sockets.append(first)
    welcome = await first.request({"type": "hello", "token": h.target.token(h.center.order[0])})
    assert welcome["type"] == "welcome"
    second = await Sock.open(f"{server.ws}/v1/agent")
    h.sockets.append(second)
    assert (await second.closed())[0] == 1013
    await first.ping()


async def test_a_draining_node_says_closing_then_closes_with_4503(h: Harness, own_server: ServerProcessFactory) -> None:
    server = own_server.start("drain")
    agent = await Sock.open(f"{server.ws}/v1/agent", check_seq=True)
    sup = await Sock.open(f"{server.ws}/v1/supervisor")
    h.sockets += [agent, sup]
    assert (await agent.request({"type": "hello", "token": h.target.token(h.center.order[0])}))["type"] == "welcome"
    token = h.target.token(h.target.supervisor, "supervisor")
    assert (await sup.request({"type": "hello", "token": token}))["type"] == "welcome"
    await agent.ping()
    server.signal(signal.SIGTERM)
    closing = await agent.expect("closing", timeout=10)
    assert closing["reason"] == "draining" and isinstance(closing["retry_after_ms"], int)
    # outside the agent's log, numbered 0: an extension, checked here as this test runs only on the suite's own server
    assert closing["seq"] == 0
    assert (await agent.closed(timeout=10))[0] == 4503
    assert (await sup.expect("closing", timeout=10))["reason"] == "draining"
    assert (await sup.closed(timeout=10))[0] == 4503
    assert await asyncio.to_thread(server.wait, 15) == 0


async def test_a_socket_that_stops_reading_is_closed_with_4500(h: Harness, own_server: ServerProcessFactory) -> None:
    queue = h.center.find_queue(
        "a chat queue with dispositions", channel="chat", acceptance="auto", where=lambda q: bool(q["dispositions"])
    )
    agent_id = h.center.able(queue["id"])[0]
    code = queue["dispositions"][0]["code"]
    server = own_server.start("slow", outbound_queue=8)
    reader = await Sock.open(f"{server.ws}/v1/agent")
    h.sockets.append(reader)
    token = h.target.token(agent_id)
    assert (await reader.request({"type": "hello", "token": token}))["type"] == "welcome"
    # a client that stops reading: it takes one frame into its buffer and then reads no more
    stuck = await connect(f"{server.ws}/v1/agent", max_size=None, max_queue=1)
    try:
        await stuck.send(json.dumps({"type": "hello", "id": 1, "token": token}))
        await reader.ok({"type": "set_status", "status": "ready"})
        big = {f"field{i}": "x" * 35_000 for i in range(25)}  # each snapshot of it is ~0.9 MB
        headers = {"Authorization": f"Bearer {h.target.api_key}"}
        async with httpx.AsyncClient(base_url=server.http, headers=headers, timeout=10) as api:
            created = await api.post("/v1/engagements", json={"queue": queue["id"], "variables": big})
            assert created.status_code == 201, created.text
        eid = created.json()["id"]
        await reader.expect("engagement", timeout=10)
        for i in range(40):  # each sends the snapshot to both of the agent's sockets
            await reader.ok({"type": "disposition", "engagement": eid, "codes": [code] if i % 2 else []}, timeout=10)
            if stuck.close_code is not None:
                break
        assert await close_code(stuck, within=10) == 4500
        await reader.ping()  # the agent's other socket carries on
    finally:
        await stuck.close()
