"""Dropped sockets: resume from the last seq, re-sent rings within the grace, connection_lost after it."""

from __future__ import annotations

import httpx

from clients.agent import AgentClient, SupervisorClient
from protocol.frames import Event, Ring
from tests.e2e.conftest import AppFactory, center_config, raw_agent
from tests.support import API_KEY, Running, serving, token


async def test_resume_replays_exactly_the_missed_events_in_order(live: Running, api: httpx.AsyncClient):
    async with AgentClient.connect(live.ws, token("cat")) as cat:
        await cat.set_status("ready")
        first = (await api.post("/v1/engagements", json={"queue": "calls"})).json()["id"]
        ring = await cat.next_event("ring")
        await cat.accept(ring.offer)
        await cat.next_event("engagement")
        seen = cat.last_seq
        cat.drain()  # what the test passed over (the status events): not what it looks at below
        await cat.drop()

        # while cat is away: the consumer hangs up, a new call waits (cat is busy in wrap-up)
        await api.post(f"/v1/engagements/{first}/end")
        second = (await api.post("/v1/engagements", json={"queue": "calls"})).json()["id"]

        welcome = await cat.resume()
        assert welcome.resumed is True
        assert welcome.seq > seen
        assert [e.id for e in welcome.engagements] == [first]
        replayed = []
        while len(replayed) < welcome.seq - seen:
            replayed.append(await cat.next_event())
        assert [e.seq for e in replayed] == list(range(seen + 1, welcome.seq + 1))
        wrap = [e for e in replayed if getattr(e, "engagement", None) and e.engagement.state == "wrap_up"]
        assert len(wrap) == 1
        # and live events continue right after, with the next seq
        await cat.disposition(first, ["resolved"])
        await cat.wrap_up_done(first)
        ring2 = await cat.next_event("ring")
        assert ring2.engagement.id == second
        assert ring2.seq > welcome.seq
        assert not [e for e in cat.drain() if isinstance(e, Event) and e.seq <= welcome.seq]


async def test_resume_from_a_gap_older_than_the_log_gives_a_fresh_snapshot(app_for: AppFactory):
    async with serving(app_for(center_config(event_log_size=3))) as live:
        headers = {"Authorization": f"Bearer {API_KEY}"}
        async with (
            httpx.AsyncClient(base_url=live.http, headers=headers) as api,
            AgentClient.connect(live.ws, token("ann")) as ann,
        ):
            await ann.set_status("ready")
            chats = [(await api.post("/v1/engagements", json={"queue": "chat"})).json()["id"] for _ in range(3)]
            await ann.drop()
            for eid in chats:  # each hang-up while she is away is an `engagement` event she misses
                await api.post(f"/v1/engagements/{eid}/end")
            async with SupervisorClient.connect(live.ws, token("sue", "supervisor")) as sue:
                await sue.set_agent_status("ann", "not_ready", "meeting")  # her next status: a 4th event
            welcome = await ann.resume()
            assert welcome.resumed is False
            assert welcome.status == "ready"  # back within the grace: as she was
            assert {e.state for e in welcome.engagements} == {"wrap_up"}
            assert len(welcome.engagements) == 3


async def test_resume_with_another_servers_epoch_is_not_a_resume(live: Running):
    raw, welcome = await raw_agent(live, "ann", resume_from=0, epoch="someone-else")
    assert welcome["resumed"] is False
    raw2, welcome2 = await raw_agent(live, "ben", resume_from=0, epoch=welcome["epoch"])
    assert welcome2["resumed"] is True
    await raw.ws.close()
    await raw2.ws.close()


async def test_a_ring_is_resent_with_its_original_deadline_when_the_agent_comes_back(
    live: Running, api: httpx.AsyncClient
):
    ann = AgentClient(live.ws, token("ann"))
    await ann.open()
    await ann.set_status("ready")
    eid = (await api.post("/v1/engagements", json={"queue": "calls"})).json()["id"]
    ring = await ann.next_event("ring")
    await ann.drop()
    # a fresh page (no resume_from): the welcome lists the running ring and the ring comes again
    async with AgentClient.connect(live.ws, token("ann")) as again:
        assert again.welcome is not None and again.welcome.status == "ready"
        assert [(r.offer, r.expires_at) for r in again.welcome.offers] == [(ring.offer, ring.expires_at)]
        resent = await again.next_event("ring")
        assert isinstance(resent, Ring)
        assert (resent.offer, resent.expires_at, resent.engagement.id) == (ring.offer, ring.expires_at, eid)
        await again.accept(resent.offer)
        assert (await api.get(f"/v1/engagements/{eid}")).json()["agent"] == "ann"


async def test_after_the_grace_the_agent_is_not_ready_connection_lost_and_the_call_rings_elsewhere(
    live: Running, api: httpx.AsyncClient
):
    async with AgentClient.connect(live.ws, token("ben")) as ben:
        ann = AgentClient(live.ws, token("ann"))
        await ann.open()
        await ann.set_status("ready")
        await ben.set_status("ready")
        await ben.set_status("not_ready", "lunch")
        eid = (await api.post("/v1/engagements", json={"queue": "calls"})).json()["id"]
        await ann.next_event("ring")
        await ann.drop()
        await ben.set_status("ready")
        ring = await ben.next_event("ring", timeout=4)  # grace is 2 s; the ring's own deadline is 3 s
        assert ring.engagement.id == eid
        agents = {a["id"]: a for a in (await api.get("/v1/agents")).json()}
        assert (agents["ann"]["status"], agents["ann"]["reason"]) == ("not_ready", "connection_lost")
        assert agents["ann"]["connected"] is False
        async with AgentClient.connect(live.ws, token("ann")) as back:
            assert back.welcome is not None
            assert (back.welcome.status, back.welcome.reason) == ("not_ready", "connection_lost")


async def test_two_sockets_of_one_agent_both_see_every_event(live: Running, api: httpx.AsyncClient):
    async with (
        AgentClient.connect(live.ws, token("ann")) as tab1,
        AgentClient.connect(live.ws, token("ann"), subprotocol="switchboard.v1.msgpack") as tab2,
    ):
        await tab1.set_status("ready")
        await api.post("/v1/engagements", json={"queue": "calls"})
        r1, r2 = await tab1.next_event("ring"), await tab2.next_event("ring")
        assert (r1.offer, r1.seq) == (r2.offer, r2.seq)
        await tab2.decline(r2.offer)
        c1 = await tab1.next_event("ring_cancelled")
        assert c1.offer == r1.offer
