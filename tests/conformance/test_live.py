"""A live call from ring to close: set_status, ring, accept, decline, transcript, search, note, disposition,
end, wrap_up_done, the ring's four endings, transfer and release."""

from __future__ import annotations

import unicodedata

import pytest

from tests.conformance.harness import IDLE, Center, Harness, actors, of
from tests.conformance.wire import Frame, Sock


def voice_queue(center: Center, members: int = 1) -> Frame:
    """A manual voice queue that rings one agent at a time, with transcription."""
    return center.find_queue(
        "a manual voice queue with transcription",
        channel="voice",
        acceptance="manual",
        transcription=True,
        where=lambda q: q["strategy"] != "ring_all",
        members=members,
    )


def position(sock: Sock, frame: Frame) -> int:
    return next(i for i, f in enumerate(sock.log) if f is frame)


async def test_set_status_ready_sends_a_status_event_before_its_reply(h: Harness) -> None:
    agent_id = h.center.order[0]
    sock = await h.agent(agent_id)
    reply = await h.ready(sock)
    status = await sock.expect("status", status="ready")
    assert status.get("reason") is None
    assert position(sock, status) < position(sock, reply)  # a request's reply comes after its events
    assert (await h.agent_info(agent_id))["status"] == "ready"
    await sock.ok({"type": "set_status", "status": "not_ready", "reason": "lunch"})
    await sock.expect("status", status="not_ready", reason="lunch")
    info = await h.agent_info(agent_id)
    assert (info["status"], info["reason"]) == ("not_ready", "lunch")
    await sock.refused({"type": "set_status", "status": "offline"}, "invalid_field")


@pytest.mark.extension
async def test_set_status_extensions(h: Harness) -> None:
    """`ok` answers `set_status` with the status, reason and `deferred`; `status` events carry the
    activity and the next status."""
    sock = await h.agent(h.center.order[0])
    reply = await h.ready(sock)
    assert (reply["status"], reply["reason"], reply["deferred"]) == ("ready", None, False)
    status = await sock.expect("status", status="ready")
    assert status["activity"] == "idle" and status["next_status"] is None and status["next_reason"] is None
    reply = await sock.ok({"type": "set_status", "status": "not_ready", "reason": "lunch"})
    assert (reply["status"], reply["reason"], reply["deferred"]) == ("not_ready", "lunch", False)
    status = await sock.expect("status", status="not_ready", reason="lunch")
    assert status["activity"] == "idle"


async def test_a_ring_carries_the_engagement_and_its_deadline(h: Harness) -> None:
    queue = voice_queue(h.center)
    agent_id = h.center.able(queue["id"])[0]
    sock = await h.agent(agent_id, ready=True)
    variables = {"order": "A-1042", "attempts": 2}
    created = await h.create(
        queue["id"],
        consumer={"phone": "+33 6 12 34 56 78", "name": "Jeanne"},
        variables=variables,
        summary="Asked the bot for a refund",
        priority=3,
    )
    assert created["queue"] == queue["id"]
    ring = await sock.expect("ring")
    eng = ring["engagement"]
    assert eng["id"] == created["id"] and isinstance(ring["offer"], str)
    assert (eng["queue"], eng["channel"]) == (queue["id"], "voice")
    assert eng["consumer"]["phone"] == "+33 6 12 34 56 78" and eng["consumer"]["name"] == "Jeanne"
    assert eng["variables"] == variables and eng["summary"] == "Asked the bot for a refund"
    assert isinstance(eng["profile"], dict)
    created_at = (await h.engagement(created["id"]))["created_at"]  # the server's clock, whatever the skew
    assert created_at < ring["expires_at"] <= created_at + queue["ring_timeout_s"] + 1
    assert (await h.agent_info(agent_id))["activity"] == "ringing"


