"""Chat and email over real sockets: both directions stored, the consumer's socket, webhooks, the open
list, inactivity, and transfers of a call, a chat and an email."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosed

from clients.agent import AgentClient, RequestFailed
from protocol.frames import MessageEvent, Ring
from tests.e2e.conftest import AppFactory, Raw, handling_config
from tests.support import API_KEY, Running, serving, token


@pytest.fixture
async def hooks() -> AsyncIterator[tuple[Running, asyncio.Queue[tuple[dict[str, Any], str]]]]:
    """A webhook receiver on its own port, as a consumer-side chat gateway would be."""
    received: asyncio.Queue[tuple[dict[str, Any], str]] = asyncio.Queue()

    async def hook(request: Request) -> Response:
        body = await request.body()
        received.put_nowait((json.loads(body), request.headers.get("x-switchboard-signature", "")))
        return Response(status_code=204)

    async with serving(Starlette(routes=[Route("/hook", hook, methods=["POST"])])) as running:
        yield running, received


@pytest.fixture
async def desk(app_for: AppFactory, hooks: tuple[Running, Any]) -> AsyncIterator[Running]:
    config = handling_config(webhook_url=f"{hooks[0].http}/hook", inactivity_close_s=1.5)
    async with serving(app_for(config)) as running:
        yield running


@pytest.fixture
async def api(desk: Running) -> AsyncIterator[httpx.AsyncClient]:
    headers = {"Authorization": f"Bearer {API_KEY}"}
    async with httpx.AsyncClient(base_url=desk.http, headers=headers, timeout=10) as client:
        yield client


async def test_a_chat_both_ways_through_the_consumer_socket_and_the_webhook(
    desk: Running, api: httpx.AsyncClient, hooks: tuple[Running, asyncio.Queue[tuple[dict[str, Any], str]]]
):
    async with AgentClient.connect(desk.ws, token("ann")) as ann:
        await ann.set_status("ready")
        created = (
            await api.post("/v1/engagements", json={"queue": "chat", "consumer": {"name": "Omar"}, "body": "Hi there"})
        ).json()
        eid, consumer_token = created["id"], created["consumer_token"]
        assert created["state"] == "active" and created["messages"][0]["text"] == "Hi there"
        await ann.next_event("engagement")

        async with connect(f"{desk.ws}/v1/consumer/{eid}?token={consumer_token}") as ws:
            consumer = Raw(ws)
            welcome = await consumer.request({"type": "hello", "id": 1})
            assert (welcome["type"], welcome["role"]) == ("welcome", "consumer")
            conversation = await consumer.until("conversation")
            assert conversation["state"] == "active" and conversation["agent_name"] == "Ann"
            assert [m["text"] for m in conversation["messages"]] == ["Hi there"]
            assert "notes" not in conversation and "profile" not in conversation

            # consumer -> agent, over HTTP and over the consumer's own socket
            await api.post(f"/v1/engagements/{eid}/messages", json={"text": "Do you ship to Lyon?"})
            line = await ann.next_event("message")
            assert isinstance(line, MessageEvent) and (line.direction, line.sender, line.text) == (
                "in",
                "Omar",
                "Do you ship to Lyon?",
            )
            sent = await consumer.request({"type": "send", "id": 2, "engagement": eid, "text": "Tomorrow?"})
            assert sent["type"] == "ok"
            assert (await ann.next_event("message")).text == "Tomorrow?"

            # agent -> consumer: stored, on the consumer's socket, and posted to the webhook, signed
            ok = await ann.send(eid, "Yes, delivery in 2 days.")
            assert ok.message
            echo = await consumer.first(lambda f: f["type"] == "message" and f["direction"] == "out")
            assert echo["text"] == "Yes, delivery in 2 days." and echo["sender"] == "Ann"
            posted, signature = await asyncio.wait_for(hooks[1].get(), 10)
            assert posted["engagement"] == eid and posted["message"]["text"] == "Yes, delivery in 2 days."
            body = json.dumps(posted, separators=(",", ":")).encode()
            expected = hmac.new(b"hook-secret", body, hashlib.sha256).hexdigest()
            assert signature == f"sha256={expected}"

            others = await consumer.request({"type": "send", "id": 3, "engagement": "e-other", "text": "x"})
            assert others["code"] == "not_yours"
            agent_only = await consumer.request({"type": "end", "id": 4, "engagement": eid})
            assert agent_only["code"] == "forbidden"

        thread = (await api.get(f"/v1/engagements/{eid}")).json()["messages"]
        assert [(m["direction"], m["text"]) for m in thread] == [
            ("in", "Hi there"),
            ("in", "Do you ship to Lyon?"),
            ("in", "Tomorrow?"),
            ("out", "Yes, delivery in 2 days."),
        ]


async def test_the_consumer_socket_needs_the_token_of_that_engagement(desk: Running, api: httpx.AsyncClient):
    first = (await api.post("/v1/engagements", json={"queue": "chat"})).json()
    second = (await api.post("/v1/engagements", json={"queue": "chat"})).json()
    async with connect(f"{desk.ws}/v1/consumer/{second['id']}?token={first['consumer_token']}") as ws:
        with pytest.raises(ConnectionClosed) as closed:
            await ws.recv()
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 4401
    async with connect(f"{desk.ws}/v1/consumer/{first['id']}?token={token('ann')}") as ws:
        with pytest.raises(ConnectionClosed) as closed:
            await ws.recv()
    assert closed.value.rcvd is not None and closed.value.rcvd.code == 4403


async def test_an_email_lands_in_the_open_list_is_opened_answered_and_resolved(desk: Running, api: httpx.AsyncClient):
    async with AgentClient.connect(desk.ws, token("ann")) as ann:
        await ann.set_status("ready")
        await ann.set_status("not_ready", "lunch")
        email = {"queue": "mail", "consumer": {"email": "jo@example.com"}, "subject": "Invoice 77"}
        email["body"] = "Where is it?"
        eid = (await api.post("/v1/engagements", json=email)).json()["id"]
        await ann.set_status("ready")
        assigned = await ann.next_event("engagement")
        assert (assigned.engagement.state, assigned.engagement.subject) == ("assigned", "Invoice 77")
        assert not [e for e in ann.drain() if isinstance(e, Ring)]  # no ring for email
        await ann.open_engagement(eid)
        await ann.send(eid, "Attached, sorry for the wait.")
        await api.post(f"/v1/engagements/{eid}/messages", json={"text": "Got it, thanks!"})
        reply = await ann.next_event("message", where=lambda m: m.direction == "in")
        assert reply.sender == "jo@example.com"
        with pytest.raises(RequestFailed) as refused:
            await ann.end(eid)
        assert refused.value.code == "disposition_required"
        await ann.disposition(eid, ["answered"])
        await ann.end(eid)
        record = (await api.get(f"/v1/engagements/{eid}")).json()
        assert record["state"] == "resolved"
        assert [(m["direction"], m["subject"]) for m in record["messages"]] == [
            ("in", "Invoice 77"),
            ("out", "Re: Invoice 77"),
            ("in", None),
        ]
        assert [h["event"] for h in record["history"]] == ["created", "assigned", "opened", "disposition", "resolved"]


async def test_a_consumer_who_ends_an_email_leaves_it_with_the_agent_to_resolve(app_for: AppFactory):
    headers = {"Authorization": f"Bearer {API_KEY}"}
    async with (
        serving(app_for(handling_config())) as desk,  # no inactivity limit: the email waits for ann
        httpx.AsyncClient(base_url=desk.http, headers=headers, timeout=10) as api,
        AgentClient.connect(desk.ws, token("ann")) as ann,
    ):
        await ann.set_status("not_ready", "lunch")
        waiting = (await api.post("/v1/engagements", json={"queue": "mail", "body": "Hello?"})).json()["id"]
        gone = await api.post(f"/v1/engagements/{waiting}/end")  # nobody has it yet: abandoned
        assert (gone.status_code, gone.json()["state"]) == (200, "abandoned")

        await ann.set_status("ready")
        eid = (await api.post("/v1/engagements", json={"queue": "mail", "body": "Where is it?"})).json()["id"]
        await ann.next_event("engagement", where=lambda e: e.engagement.id == eid)
        ended = await api.post(f"/v1/engagements/{eid}/end")
        assert ended.status_code == 200
        assert (ended.json()["state"], ended.json()["agent"]) == ("assigned", "ann")
        told = await ann.next_event("engagement", where=lambda e: e.engagement.id == eid)
        last = told.engagement.history[-1]
        assert (told.engagement.state, last.event, last.actor) == ("assigned", "consumer_ended", "consumer")
        again = await api.post(f"/v1/engagements/{eid}/end")  # a retry changes nothing
        assert again.status_code == 200 and again.json()["history"] == ended.json()["history"]

        await ann.open_engagement(eid)  # still in her open list, hers to answer and resolve
        await ann.send(eid, "It left our warehouse today.")
        await ann.disposition(eid, ["answered"])
        await ann.end(eid)
        record = (await api.get(f"/v1/engagements/{eid}")).json()
        assert record["state"] == "resolved"
        assert [h["event"] for h in record["history"]] == [
            "created", "assigned", "consumer_ended", "opened", "disposition", "resolved",
        ]  # fmt: skip


async def test_an_email_left_alone_past_the_queues_limit_closes_by_itself(desk: Running, api: httpx.AsyncClient):
    async with AgentClient.connect(desk.ws, token("ann")) as ann:
        await ann.set_status("ready")
        eid = (await api.post("/v1/engagements", json={"queue": "mail", "body": "hello?"})).json()["id"]
        await ann.next_event("engagement")
        resolved = await ann.next_event("engagement", where=lambda e: e.engagement.state == "resolved", timeout=6)
        last = resolved.engagement.history[-1]
        assert (last.actor, last.reason) == ("system", "inactivity")
        assert eid not in {e for a in (await api.get("/v1/agents")).json() for e in a["engagements"]}


async def test_transfer_a_call_a_chat_and_an_email_and_the_former_agent_can_no_longer_act(
    desk: Running, api: httpx.AsyncClient
):
    async with (
        AgentClient.connect(desk.ws, token("ann")) as ann,
        AgentClient.connect(desk.ws, token("ben")) as ben,
        AgentClient.connect(desk.ws, token("cat")) as cat,
    ):
        for a in (ann, ben, cat):
            await a.set_status("ready")
        # a call, to another queue: cat (billing, with ben away) rings
        await ben.set_status("not_ready", "break")
        call = (await api.post("/v1/engagements", json={"queue": "calls"})).json()["id"]
        first = await ann.next_event("ring")
        await ann.accept(first.offer)
        await ann.note(call, "billing question")
        await ann.transfer(call, queue="billing")
        gone = await ann.next_event(
            "engagement", where=lambda e: e.engagement.id == call and e.engagement.agent != "ann"
        )
        assert gone.engagement.agent is None and gone.engagement.state == "offered"  # no longer hers
        ring = await cat.next_event("ring")
        assert ring.engagement.id == call and ring.engagement.notes == "billing question"
        await cat.accept(ring.offer)
        with pytest.raises(RequestFailed) as refused:
            await ann.note(call, "still here?")
        assert refused.value.code == "not_yours"
        await ben.set_status("ready")

        # a chat, to an agent: it rings ben
        chat = (await api.post("/v1/engagements", json={"queue": "chat", "body": "hi"})).json()["id"]
        held = await ann.next_event("engagement", where=lambda e: e.engagement.id == chat)
        assert held.engagement.agent == "ann"
        await ann.transfer(chat, agent="ben")
        ben_ring = await ben.next_event("ring", where=lambda r: r.engagement.id == chat)
        await ben.accept(ben_ring.offer)
        with pytest.raises(RequestFailed) as refused:
            await ann.send(chat, "hello again")
        assert refused.value.code == "not_yours"

        # an email, to an agent: into their open list
        mail = (await api.post("/v1/engagements", json={"queue": "mail", "subject": "S", "body": "B"})).json()["id"]
        first_holder = (await api.get(f"/v1/engagements/{mail}")).json()["agent"]
        holder, other = (ann, ben) if first_holder == "ann" else (ben, ann)
        await holder.transfer(mail, agent=other.welcome.agent)  # type: ignore[union-attr]
        landed = await other.next_event("engagement", where=lambda e: e.engagement.id == mail)
        assert landed.engagement.state == "assigned"

        for eid in (call, chat, mail):
            history = (await api.get(f"/v1/engagements/{eid}")).json()["history"]
            assert "transferred" in [h["event"] for h in history]
