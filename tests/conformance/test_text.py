"""Chat and email: auto-accepted chats, the thread both ways (`send`, `message`), the email open list
(`open`, replies, `end` resolving it), and the consumer's own socket (`conversation`, an extension)."""

from __future__ import annotations

import pytest

from tests.conformance.harness import Harness, of


async def test_an_auto_queue_starts_the_chat_at_once_and_the_thread_flows_both_ways(h: Harness) -> None:
    queue = h.center.find_queue("an auto-accept chat queue", channel="chat", acceptance="auto")
    agent_id = h.center.able(queue["id"])[0]
    sock = await h.agent(agent_id, ready=True)
    eid = (await h.create(queue["id"], consumer={"name": "Omar"}))["id"]
    started = await sock.expect("engagement", where=of(eid, "active"))
    assert started["engagement"]["channel"] == "chat" and started["engagement"]["agent"] == agent_id
    assert not [f for f in sock.buffer if f["type"] == "ring"]  # no ring on an auto queue

    posted = await h.api.post(f"/v1/engagements/{eid}/messages", json={"text": "Hello, any discount?"})
    assert posted.status_code == 202, posted.text
    await sock.expect("message", engagement=eid, text="Hello, any discount?")
    await sock.ok({"type": "send", "engagement": eid, "text": "Yes: 10% today"})
    await sock.expect("message", engagement=eid, text="Yes: 10% today")
    thread = (await h.engagement(eid))["messages"]
    assert [m["text"] for m in thread] == ["Hello, any discount?", "Yes: 10% today"]

    await sock.ok({"type": "end", "engagement": eid})
    await sock.expect("engagement", where=of(eid, "wrap_up"))
    late = await h.api.post(f"/v1/engagements/{eid}/messages", json={"text": "still there?"})
    assert late.status_code == 409 and late.json()["code"] == "invalid_state"
    await sock.ok({"type": "wrap_up_done", "engagement": eid})
    await sock.expect("engagement", where=of(eid, "closed"))


@pytest.mark.extension
async def test_chat_extensions(h: Harness) -> None:
    """`POST` answers already started; `202 {id}`; `message` adds id, direction, sender and ts; `ok` answers
    `send` with the engagement and the message id."""
    queue = h.center.find_queue("an auto-accept chat queue", channel="chat", acceptance="auto")
    agent_id = h.center.able(queue["id"])[0]
    sock = await h.agent(agent_id, ready=True)
    created = await h.create(queue["id"], consumer={"name": "Omar"})
    eid = created["id"]
    assert created["state"] == "active" and created["agent"] == agent_id
    posted = await h.api.post(f"/v1/engagements/{eid}/messages", json={"text": "Hello, any discount?"})
    assert isinstance(posted.json()["id"], str)
    incoming = await sock.expect("message", engagement=eid, direction="in")
    assert incoming["id"] == posted.json()["id"] and incoming["text"] == "Hello, any discount?"
    assert incoming["sender"] == "Omar" and isinstance(incoming["ts"], float)
    reply = await sock.ok({"type": "send", "engagement": eid, "text": "Yes: 10% today"})
    assert reply["engagement"] == eid and isinstance(reply["message"], str)
    outgoing = await sock.expect("message", engagement=eid, direction="out")
    assert outgoing["id"] == reply["message"] and outgoing["text"] == "Yes: 10% today"
    assert outgoing["sender"] == h.center.agents[agent_id]["name"]
    thread = (await h.engagement(eid))["messages"]
    assert [(m["direction"], m["text"]) for m in thread] == [("in", "Hello, any discount?"), ("out", "Yes: 10% today")]


async def test_send_on_a_voice_call_is_not_enabled(h: Harness) -> None:
    queue = h.center.find_queue("a manual voice queue", channel="voice", acceptance="manual")
    sock, ring = await h.call(h.center.able(queue["id"])[0], queue["id"])
    await sock.refused({"type": "send", "engagement": ring["engagement"]["id"], "text": "hi"}, "not_enabled")
    posted = await h.api.post(f"/v1/engagements/{ring['engagement']['id']}/messages", json={"text": "hi"})
    assert posted.status_code == 409 and posted.json()["code"] == "not_enabled"