@pytest.mark.extension
async def test_ring_extensions(h: Harness) -> None:
    """`POST` answers already routed, with a consumer token; `ring` adds `timeout_s` and a full engagement
    (queue name, state, priority, history with `created` and `offered`, the profile merged with the flow's
    data); agents list their `offers`."""
    queue = voice_queue(h.center)
    agent_id = h.center.able(queue["id"])[0]
    sock = await h.agent(agent_id, ready=True)
    variables = {"order": "A-1042", "attempts": 2}
    created = await h.create(
        queue["id"], consumer={"phone": "+33 6 12 34 56 78", "name": "Jeanne"}, variables=variables, priority=3
    )
    assert created["state"] == "offered"
    assert isinstance(created["consumer_token"], str) and created["consumer_token"]
    ring = await sock.expect("ring")
    now = (await sock.ping())["server_time"]
    eng = ring["engagement"]
    assert eng["queue_name"] == queue["name"]
    assert eng["state"] == "offered" and eng["priority"] == 3 and eng["agent"] is None
    assert eng["profile"]["name"] == "Jeanne"  # the flow's data wins over the address book
    assert {k: eng["profile"]["fields"][k] for k in variables} == variables
    assert ring["timeout_s"] == queue["ring_timeout_s"]
    assert now < ring["expires_at"] <= now + queue["ring_timeout_s"] + 1
    assert [e["event"] for e in eng["history"]][:2] == ["created", "offered"]
    info = await h.agent_info(agent_id)
    assert info["activity"] == "ringing" and info["offers"] == [ring["offer"]]


async def test_accept_starts_the_call_with_the_transcript_so_far(h: Harness) -> None:
    queue = voice_queue(h.center)
    agent_id = h.center.able(queue["id"])[0]
    sock = await h.agent(agent_id, ready=True)
    eid = (await h.create(queue["id"]))["id"]
    ring = await sock.expect("ring")
    said = [
        {"id": "f-a", "speaker": "consumer", "text": "Bonjour", "final": True},
        {"speaker": "bot", "text": "Connecting you to an agent"},
    ]
    posted = await h.api.post(f"/v1/engagements/{eid}/transcript", json={"fragments": said})
    assert posted.status_code == 202
    reply = await sock.ok({"type": "accept", "offer": ring["offer"]})
    active = await sock.expect("engagement", where=of(eid, "active"))
    assert active["engagement"]["agent"] == agent_id
    transcript = await sock.expect("transcript", engagement=eid)
    assert [f["text"] for f in transcript["fragments"]] == ["Bonjour", "Connecting you to an agent"]
    assert all({"speaker", "text", "final"} <= set(f) for f in transcript["fragments"])
    assert [f["speaker"] for f in transcript["fragments"]] == ["consumer", "bot"]
    await sock.quiet("transcript")  # one transcript frame with everything said before
    assert position(sock, active) < position(sock, reply)
    assert (await h.agent_info(agent_id))["activity"] == "busy"

    # then each batch as it arrives; a final replaces the partial with the same id
    await h.api.post(
        f"/v1/engagements/{eid}/transcript",
        json={"fragments": [{"id": "p1", "speaker": "consumer", "text": "I wan", "final": False}]},
    )
    partial = await sock.expect("transcript", engagement=eid)
    await h.api.post(
        f"/v1/engagements/{eid}/transcript",
        json={"fragments": [{"id": "p1", "speaker": "consumer", "text": "I want a refund", "final": True}]},
    )
    final = await sock.expect("transcript", engagement=eid)
    assert (partial["fragments"][0]["text"], final["fragments"][0]["text"]) == ("I wan", "I want a refund")
    assert (partial["fragments"][0]["final"], final["fragments"][0]["final"]) == (False, True)
    assert (await h.engagement(eid))["transcript_count"] == 3  # the final replaced the partial


