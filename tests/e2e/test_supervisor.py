"""Supervisors over real sockets: live agent states and queue figures, watching a call, acting on it."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from clients.agent import AgentClient, RequestFailed, SupervisorClient
from protocol.frames import AgentState, QueueStats, Watch
from tests.e2e.conftest import AppFactory, handling_config
from tests.support import API_KEY, Running, serving, token


@pytest.fixture
async def desk(app_for: AppFactory) -> AsyncIterator[Running]:
    async with serving(app_for(handling_config())) as running:
        yield running


@pytest.fixture
async def api(desk: Running) -> AsyncIterator[httpx.AsyncClient]:
    headers = {"Authorization": f"Bearer {API_KEY}"}
    async with httpx.AsyncClient(base_url=desk.http, headers=headers, timeout=10) as client:
        yield client


async def test_a_supervisor_sees_agents_and_queues_live(desk: Running, api: httpx.AsyncClient):
    async with SupervisorClient.connect(desk.ws, token("sue", "supervisor")) as sue:
        initial = {(await sue.next_event("agent_state")).agent for _ in range(3)}
        assert initial == {"ann", "ben", "cat"}
        calls = await sue.next_event("queue_stats", where=lambda q: q.queue == "calls")
        assert (calls.waiting, calls.agents["offline"]) == (0, 2)

        for _ in range(3):
            await api.post("/v1/engagements", json={"queue": "calls"})
        waiting = await sue.next_event("queue_stats", where=lambda q: q.queue == "calls" and q.waiting == 3, timeout=5)
        assert isinstance(waiting, QueueStats) and waiting.longest_wait_s >= 0

        async with AgentClient.connect(desk.ws, token("ann")) as ann:
            await ann.set_status("ready")
            ringing = await sue.next_event("agent_state", where=lambda a: a.agent == "ann" and a.activity == "ringing")
            assert isinstance(ringing, AgentState) and ringing.status == "ready"
            ring = await ann.next_event("ring")
            await ann.accept(ring.offer)
            busy = await sue.next_event("agent_state", where=lambda a: a.agent == "ann" and a.activity == "busy")
            assert busy.engagements == [ring.engagement.id]
            after = await sue.next_event("queue_stats", where=lambda q: q.queue == "calls" and q.waiting == 2)
            assert after.agents["ready"] == 1
        seqs = [e.seq for e in sue.drain() if hasattr(e, "seq")]
        assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs)


async def test_a_supervisor_watches_a_call_and_acts_on_it_and_the_history_says_so(
    desk: Running, api: httpx.AsyncClient
):
    async with (
        SupervisorClient.connect(desk.ws, token("sue", "supervisor")) as sue,
        AgentClient.connect(desk.ws, token("ann")) as ann,
        AgentClient.connect(desk.ws, token("cat")) as cat,
    ):
        await ann.set_status("ready")
        await cat.set_status("ready")
        eid = (await api.post("/v1/engagements", json={"queue": "calls"})).json()["id"]
        await api.post(f"/v1/engagements/{eid}/transcript", json={"fragments": [{"speaker": "bot", "text": "Hi"}]})
        await ann.accept((await ann.next_event("ring")).offer)

        await sue.watch(eid)
        snapshot = await sue.next_event("engagement", where=lambda e: e.engagement.id == eid)
        assert snapshot.engagement.state == "active"
        so_far = await sue.next_event("transcript")
        assert [f.text for f in so_far.fragments] == ["Hi"]
        help_line = {"fragments": [{"speaker": "consumer", "text": "Help"}]}
        await api.post(f"/v1/engagements/{eid}/transcript", json=help_line)
        live = await sue.next_event("transcript")
        assert [f.text for f in live.fragments] == ["Help"]

        # the supervisor moves the call to billing, where cat takes it, then ends it and closes wrap-up
        await sue.force_transfer(eid, queue="billing")
        ring = await cat.next_event("ring")
        await cat.accept(ring.offer)
        await sue.force_end(eid)
        await sue.force_wrap_up_done(eid)
        await sue.set_agent_status("ann", "not_ready", "coaching")
        assert (await ann.next_event("status", where=lambda s: s.reason == "coaching")).status == "not_ready"
        await sue.unwatch(eid)

        history = (await api.get(f"/v1/engagements/{eid}")).json()["history"]
        by_sue = [(h["event"], h.get("queue")) for h in history if h["actor"] == "supervisor:sue"]
        assert by_sue == [("transferred", "billing"), ("ended", None), ("closed", None)]
    async with AgentClient.connect(desk.ws, token("ben")) as ben:
        with pytest.raises(RequestFailed) as refused:
            await ben.request(lambda i: Watch(id=i, engagement=eid))  # watching is for supervisors
        assert refused.value.code == "forbidden"


async def test_a_supervisor_moves_a_ringing_call_and_the_agents_rung_hear_it_was_taken(
    desk: Running, api: httpx.AsyncClient
):
    async with (
        SupervisorClient.connect(desk.ws, token("sue", "supervisor")) as sue,
        AgentClient.connect(desk.ws, token("ann")) as ann,
        AgentClient.connect(desk.ws, token("ben")) as ben,
        AgentClient.connect(desk.ws, token("cat")) as cat,
    ):
        await ann.set_status("ready")
        await cat.set_status("ready")
        to_queue = (await api.post("/v1/engagements", json={"queue": "calls"})).json()["id"]
        ring = await ann.next_event("ring", where=lambda r: r.engagement.id == to_queue)
        await sue.force_transfer(to_queue, queue="billing")
        cancelled = await ann.next_event("ring_cancelled")
        assert (cancelled.offer, cancelled.reason, cancelled.engagement) == (ring.offer, "taken", to_queue)
        moved = await cat.next_event("ring", where=lambda r: r.engagement.id == to_queue)
        assert moved.engagement.queue == "billing"
        await cat.accept(moved.offer)
        history = (await api.get(f"/v1/engagements/{to_queue}")).json()["history"]
        by_sue = [(h["event"], h.get("agent"), h.get("queue")) for h in history if h["actor"] == "supervisor:sue"]
        assert by_sue == [("rescinded", "ann", None), ("transferred", None, "billing")]
        assert [h["event"] for h in history][-3:] == ["transferred", "offered", "accepted"]

        # to an agent, whatever their status: ben (not ready) rings, and ann is free for the next call
        to_agent = (await api.post("/v1/engagements", json={"queue": "calls"})).json()["id"]
        ring = await ann.next_event("ring", where=lambda r: r.engagement.id == to_agent)
        await sue.force_transfer(to_agent, agent="ben")
        cancelled = await ann.next_event("ring_cancelled")
        assert (cancelled.offer, cancelled.reason) == (ring.offer, "taken")
        rung = await ben.next_event("ring", where=lambda r: r.engagement.id == to_agent)
        await ben.accept(rung.offer)
        record = (await api.get(f"/v1/engagements/{to_agent}")).json()
        assert (record["state"], record["agent"]) == ("active", "ben")
        assert (await api.get("/v1/agents/ann")).json()["status"] == "ready"  # a taken ring is no missed one


async def test_a_supervisors_status_change_is_in_the_agents_status_history(desk: Running, api: httpx.AsyncClient):
    async with (
        SupervisorClient.connect(desk.ws, token("sue", "supervisor")) as sue,
        AgentClient.connect(desk.ws, token("ann")) as ann,
    ):
        await ann.set_status("ready")
        await sue.set_agent_status("ann", "not_ready", "coaching")
        await ann.next_event("status", where=lambda s: s.reason == "coaching")
        detail = (await api.get("/v1/agents/ann")).json()
        steps = [(h["actor"], h["status"], h["reason"], h["deferred"]) for h in detail["history"]]
        assert steps == [
            ("agent:ann", "not_ready", None, False),  # signing in
            ("agent:ann", "ready", None, False),
            ("supervisor:sue", "not_ready", "coaching", False),
        ]
        times = [h["at"] for h in detail["history"]]
        assert times == sorted(times)
        listing = (await api.get("/v1/agents")).json()
        assert next(a for a in listing if a["id"] == "ann")["status"] == "not_ready"
        assert all("history" not in a for a in listing)  # the listing stays small