async def test_an_email_lands_in_the_open_list_is_opened_answered_and_resolved(h: Harness) -> None:
    queue = h.center.find_queue("an email queue", channel="email")
    agent_id = h.center.able(queue["id"])[0]
    sock = await h.agent(agent_id, ready=True)
    created = await h.create(
        queue["id"],
        consumer={"email": "mei@example.net", "name": "Mei"},
        subject="Order 42",
        body="Where is my parcel?",
    )
    eid = created["id"]
    assigned = await sock.expect("engagement", where=of(eid, "assigned"))
    assert assigned["engagement"]["agent"] == agent_id
    assert [m["text"] for m in assigned["engagement"]["messages"]] == ["Where is my parcel?"]
    assert not [f for f in sock.buffer if f["type"] == "ring"]  # email is never rung

    # holding only emails, a status change applies at once
    await sock.ok({"type": "set_status", "status": "not_ready", "reason": "focus"})
    await sock.expect("status", status="not_ready", reason="focus")
    assert (await h.agent_info(agent_id))["status"] == "not_ready"

    await sock.ok({"type": "open", "engagement": eid})
    await sock.expect("engagement", where=of(eid, "open"))
    await sock.ok({"type": "send", "engagement": eid, "text": "It ships tomorrow."})
    await sock.expect("message", engagement=eid, text="It ships tomorrow.")
    if queue["disposition_required"]:
        await sock.refused({"type": "end", "engagement": eid}, "disposition_required")
        await sock.ok({"type": "disposition", "engagement": eid, "codes": [queue["dispositions"][0]["code"]]})
    await sock.ok({"type": "end", "engagement": eid})
    resolved = await sock.expect("engagement", where=of(eid, "resolved"))
    assert resolved["engagement"]["agent"] == agent_id
    await sock.refused({"type": "open", "engagement": eid}, "invalid_state")


@pytest.mark.extension
async def test_email_extensions(h: Harness) -> None:
    """`POST` answers already assigned; the first message's direction and subject; `POST .../end` leaves an
    email in its agent's list (history `consumer_ended`); `ok {deferred: false}`; a reply's `Re:` subject,
    or its own `subject`."""
    queue = h.center.find_queue("an email queue", channel="email")
    agent_id = h.center.able(queue["id"])[0]
    sock = await h.agent(agent_id, ready=True)
    created = await h.create(queue["id"], consumer={"email": "mei@example.net"}, subject="Order 42", body="Where?")
    eid = created["id"]
    assert created["state"] == "assigned" and created["agent"] == agent_id
    assigned = await sock.expect("engagement", where=of(eid, "assigned"))
    first = assigned["engagement"]["messages"][0]
    assert (first["direction"], first["text"], first["subject"]) == ("in", "Where?", "Order 42")
    ended = await h.api.post(f"/v1/engagements/{eid}/end")
    assert ended.status_code == 200 and ended.json()["state"] == "assigned"  # its agent resolves it
    assert ended.json()["history"][-1]["event"] == "consumer_ended"
    reply = await sock.ok({"type": "set_status", "status": "not_ready", "reason": "focus"})
    assert reply["deferred"] is False and reply["status"] == "not_ready"
    answer = await sock.ok({"type": "send", "engagement": eid, "text": "It ships tomorrow."})
    out = await sock.expect("message", engagement=eid, direction="out")
    assert out["id"] == answer["message"] and out["subject"] == "Re: Order 42"
    await sock.ok({"type": "send", "engagement": eid, "text": "Attached.", "subject": "Your invoice"})
    out = await sock.expect("message", engagement=eid, text="Attached.")
    assert out["subject"] == "Your invoice"


async def test_replying_to_an_assigned_email_opens_it(h: Harness) -> None:
    queue = h.center.find_queue("an email queue", channel="email")
    sock = await h.agent(h.center.able(queue["id"])[0], ready=True)
    eid = (await h.create(queue["id"], subject="Invoice", body="Please resend it"))["id"]
    await sock.expect("engagement", where=of(eid, "assigned"))
    await sock.ok({"type": "send", "engagement": eid, "text": "Attached."})
    await sock.expect("engagement", where=of(eid, "open"))
    await sock.expect("message", engagement=eid, text="Attached.")