@pytest.mark.extension
async def test_accept_extensions(h: Harness) -> None:
    """`ok` answers `accept` with the engagement and offer; fragments always carry `id` and `ts`; the
    transcript so far is at `GET .../transcript`; agents list their `engagements`."""
    queue = voice_queue(h.center)
    agent_id = h.center.able(queue["id"])[0]
    sock = await h.agent(agent_id, ready=True)
    eid = (await h.create(queue["id"]))["id"]
    ring = await sock.expect("ring")
    said = [{"id": "f-a", "speaker": "consumer", "text": "Bonjour", "final": True}, {"speaker": "bot", "text": "Hi"}]
    posted = await h.api.post(f"/v1/engagements/{eid}/transcript", json={"fragments": said})
    assert posted.json()["accepted"] == 2 and posted.json()["fragments"][0] == "f-a"
    reply = await sock.ok({"type": "accept", "offer": ring["offer"]})
    assert (reply["engagement"], reply["offer"]) == (eid, ring["offer"])
    transcript = await sock.expect("transcript", engagement=eid)
    assert all({"id", "speaker", "text", "final", "ts"} <= set(f) for f in transcript["fragments"])
    assert transcript["fragments"][0]["id"] == "f-a"
    info = await h.agent_info(agent_id)
    assert info["activity"] == "busy" and info["engagements"] == [eid]
    await h.api.post(
        f"/v1/engagements/{eid}/transcript",
        json={"fragments": [{"id": "p1", "speaker": "consumer", "text": "I wan", "final": False}]},
    )
    partial = await sock.expect("transcript", engagement=eid)
    assert partial["fragments"][0]["id"] == "p1"
    await h.api.post(
        f"/v1/engagements/{eid}/transcript",
        json={"fragments": [{"id": "p1", "speaker": "consumer", "text": "I want a refund", "final": True}]},
    )
    await sock.expect("transcript", engagement=eid)
    whole = (await h.api.get(f"/v1/engagements/{eid}/transcript")).json()
    assert whole["engagement"] == eid
    assert [(f["id"], f["text"]) for f in whole["fragments"]] == [
        ("f-a", "Bonjour"), (whole["fragments"][1]["id"], "Hi"), ("p1", "I want a refund")
    ]  # fmt: skip


def fold(text: str) -> str:
    return "".join(c for c in unicodedata.normalize("NFKD", text.casefold()) if not unicodedata.combining(c))


async def test_search_finds_words_in_the_transcript_folding_case_and_accents(h: Harness) -> None:
    queue = voice_queue(h.center)
    sock, ring = await h.call(h.center.able(queue["id"])[0], queue["id"])
    eid = ring["engagement"]["id"]
    lines = [
        {"speaker": "consumer", "text": "Le remboursement du colis ?"},
        {"speaker": "agent", "text": "Quel colis exactement ?"},
        {"speaker": "consumer", "text": "La Crème brûlée, REMBOURSEMENT demandé"},
    ]
    await h.api.post(f"/v1/engagements/{eid}/transcript", json={"fragments": lines})
    await sock.expect("transcript", engagement=eid)
    result = await sock.request({"type": "search", "engagement": eid, "query": "remboursement creme"})
    assert result["type"] == "search_result"
    assert [hit["text"] for hit in result["hits"]] == ["La Crème brûlée, REMBOURSEMENT demandé"]
    hit = result["hits"][0]
    assert {"fragment", "speaker", "ts", "text", "spans"} <= set(hit) and hit["speaker"] == "consumer"
    assert sorted(fold(hit["text"][a:b]) for a, b in hit["spans"]) == ["creme", "remboursement"]
    both = await sock.request({"type": "search", "engagement": eid, "query": "COLIS"})
    assert [hit["text"] for hit in both["hits"]] == [lines[0]["text"], lines[1]["text"]]  # transcript order
    none = await sock.request({"type": "search", "engagement": eid, "query": "colis crème"})
    assert none["hits"] == []  # every word in the same fragment


@pytest.mark.extension
async def test_search_result_names_the_engagement_and_the_query(h: Harness) -> None:
    queue = voice_queue(h.center)
    sock, ring = await h.call(h.center.able(queue["id"])[0], queue["id"])
    eid = ring["engagement"]["id"]
    result = await sock.request({"type": "search", "engagement": eid, "query": "Anything"})
    assert (result["type"], result["engagement"], result["query"], result["hits"]) == (
        "search_result", eid, "Anything", []
    )  # fmt: skip


