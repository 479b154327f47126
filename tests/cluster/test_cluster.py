"""Three real nodes on one private Redis: shared queues, any node for any agent, nodes that die."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest
from websockets.asyncio.client import connect

from clients.agent import AgentClient, SupervisorClient
from protocol.frames import Event
from tests.cluster.nodes import NodeProcess, cluster
from tests.e2e.conftest import Raw
from tests.redis_server import RedisServer
from tests.support import API_KEY, SECRET, token

HEADERS = {"Authorization": f"Bearer {API_KEY}"}


@pytest.fixture
def three(private_redis: RedisServer, tmp_path: Path) -> Iterator[list[NodeProcess]]:
    with cluster(3, private_redis.url, tmp_path, secret=SECRET, api_key=API_KEY, grace_s=1.0) as nodes:
        yield nodes


@pytest.fixture
async def api() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(headers=HEADERS, timeout=10) as client:
        yield client


async def test_created_on_a_rings_on_b_and_a_decline_on_b_rings_on_c(three: list[NodeProcess], api: httpx.AsyncClient):
    a, b, c = three
    async with AgentClient.connect(b.ws, token("ann")) as ann, AgentClient.connect(c.ws, token("ben")) as ben:
        await ann.set_status("ready")
        await ben.set_status("ready")
        created = await api.post(f"{a.http}/v1/engagements", json={"queue": "calls", "variables": {"n": 1}})
        assert created.status_code == 201
        eid = created.json()["id"]
        ring = await ann.next_event("ring")
        assert ring.engagement.id == eid and ring.engagement.variables == {"n": 1}
        await ann.decline(ring.offer)
        ring2 = await ben.next_event("ring")
        assert ring2.engagement.id == eid
        await ben.accept(ring2.offer)
        await ben.next_event("engagement")

        # every node answers the same thing about it
        views = [(await api.get(f"{n.http}/v1/engagements/{eid}")).json() for n in three]
        assert views[0] == views[1] == views[2]
        assert views[0]["state"] == "active" and views[0]["agent"] == "ben"
        agents = [(await api.get(f"{n.http}/v1/agents")).json() for n in three]
        assert agents[0] == agents[1] == agents[2]
        assert {a["id"]: a["activity"] for a in agents[0]} == {"ann": "idle", "ben": "busy", "cat": "idle"}


async def test_resuming_on_another_node_replays_exactly_the_missed_events(
    three: list[NodeProcess], api: httpx.AsyncClient
):
    a, b, _ = three
    ann = AgentClient(a.ws, token("ann"))
    await ann.open()
    await ann.set_status("ready")
    chat = (await api.post(f"{a.http}/v1/engagements", json={"queue": "chat"})).json()["id"]
    second = (await api.post(f"{a.http}/v1/engagements", json={"queue": "chat"})).json()["id"]
    await ann.next_event("engagement", where=lambda e: e.engagement.id == second)
    seen = ann.last_seq
    ann.drain()  # what the test passed over (statuses, the first chat): not what it looks at below
    await ann.drop()
    for eid in (chat, second):  # each consumer leaves: two `engagement` events she misses
        await api.post(f"{b.http}/v1/engagements/{eid}/end")
    ann.url = f"{b.ws}/v1/agent"
    welcome = await ann.resume()
    assert welcome.resumed is True
    replayed: list[Event] = [await ann.next_event() for _ in range(welcome.seq - seen)]
    assert [e.seq for e in replayed] == list(range(seen + 1, welcome.seq + 1))
    states = [(e.engagement.id, e.engagement.state) for e in replayed if hasattr(e, "engagement")]
    assert states == [(chat, "wrap_up"), (second, "wrap_up")]
    await asyncio.sleep(0.3)
    assert [e for e in ann.drain() if isinstance(e, Event) and e.seq <= welcome.seq] == []
    await ann.close()


async def test_kill_9_the_node_of_a_ringing_agent_and_the_call_rings_another_agent(
    three: list[NodeProcess], api: httpx.AsyncClient
):
    a, b, c = three
    ann = AgentClient(b.ws, token("ann"))
    await ann.open()
    async with AgentClient.connect(c.ws, token("ben")) as ben:
        await ann.set_status("ready")
        await asyncio.sleep(0.05)
        await ben.set_status("ready")
        eid = (await api.post(f"{a.http}/v1/engagements", json={"queue": "calls"})).json()["id"]
        await ann.next_event("ring")
        killed_at = time.monotonic()
        b.kill()
        # the ring itself lasts 30 s; node death (1 s) plus grace (1 s) must move it much sooner
        ring = await ben.next_event("ring", timeout=8)
        assert ring.engagement.id == eid
        assert time.monotonic() - killed_at < 8
        agents = {x["id"]: x for x in (await api.get(f"{a.http}/v1/agents")).json()}
        assert (agents["ann"]["status"], agents["ann"]["reason"]) == ("not_ready", "connection_lost")
        assert agents["ann"]["connected"] is False
        history = (await api.get(f"{c.http}/v1/engagements/{eid}")).json()["history"]
        assert [h["reason"] for h in history if h["event"] == "rescinded"] == ["connection_lost"]
    await ann.drop()


async def test_an_engagement_being_handled_survives_its_nodes_death_and_is_resumed_elsewhere(
    three: list[NodeProcess], api: httpx.AsyncClient
):
    a, b, c = three
    ann = AgentClient(b.ws, token("ann"))
    await ann.open()
    await ann.set_status("ready")
    eid = (await api.post(f"{a.http}/v1/engagements", json={"queue": "calls"})).json()["id"]
    ring = await ann.next_event("ring")
    await ann.accept(ring.offer)
    await ann.next_event("engagement")
    b.kill()
    await ann.drop()
    ann.url = f"{c.ws}/v1/agent"
    welcome = await ann.resume()
    assert [e.id for e in welcome.engagements] == [eid]
    await ann.end(eid)
    await ann.disposition(eid, ["ok"])
    await ann.wrap_up_done(eid)
    assert (await api.get(f"{a.http}/v1/engagements/{eid}")).json()["state"] == "closed"
    await ann.close()


async def wait_until(check: object, timeout: float = 10.0) -> None:
    """Poll an async predicate (bounded in time) until it holds."""
    deadline = time.monotonic() + timeout
    while not await check():  # type: ignore[operator]
        if time.monotonic() > deadline:
            raise AssertionError(f"still not true after {timeout}s: {check}")
        await asyncio.sleep(0.05)


async def ready(api: httpx.AsyncClient, node: NodeProcess) -> bool:
    return (await api.get(f"{node.http}/readyz")).status_code == 200


async def test_redis_restarted_empty_under_the_nodes_clients_start_afresh_and_routing_goes_on(
    private_redis: RedisServer, tmp_path: Path, api: httpx.AsyncClient
):
    with cluster(2, private_redis.url, tmp_path, secret=SECRET, api_key=API_KEY) as (a, b):
        ann = AgentClient(a.ws, token("ann"))
        await ann.open()
        await ann.set_status("ready")
        old_epoch = ann.epoch
        private_redis.stop(kill=True)

        async def unready() -> bool:
            return not await ready(api, a) and not await ready(api, b)

        await wait_until(unready)
        down = await api.post(f"{b.http}/v1/engagements", json={"queue": "calls"})
        assert (down.status_code, down.json()["code"]) == (503, "unavailable")

        private_redis.start()
        await wait_until(lambda: ready(api, a))
        await wait_until(lambda: ready(api, b))
        # the store lost everything (no persistence): the socket is closed so the desktop starts afresh
        await wait_until(lambda: _closed(ann))
        assert ann.closed is not None and ann.closed.code == 1001
        welcome = await ann.resume()
        assert welcome.resumed is False and welcome.epoch != old_epoch
        assert welcome.status == "not_ready"
        await ann.set_status("ready")
        eid = (await api.post(f"{b.http}/v1/engagements", json={"queue": "calls"})).json()["id"]
        ring = await ann.next_event("ring")
        assert ring.engagement.id == eid
        await ann.close()


async def _closed(client: AgentClient) -> bool:
    return client.closed is not None


async def test_redis_restarted_with_its_data_the_nodes_resubscribe_and_sockets_carry_on(
    tmp_path: Path, api: httpx.AsyncClient
):
    redis = RedisServer(tmp_path / "redis", appendonly=True)
    redis.start()
    try:
        with cluster(2, redis.url, tmp_path, secret=SECRET, api_key=API_KEY) as (a, b):
            async with AgentClient.connect(a.ws, token("ann")) as ann:
                await ann.set_status("ready")
                first = (await api.post(f"{b.http}/v1/engagements", json={"queue": "chat"})).json()["id"]
                await ann.next_event("engagement")
                redis.restart(kill=False)  # a clean restart: the append-only file keeps everything
                await wait_until(lambda: ready(api, a))
                await wait_until(lambda: ready(api, b))
                await asyncio.sleep(0.3)
                assert ann.closed is None
                second = (await api.post(f"{b.http}/v1/engagements", json={"queue": "chat"})).json()["id"]
                event = await ann.next_event("engagement", where=lambda e: e.engagement.id == second)
                assert event.engagement.state == "active"
                held = {e["id"] for e in [(await api.get(f"{a.http}/v1/engagements/{first}")).json()]}
                assert held == {first}
                seqs = [e.seq for e in ann.drain() if isinstance(e, Event)]
                assert seqs == sorted(set(seqs))
    finally:
        redis.stop()


async def test_handling_across_nodes_transcript_chat_email_transfer_and_a_supervisor(
    three: list[NodeProcess], api: httpx.AsyncClient
):
    a, b, c = three
    async with (
        AgentClient.connect(b.ws, token("ann")) as ann,
        AgentClient.connect(c.ws, token("ben")) as ben,
        SupervisorClient.connect(a.ws, token("sue", "supervisor")) as sue,
    ):
        await ann.set_status("ready")
        call = (await api.post(f"{a.http}/v1/engagements", json={"queue": "calls"})).json()["id"]
        hello = {"fragments": [{"speaker": "bot", "text": "Bonjour"}]}
        await api.post(f"{c.http}/v1/engagements/{call}/transcript", json=hello)
        await ann.accept((await ann.next_event("ring")).offer)
        assert [f.text for f in (await ann.next_event("transcript")).fragments] == ["Bonjour"]
        await sue.watch(call)
        lost = {"fragments": [{"speaker": "consumer", "text": "Mon colis est perdu"}]}
        await api.post(f"{a.http}/v1/engagements/{call}/transcript", json=lost)
        assert (await ann.next_event("transcript")).fragments[0].text == "Mon colis est perdu"
        watched = await sue.next_event("transcript", where=lambda t: t.fragments[0].text.startswith("Mon"))
        assert watched.engagement == call
        assert [h.text for h in (await ann.search(call, "colis PERDU")).hits] == ["Mon colis est perdu"]

        await ben.set_status("ready")
        await ann.transfer(call, agent="ben")  # ann on B, ben on C
        ring = await ben.next_event("ring")
        await ben.accept(ring.offer)
        assert (await ben.next_event("transcript")).fragments[-1].text == "Mon colis est perdu"

        chat = (await api.post(f"{b.http}/v1/engagements", json={"queue": "chat"})).json()
        holder = ann if chat["agent"] == "ann" else ben
        async with connect(f"{a.ws}/v1/consumer/{chat['id']}?token={chat['consumer_token']}") as ws:
            consumer = Raw(ws)
            await consumer.request({"type": "hello", "id": 1})
            await consumer.request({"type": "send", "id": 2, "engagement": chat["id"], "text": "Allô ?"})
            assert (await holder.next_event("message")).text == "Allô ?"
            await holder.send(chat["id"], "Oui, je vous écoute.")
            echo = await consumer.first(lambda f: f["type"] == "message" and f["direction"] == "out")
            assert echo["text"] == "Oui, je vous écoute."

        email = {"queue": "mail", "subject": "Colis", "body": "?"}
        mail = (await api.post(f"{c.http}/v1/engagements", json=email)).json()
        owner = ann if mail["agent"] == "ann" else ben
        await owner.send(mail["id"], "Réponse")
        record = (await api.get(f"{b.http}/v1/engagements/{mail['id']}")).json()
        assert record["state"] == "open" and [m["direction"] for m in record["messages"]] == ["in", "out"]