async def test_an_email_transferred_to_an_agent_lands_in_their_open_list(h: Harness) -> None:
    queue = h.center.find_queue("an email queue with two agents", channel="email", members=2)
    a_id, b_id = h.center.able(queue["id"])[:2]
    a = await h.agent(a_id, ready=True)
    b = await h.agent(b_id)  # not ready: a transfer to an agent does not need it
    eid = (await h.create(queue["id"], subject="Refund", body="Refund please"))["id"]
    await a.expect("engagement", where=of(eid, "assigned"))
    await a.ok({"type": "transfer", "engagement": eid, "agent": b_id})
    landed = await b.expect("engagement", where=of(eid, "assigned"))
    assert landed["engagement"]["agent"] == b_id
    assert not [f for f in b.buffer if f["type"] == "ring"]
    await a.refused({"type": "open", "engagement": eid}, "not_yours")
    await b.ok({"type": "release", "engagement": eid})
    assert (await h.engagement(eid))["agent"] != b_id  # routed to another eligible agent first, or waiting


@pytest.mark.extension
async def test_an_email_transferred_or_released_tells_the_former_holder(h: Harness) -> None:
    queue = h.center.find_queue("an email queue with two agents", channel="email", members=2)
    a_id, b_id = h.center.able(queue["id"])[:2]
    a = await h.agent(a_id, ready=True)
    b = await h.agent(b_id)
    eid = (await h.create(queue["id"], subject="Refund", body="Refund please"))["id"]
    await a.expect("engagement", where=of(eid, "assigned"))
    await a.ok({"type": "transfer", "engagement": eid, "agent": b_id})
    gone = await a.expect(
        "engagement", where=lambda f: f["engagement"]["id"] == eid and f["engagement"]["agent"] != a_id
    )
    assert gone["engagement"]["agent"] == b_id
    await b.expect("engagement", where=of(eid, "assigned"))
    await b.ok({"type": "release", "engagement": eid})
    back = await b.expect(
        "engagement", where=lambda f: f["engagement"]["id"] == eid and f["engagement"]["agent"] != b_id
    )
    assert back["engagement"]["agent"] in (None, a_id)


@pytest.mark.extension
async def test_the_consumers_socket_shows_the_conversation_and_carries_their_lines(h: Harness) -> None:
    queue = h.center.find_queue("an auto-accept chat queue", channel="chat", acceptance="auto")
    agent_id = h.center.able(queue["id"])[0]
    agent = await h.agent(agent_id, ready=True)
    created = await h.create(queue["id"], consumer={"name": "Lukas"})
    eid, consumer_token = created["id"], created["consumer_token"]
    await agent.expect("engagement", where=of(eid, "active"))

    consumer = await h.connect(f"/v1/consumer/{eid}")
    welcome = await consumer.request({"type": "hello", "token": consumer_token})
    assert welcome["type"] == "welcome" and welcome["role"] == "consumer" and welcome["agent"] == eid
    conversation = await consumer.expect("conversation", engagement=eid)
    assert conversation["state"] == "active" and conversation["channel"] == "chat"
    assert conversation["agent_name"] == h.center.agents[agent_id]["name"]
    assert isinstance(conversation["messages"], list)
    assert not {"notes", "profile", "history"} & set(conversation)  # never the agent's side of things

    sent = await consumer.ok({"type": "send", "engagement": eid, "text": "Hi from the web page"})
    assert sent["engagement"] == eid
    mine = await consumer.expect("message", direction="in", text="Hi from the web page")
    heard = await agent.expect("message", engagement=eid, direction="in")
    assert heard["id"] == mine["id"] == sent["message"]
    await agent.ok({"type": "send", "engagement": eid, "text": "Welcome, Lukas"})
    answer = await consumer.expect("message", direction="out")
    assert answer["text"] == "Welcome, Lukas" and answer["engagement"] == eid
    await consumer.refused({"type": "send", "engagement": "e-someone-else", "text": "psst"}, "not_yours")
    await consumer.refused({"type": "accept", "offer": "x"}, "forbidden")

    await agent.ok({"type": "end", "engagement": eid})
    ended = await consumer.expect("conversation", state="wrap_up")
    assert ended["engagement"] == eid


@pytest.mark.extension
async def test_the_consumers_socket_is_only_for_that_engagement(h: Harness) -> None:
    queue = h.center.find_queue("a chat queue", channel="chat")
    first = await h.create(queue["id"])
    second = await h.create(queue["id"])
    sock = await h.connect(f"/v1/consumer/{second['id']}")
    await sock.send({"type": "hello", "token": first["consumer_token"]})
    assert (await sock.closed())[0] == 4401
    sock = await h.connect(f"/v1/consumer/{first['id']}", query=f"token={first['consumer_token']}")
    welcome = await sock.request({"type": "hello"})
    assert welcome["type"] == "welcome"
    state = await sock.expect("conversation")
    assert state["state"] in ("queued", "active")