async def test_note_disposition_end_and_wrap_up_done(h: Harness) -> None:
    queue = voice_queue(h.center, members=1)
    assert queue["dispositions"], "the voice queue has no dispositions"
    sock, ring = await h.call(h.center.able(queue["id"])[0], queue["id"])
    eid, agent_id = ring["engagement"]["id"], sock.welcome["agent"]
    codes = [d["code"] for d in queue["dispositions"]]

    await sock.ok({"type": "note", "engagement": eid, "text": "Refund approved"})
    assert (await h.engagement(eid))["notes"] == "Refund approved"

    await sock.refused({"type": "wrap_up_done", "engagement": eid}, "invalid_state")  # still talking
    await sock.refused({"type": "disposition", "engagement": eid, "codes": ["no-such-code"]}, "unknown_disposition")
    await sock.ok({"type": "end", "engagement": eid})
    wrap = await sock.expect("engagement", where=of(eid, "wrap_up"))
    assert wrap["engagement"]["agent"] == agent_id
    assert (await h.agent_info(agent_id))["activity"] == "wrap_up"
    if queue["disposition_required"]:
        await sock.refused({"type": "wrap_up_done", "engagement": eid}, "disposition_required")
    await sock.ok({"type": "disposition", "engagement": eid, "codes": [codes[0]]})
    assert (await h.engagement(eid))["dispositions"] == [codes[0]]
    await sock.ok({"type": "disposition", "engagement": eid, "codes": []})  # the codes replace the previous set
    assert (await h.engagement(eid))["dispositions"] == []
    await sock.ok({"type": "disposition", "engagement": eid, "codes": [codes[0]]})
    await sock.ok({"type": "wrap_up_done", "engagement": eid})
    closed = await sock.expect("engagement", where=of(eid, "closed"))
    assert closed["engagement"]["dispositions"] == [codes[0]]
    assert (await h.agent_info(agent_id))["activity"] in IDLE

    record = await h.engagement(eid)
    assert record["state"] == "closed" and record["notes"] == "Refund approved"
    assert actors(record)[0] == "api" and f"agent:{agent_id}" in actors(record)
    assert all(isinstance(e["at"], (int, float)) and isinstance(e["event"], str) for e in record["history"])
    await sock.refused({"type": "end", "engagement": eid}, "invalid_state")


@pytest.mark.extension
async def test_call_lifecycle_extensions(h: Harness) -> None:
    """A note is no event; a disposition is (an `engagement` snapshot); `ended_at` and `wrap_up_until`;
    `activity: idle`; the history's event names and each offer's `routing` explanation."""
    queue = voice_queue(h.center, members=1)
    sock, ring = await h.call(h.center.able(queue["id"])[0], queue["id"])
    eid, agent_id = ring["engagement"]["id"], sock.welcome["agent"]
    codes = [d["code"] for d in queue["dispositions"]]
    assert (await sock.ok({"type": "note", "engagement": eid, "text": "Refund approved"}))["engagement"] == eid
    await sock.quiet("engagement")  # notes are content, not a change of state
    await sock.ok({"type": "end", "engagement": eid})
    wrap = await sock.expect("engagement", where=of(eid, "wrap_up"))
    assert isinstance(wrap["engagement"]["ended_at"], float)
    if queue["wrap_up_s"] is not None:
        assert wrap["engagement"]["wrap_up_until"] is not None
    await sock.ok({"type": "disposition", "engagement": eid, "codes": [codes[0]]})
    disposed = await sock.expect("engagement", where=lambda f: f["engagement"]["dispositions"] == [codes[0]])
    assert disposed["engagement"]["state"] == "wrap_up"
    await sock.ok({"type": "disposition", "engagement": eid, "codes": []})  # [] clears them
    cleared = await sock.expect("engagement", where=lambda f: f["seq"] > disposed["seq"])
    assert cleared["engagement"]["id"] == eid and cleared["engagement"]["dispositions"] == []
    await sock.ok({"type": "disposition", "engagement": eid, "codes": [codes[0]]})
    await sock.ok({"type": "wrap_up_done", "engagement": eid})
    await sock.expect("engagement", where=of(eid, "closed"))
    assert (await h.agent_info(agent_id))["activity"] == "idle"
    record = await h.engagement(eid)
    events = [(e["event"], e["actor"]) for e in record["history"]]
    actor = f"agent:{agent_id}"
    for step in [("created", "api"), ("accepted", actor), ("ended", actor), ("disposition", actor), ("closed", actor)]:
        assert step in events, (step, events)
    offered = next(e for e in record["history"] if e["event"] == "offered")
    assert offered["agent"] == agent_id and offered["routing"]  # why that agent was chosen


