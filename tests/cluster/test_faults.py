"""Nodes that go away on purpose (SIGTERM: drain) or freeze (SIGSTOP: fenced when they wake)."""

from __future__ import annotations

import asyncio
import signal
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path

import httpx
import pytest
from redis.asyncio import Redis
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from clients.agent import AgentClient
from server.store.redis import Keys
from tests.cluster.nodes import NodeProcess, cluster
from tests.e2e.conftest import Raw
from tests.redis_server import RedisServer
from tests.support import API_KEY, SECRET, token


@pytest.fixture
def nodes(private_redis: RedisServer, tmp_path: Path) -> Iterator[list[NodeProcess]]:
    with cluster(3, private_redis.url, tmp_path, secret=SECRET, api_key=API_KEY, grace_s=1.0) as started:
        yield started


@pytest.fixture
async def api() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(headers={"Authorization": f"Bearer {API_KEY}"}, timeout=10) as client:
        yield client


async def test_sigterm_drains_the_node_and_the_agent_moves_to_another_losing_nothing(
    nodes: list[NodeProcess], api: httpx.AsyncClient
):
    a, b, _ = nodes
    raw = Raw(await connect(f"{a.ws}/v1/agent"))
    welcome = await raw.request({"type": "hello", "id": "h", "token": token("ann")})
    await raw.request({"type": "set_status", "id": 1, "status": "ready"})
    chat = (await api.post(f"{b.http}/v1/engagements", json={"queue": "chat"})).json()["id"]
    last = (await raw.until("engagement"))["seq"]

    assert a.proc is not None
    a.proc.send_signal(signal.SIGTERM)
    closing = await raw.until("closing")
    assert closing["reason"] == "draining" and closing["retry_after_ms"] > 0
    with pytest.raises(ConnectionClosed) as closed:
        await raw.ws.recv()  # nothing more after `closing`: the close
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 4503
    assert await asyncio.to_thread(a.proc.wait, 15) == 0  # a clean exit

    # while ann moves, the consumer writes; she picks it up on b, nothing lost, nothing twice
    await api.post(f"{b.http}/v1/engagements/{chat}/messages", json={"text": "still there?"})
    moved = Raw(await connect(f"{b.ws}/v1/agent"))
    again = await moved.request(
        {"type": "hello", "id": "h", "token": token("ann"), "resume_from": last, "epoch": welcome["epoch"]}
    )
    assert again["resumed"] is True
    missed = await moved.until("message")
    assert missed["text"] == "still there?" and missed["seq"] > last
    assert [e["id"] for e in again["engagements"]] == [chat]
    await moved.ws.close()


async def test_a_frozen_node_is_written_off_and_when_it_wakes_it_closes_its_stale_sockets(
    nodes: list[NodeProcess], api: httpx.AsyncClient
):
    a, b, c = nodes
    ann = AgentClient(b.ws, token("ann"))
    await ann.open()
    async with AgentClient.connect(c.ws, token("ben")) as ben:
        await ann.set_status("ready")
        await asyncio.sleep(0.05)
        await ben.set_status("ready")
        eid = (await api.post(f"{a.http}/v1/engagements", json={"queue": "calls"})).json()["id"]
        await ann.next_event("ring")
        assert b.proc is not None
        b.proc.send_signal(signal.SIGSTOP)  # frozen past the node timeout: the others write it off
        try:
            ring = await ben.next_event("ring", timeout=10)
            assert ring.engagement.id == eid
            await ben.accept(ring.offer)
        finally:
            b.proc.send_signal(signal.SIGCONT)
        # awake again, b learns it was presumed dead and closes ann's socket rather than serve it stale
        for _ in range(100):  # bounded: up to 10 s
            if ann.closed is not None:
                break
            await asyncio.sleep(0.1)
        assert ann.closed is not None and ann.closed.code == 1001
        ann.url = f"{a.ws}/v1/agent"
        welcome = await ann.resume()
        assert (welcome.status, welcome.reason) == ("not_ready", "connection_lost")
        record = (await api.get(f"{a.http}/v1/engagements/{eid}")).json()
        assert record["agent"] == "ben" and record["state"] == "active"
        agents = {x["id"]: x for x in (await api.get(f"{c.http}/v1/agents")).json()}
        assert agents["ann"]["connected"] is True  # counted once, on a, not on the stale b
    await ann.close()


async def test_a_woken_node_rejoins_and_its_new_sockets_are_not_fenced_at_its_next_heartbeats(
    nodes: list[NodeProcess], api: httpx.AsyncClient, private_redis: RedisServer
):
    _, b, _ = nodes
    keys = Keys(b.args[b.args.index("--redis-prefix") + 1])
    db = Redis.from_url(private_redis.url)

    async def beating_since(t: float) -> bool:
        """Three nodes (b under whatever id it has now) have beaten since `t`, and no other is registered."""
        scores = [s for _, s in await db.zrange(keys.nodes, 0, -1, withscores=True)]
        return len(scores) == 3 and min(scores) > t

    async def written_off() -> bool:
        return bool([k async for k in db.scan_iter(match=keys.buried("*"))])

    try:
        assert b.proc is not None
        b.proc.send_signal(signal.SIGSTOP)  # frozen past the node timeout: the others write it off
        try:
            await until(written_off)
        finally:
            b.proc.send_signal(signal.SIGCONT)
        woke = time.time()
        await until(lambda: beating_since(woke))  # b noticed, closed what it held, and beats again
        async with AgentClient.connect(b.ws, token("ann")) as ann:
            await ann.set_status("ready")
            since = time.time()
            await until(lambda: beating_since(since + 3 * 0.2))  # b has beaten three times since
            assert ann.closed is None  # served, not fenced again
            agents = {x["id"]: x for x in (await api.get(f"{b.http}/v1/agents")).json()}
            assert agents["ann"]["connected"] is True and agents["ann"]["status"] == "ready"
    finally:
        await db.aclose()


async def until(check: Callable[[], Awaitable[bool]], timeout: float = 10.0) -> None:
    """Poll `check` (bounded in time) until it holds."""
    deadline = time.monotonic() + timeout
    while not await check():
        if time.monotonic() > deadline:
            raise AssertionError(f"still not true after {timeout} s")
        await asyncio.sleep(0.05)
