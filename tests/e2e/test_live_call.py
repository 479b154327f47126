"""A live call end to end over real sockets: HTTP ingest, rings, decline, accept, wrap-up, next call."""

from __future__ import annotations

import httpx
import pytest

from clients.agent import AgentClient, RequestFailed
from protocol.frames import EngagementEvent, Ring, RingCancelled, StatusEvent
from tests.e2e.conftest import raw_agent
from tests.support import Running, token


async def test_a_call_goes_from_ring_to_decline_to_accept_to_wrap_up_and_the_next_call_rings(
    live: Running, api: httpx.AsyncClient
):
    raw_ann, welcome = await raw_agent(live, "ann")
    assert welcome["status"] == "not_ready"
    assert welcome["resumed"] is False
    ok = await raw_ann.request({"type": "set_status", "id": 1, "status": "ready"})
    assert ok["type"] == "ok" and ok["status"] == "ready"
    async with (
        AgentClient.connect(live.ws, token("ben")) as ben,
        AgentClient.connect(live.ws, token("cat"), subprotocol="switchboard.v1.msgpack") as cat,
    ):
        await ben.set_status("ready")
        await cat.set_status("ready")
        await cat.set_status("not_ready", "training")

        created = await api.post(
            "/v1/engagements",
            json={
                "queue": "calls",
                "consumer": {"phone": "+33612345678"},
                "variables": {"order": "A-1042", "intent": "refund"},
                "summary": "The bot could not find order A-1042; the consumer asks for a refund.",
            },
        )
        assert created.status_code == 201
        eid = created.json()["id"]
        assert created.json()["state"] == "offered"

        # ann has been ready longest: her desktop rings, with everything the flow knew
        ring = await raw_ann.until("ring")
        assert ring["engagement"]["id"] == eid
        assert ring["engagement"]["variables"] == {"order": "A-1042", "intent": "refund"}
        assert ring["engagement"]["summary"].startswith("The bot could not find")
        assert ring["engagement"]["profile"]["name"] == "Jeanne Dupont"
        assert ring["engagement"]["profile"]["fields"]["tier"] == "gold"
        assert ring["engagement"]["channel"] == "voice" and ring["engagement"]["queue_name"] == "Calls"
        assert ring["expires_at"] > ring["engagement"]["created_at"]

        declined = await raw_ann.request({"type": "decline", "id": 2, "offer": ring["offer"], "reason": "on break"})
        assert declined["type"] == "ok"
        cancelled = await raw_ann.until("ring_cancelled")
        assert cancelled["reason"] == "declined" and cancelled["offer"] == ring["offer"]

        # the next eligible agent rings; cat is not ready and never does
        ben_ring = await ben.next_event("ring")
        assert isinstance(ben_ring, Ring) and ben_ring.engagement.id == eid
        assert ben_ring.offer != ring["offer"]
        ok = await ben.accept(ben_ring.offer)
        assert ok.engagement == eid
        active = await ben.next_event("engagement")
        assert isinstance(active, EngagementEvent) and active.engagement.state == "active"

        await ben.note(eid, "Refund approved for order A-1042")
        await ben.end(eid)
        wrap = await ben.next_event("engagement", where=lambda e: e.engagement.state == "wrap_up")
        assert wrap.engagement.wrap_up_until is not None
        with pytest.raises(RequestFailed) as refused:
            await ben.wrap_up_done(eid)
        assert refused.value.code == "disposition_required"
        await ben.disposition(eid, ["resolved"])
        await ben.wrap_up_done(eid)
        closed = await ben.next_event("engagement", where=lambda e: e.engagement.state == "closed")
        assert closed.engagement.notes == "Refund approved for order A-1042"

        record = (await api.get(f"/v1/engagements/{eid}")).json()
        assert record["state"] == "closed" and record["agent"] == "ben"
        assert record["dispositions"] == ["resolved"]
        events = [(h["event"], h["actor"]) for h in record["history"]]
        assert events == [
            ("created", "api"),
            ("offered", "system"),
            ("declined", "agent:ann"),
            ("requeued", "system"),
            ("offered", "system"),
            ("accepted", "agent:ben"),
            ("ended", "agent:ben"),
            ("disposition", "agent:ben"),
            ("closed", "agent:ben"),
        ]
        assert record["history"][1]["routing"]["chosen"] == ["ann"]

        # ready again: ben is rung for the next call once ann turns it down
        second = (await api.post("/v1/engagements", json={"queue": "calls"})).json()["id"]
        ring2 = await raw_ann.until("ring")
        await raw_ann.request({"type": "decline", "id": 3, "offer": ring2["offer"]})
        ben_ring2 = await ben.next_event("ring")
        assert ben_ring2.engagement.id == second
        assert not any(isinstance(e, Ring) for e in cat.drain())
    await raw_ann.ws.close()


async def test_an_unanswered_ring_times_out_the_agent_goes_not_ready_missed_and_the_next_rings(
    live: Running, api: httpx.AsyncClient
):
    async with (
        AgentClient.connect(live.ws, token("ann")) as ann,
        AgentClient.connect(live.ws, token("ben")) as ben,
    ):
        await ann.set_status("ready")
        await ben.set_status("ready")
        eid = (await api.post("/v1/engagements", json={"queue": "quick"})).json()["id"]
        ring = await ann.next_event("ring")
        cancelled = await ann.next_event("ring_cancelled", timeout=3)
        assert isinstance(cancelled, RingCancelled) and cancelled.reason == "timeout" and cancelled.offer == ring.offer
        status = await ann.next_event("status", where=lambda s: s.reason == "missed")
        assert isinstance(status, StatusEvent) and status.status == "not_ready"
        ben_ring = await ben.next_event("ring", timeout=3)
        assert ben_ring.engagement.id == eid


async def test_auto_accept_queue_starts_the_chat_on_the_agent(live: Running, api: httpx.AsyncClient):
    async with AgentClient.connect(live.ws, token("ann")) as ann:
        await ann.set_status("ready")
        created = await api.post("/v1/engagements", json={"queue": "chat", "consumer": {"name": "Omar"}})
        assert created.json()["state"] == "active" and created.json()["agent"] == "ann"
        event = await ann.next_event("engagement")
        assert event.engagement.state == "active" and event.engagement.consumer.name == "Omar"
        assert not any(isinstance(e, Ring) for e in ann.drain())


async def test_consumer_hangs_up_during_the_ring(live: Running, api: httpx.AsyncClient):
    async with AgentClient.connect(live.ws, token("cat")) as cat:
        await cat.set_status("ready")
        eid = (await api.post("/v1/engagements", json={"queue": "calls"})).json()["id"]
        ring = await cat.next_event("ring")
        ended = await api.post(f"/v1/engagements/{eid}/end")
        assert ended.status_code == 200 and ended.json()["state"] == "abandoned"
        cancelled = await cat.next_event("ring_cancelled")
        assert (cancelled.offer, cancelled.reason) == (ring.offer, "abandoned")
        with pytest.raises(RequestFailed) as refused:
            await cat.accept(ring.offer)
        assert refused.value.code == "not_found"
        assert (await api.get(f"/v1/engagements/{eid}")).json()["state"] == "abandoned"