async def test_a_status_asked_for_during_a_call_is_the_next_status(h: Harness) -> None:
    queue = voice_queue(h.center)
    sock, ring = await h.call(h.center.able(queue["id"])[0], queue["id"])
    eid, agent_id = ring["engagement"]["id"], sock.welcome["agent"]
    await sock.ok({"type": "set_status", "status": "not_ready", "reason": "lunch"})
    assert (await h.agent_info(agent_id))["status"] == "ready"  # not yet: the call goes on
    await sock.ok({"type": "end", "engagement": eid})
    if queue["disposition_required"]:
        await sock.ok({"type": "disposition", "engagement": eid, "codes": [queue["dispositions"][0]["code"]]})
    assert (await h.agent_info(agent_id))["status"] == "ready"  # nor in wrap-up
    await sock.ok({"type": "wrap_up_done", "engagement": eid})
    applied = await sock.expect("status", status="not_ready")
    assert applied["reason"] == "lunch"
    info = await h.agent_info(agent_id)
    assert (info["status"], info["reason"]) == ("not_ready", "lunch")


@pytest.mark.extension
async def test_the_next_status_is_announced(h: Harness) -> None:
    """`ok {deferred: true}` and `status {next_status, next_reason}`."""
    queue = voice_queue(h.center)
    sock, ring = await h.call(h.center.able(queue["id"])[0], queue["id"])
    eid = ring["engagement"]["id"]
    reply = await sock.ok({"type": "set_status", "status": "not_ready", "reason": "lunch"})
    assert reply["deferred"] is True
    nxt = await sock.expect("status", where=lambda f: f["next_status"] == "not_ready")
    assert nxt["status"] == "ready" and nxt["next_reason"] == "lunch"
    info = await h.agent_info(sock.welcome["agent"])
    assert (info["next_status"], info["next_reason"]) == ("not_ready", "lunch")
    await sock.ok({"type": "end", "engagement": eid})
    if queue["disposition_required"]:
        await sock.ok({"type": "disposition", "engagement": eid, "codes": [queue["dispositions"][0]["code"]]})
    await sock.ok({"type": "wrap_up_done", "engagement": eid})
    applied = await sock.expect("status", status="not_ready")
    assert applied["reason"] == "lunch" and applied["next_status"] is None


async def test_decline_moves_the_ring_to_the_next_agent(h: Harness) -> None:
    queue = voice_queue(h.center, members=2)
    first_id, second_id = h.center.able(queue["id"])[:2]
    first = await h.agent(first_id, ready=True)
    second = await h.agent(second_id)
    eid = (await h.create(queue["id"]))["id"]
    ring = await first.expect("ring")
    await h.ready(second)
    await first.ok({"type": "decline", "offer": ring["offer"], "reason": "on break"})
    cancelled = await first.expect("ring_cancelled", offer=ring["offer"])
    assert cancelled["reason"] == "declined"
    again = await second.expect("ring")
    assert again["engagement"]["id"] == eid and again["offer"] != ring["offer"]
    await first.refused({"type": "accept", "offer": ring["offer"]}, "not_found")  # over
    await first.refused({"type": "accept", "offer": again["offer"]}, "not_yours")
    await first.refused({"type": "decline", "offer": again["offer"]}, "not_yours")
    assert f"agent:{first_id}" in actors(await h.engagement(eid))  # the decline is in the history


@pytest.mark.extension
async def test_ring_endings_extensions(h: Harness) -> None:
    """`ok` answers `decline` with the engagement and offer; `ring_cancelled` adds `engagement`; the
    history's `declined` entry names the agent."""
    queue = voice_queue(h.center, members=1)
    sock = await h.agent(h.center.able(queue["id"])[0], ready=True)
    eid = (await h.create(queue["id"]))["id"]
    ring = await sock.expect("ring", where=of(eid))
    reply = await sock.ok({"type": "decline", "offer": ring["offer"]})
    assert (reply["engagement"], reply["offer"]) == (eid, ring["offer"])
    cancelled = await sock.expect("ring_cancelled", offer=ring["offer"])
    assert cancelled["engagement"] == eid
    declined = [e for e in (await h.engagement(eid))["history"] if e["event"] == "declined"]
    assert declined and declined[0]["agent"] == sock.welcome["agent"]


async def test_going_not_ready_while_ringing_declines_the_ring(h: Harness) -> None:
    queue = voice_queue(h.center)
    sock = await h.agent(h.center.able(queue["id"])[0], ready=True)
    eid = (await h.create(queue["id"]))["id"]
    ring = await sock.expect("ring")
    await sock.ok({"type": "set_status", "status": "not_ready", "reason": "stepped away"})
    cancelled = await sock.expect("ring_cancelled", offer=ring["offer"])
    assert cancelled["reason"] == "declined"
    assert (await h.engagement(eid))["state"] == "queued"


async def test_the_consumer_leaving_rescinds_the_ring_as_abandoned(h: Harness) -> None:
    queue = voice_queue(h.center)
    sock = await h.agent(h.center.able(queue["id"])[0], ready=True)
    eid = (await h.create(queue["id"]))["id"]
    ring = await sock.expect("ring")
    ended = await h.api.post(f"/v1/engagements/{eid}/end")
    assert ended.status_code == 200, ended.text
    cancelled = await sock.expect("ring_cancelled", offer=ring["offer"])
    assert cancelled["reason"] == "abandoned"
    assert (await h.engagement(eid))["state"] == "abandoned"
    await sock.refused({"type": "accept", "offer": ring["offer"]}, "not_found")


async def test_ring_all_rings_everyone_and_the_others_hear_it_was_taken(h: Harness) -> None:
    queue = h.center.find_queue("a ring_all queue", strategy="ring_all", acceptance="manual", members=2)
    a_id, b_id = h.center.able(queue["id"])[:2]
    a = await h.agent(a_id, ready=True)
    b = await h.agent(b_id, ready=True)
    eid = (await h.create(queue["id"]))["id"]
    ring_a = await a.expect("ring", where=of(eid))
    ring_b = await b.expect("ring", where=of(eid))
    assert ring_a["offer"] != ring_b["offer"]
    await b.ok({"type": "accept", "offer": ring_b["offer"]})
    taken = await a.expect("ring_cancelled", offer=ring_a["offer"])
    assert taken["reason"] == "taken"
    await a.refused({"type": "accept", "offer": ring_a["offer"]}, "not_found")
    assert (await h.engagement(eid))["agent"] == b_id


async def test_transfer_to_an_agent_rings_them_and_frees_the_former(h: Harness) -> None:
    queue = voice_queue(h.center)
    holder_id = h.center.able(queue["id"])[0]
    target_id = next(a for a in h.center.order if a != holder_id and h.center.capacity(a, "voice") > 0)
    holder, ring = await h.call(holder_id, queue["id"])
    eid = ring["engagement"]["id"]
    target = await h.agent(target_id)  # signed in, not ready: a transfer rings them all the same
    await holder.ok({"type": "note", "engagement": eid, "text": "VIP, handle with care"})
    await holder.refused({"type": "transfer", "engagement": eid, "agent": "nobody-by-that-name"}, "unknown_agent")
    await holder.refused({"type": "transfer", "engagement": eid, "queue": "no-such-queue"}, "unknown_queue")
    await holder.refused(
        {"type": "transfer", "engagement": eid, "queue": queue["id"], "agent": target_id}, "invalid_field"
    )
    absent = [a for a in await h.not_signed_in(besides=(holder_id, target_id)) if h.center.capacity(a, "voice") > 0]
    if absent:
        await holder.refused({"type": "transfer", "engagement": eid, "agent": absent[0]}, "no_capacity")

    await holder.ok({"type": "transfer", "engagement": eid, "agent": target_id})
    transfer_ring = await target.expect("ring", where=of(eid))
    await target.ok({"type": "accept", "offer": transfer_ring["offer"]})
    await target.expect("engagement", where=of(eid, "active"))
    await holder.refused({"type": "note", "engagement": eid, "text": "still mine?"}, "not_yours")
    assert (await h.agent_info(holder_id))["activity"] in IDLE  # freed at once: no wrap-up
    record = await h.engagement(eid)
    assert record["agent"] == target_id and record["notes"] == "VIP, handle with care"


@pytest.mark.extension
async def test_transfer_to_an_agent_extensions(h: Harness) -> None:
    """The former holder gets a last `engagement` event, no longer theirs; the ring carries the notes; the
    history's `transferred` entry; agents' `engagements`."""
    queue = voice_queue(h.center)
    holder_id = h.center.able(queue["id"])[0]
    target_id = next(a for a in h.center.order if a != holder_id and h.center.capacity(a, "voice") > 0)
    holder, ring = await h.call(holder_id, queue["id"])
    eid = ring["engagement"]["id"]
    target = await h.agent(target_id)
    await holder.ok({"type": "note", "engagement": eid, "text": "VIP, handle with care"})
    assert (await holder.ok({"type": "transfer", "engagement": eid, "agent": target_id}))["engagement"] == eid
    gone = await holder.expect("engagement", where=of(eid))
    assert gone["engagement"]["agent"] != holder_id
    transfer_ring = await target.expect("ring", where=of(eid))
    assert transfer_ring["engagement"]["notes"] == "VIP, handle with care"
    assert (await h.agent_info(holder_id))["engagements"] == []
    transferred = [e for e in (await h.engagement(eid))["history"] if e["event"] == "transferred"]
    assert transferred and transferred[0]["actor"] == f"agent:{holder_id}"


def transfer_pairs(center: Center) -> list[tuple[Frame, Frame, str, str]]:
    """Two manual voice queues, an agent of the first who is not in the second, and one of the second."""
    return [
        (q1, q2, a, b)
        for q1 in center.queues.values()
        for q2 in center.queues.values()
        if q1["id"] != q2["id"] and q1["channel"] == q2["channel"] == "voice" and q1["acceptance"] == "manual"
        and q2["acceptance"] == "manual"
        for a in center.able(q1["id"])
        if a not in center.members(q2["id"])
        for b in center.able(q2["id"])
        if b != a
    ]  # fmt: skip


async def test_transfer_to_a_queue_routes_it_there(h: Harness) -> None:
    pairs = transfer_pairs(h.center)
    if not pairs:
        pytest.skip("needs two manual voice queues and an agent of the first who is not in the second")
    q1, q2, a_id, b_id = pairs[0]
    holder, ring = await h.call(a_id, q1["id"])
    eid = ring["engagement"]["id"]
    b = await h.agent(b_id, ready=True)
    await holder.ok({"type": "transfer", "engagement": eid, "queue": q2["id"]})
    there = await b.expect("ring", where=of(eid))
    assert there["engagement"]["queue"] == q2["id"]
    await holder.refused({"type": "end", "engagement": eid}, "not_yours")


@pytest.mark.extension
async def test_transfer_to_a_queue_tells_the_former_holder(h: Harness) -> None:
    pairs = transfer_pairs(h.center)
    if not pairs:
        pytest.skip("needs two manual voice queues and an agent of the first who is not in the second")
    q1, q2, a_id, _ = pairs[0]
    holder, ring = await h.call(a_id, q1["id"])
    eid = ring["engagement"]["id"]
    await holder.ok({"type": "transfer", "engagement": eid, "queue": q2["id"]})
    moved = await holder.expect("engagement", where=of(eid))
    assert moved["engagement"]["queue"] == q2["id"] and moved["engagement"]["agent"] is None


async def test_release_gives_it_back_to_another_agent_first(h: Harness) -> None:
    queue = voice_queue(h.center, members=2)
    a_id, b_id = h.center.able(queue["id"])[:2]
    a, ring = await h.call(a_id, queue["id"])
    eid = ring["engagement"]["id"]
    b = await h.agent(b_id, ready=True)
    await a.ok({"type": "release", "engagement": eid})
    await b.expect("ring", where=of(eid))
    await a.quiet("ring")  # the one who released it is not rung while someone else is eligible


@pytest.mark.extension
async def test_release_extensions(h: Harness) -> None:
    """A last `engagement` event for the one who released it; the ring's engagement is `offered`; the
    history's `released` entry."""
    queue = voice_queue(h.center, members=2)
    a_id, b_id = h.center.able(queue["id"])[:2]
    a, ring = await h.call(a_id, queue["id"])
    eid = ring["engagement"]["id"]
    b = await h.agent(b_id, ready=True)
    await a.ok({"type": "release", "engagement": eid})
    back = await a.expect("engagement", where=of(eid))
    assert back["engagement"]["agent"] != a_id
    again = await b.expect("ring", where=of(eid))
    assert again["engagement"]["state"] == "offered"
    released = [e for e in (await h.engagement(eid))["history"] if e["event"] == "released"]
    assert released and released[0]["actor"] == f"agent:{a_id}"
