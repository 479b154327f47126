"""The supervisor socket: agent_state and queue_stats live, watch/unwatch, and the acts that unstick
agents (set_agent_status, force_end, force_wrap_up_done, force_transfer), each in the history."""

from __future__ import annotations

import pytest

from tests.conformance.harness import IDLE, Harness, actors, of
from tests.conformance.wire import Frame


async def test_after_welcome_a_supervisor_gets_every_agent_and_every_queue(h: Harness) -> None:
    sup = await h.supervisor()
    states = [await sup.expect("agent_state") for _ in h.center.order]
    assert sorted(s["agent"] for s in states) == sorted(h.center.order)
    for s in states:
        assert s["status"] in ("offline", "ready", "not_ready") and "reason" in s
        assert s["activity"] in ("ringing", "busy", "wrap_up", *IDLE)
    stats: dict[str, Frame] = {}
    while len(stats) < len(h.center.queues):
        frame = await sup.expect("queue_stats")
        stats[frame["queue"]] = frame
    assert set(stats) == set(h.center.queues)
    for frame in stats.values():
        assert isinstance(frame["waiting"], int) and isinstance(frame["longest_wait_s"], (int, float))
        assert isinstance(frame["agents"], dict)


@pytest.mark.extension
async def test_agent_state_and_queue_stats_extensions(h: Harness) -> None:
    """`agent_state` adds `name` and `engagements`; `queue_stats` adds `available` and counts every status."""
    sup = await h.supervisor()
    for _ in h.center.order:
        s = await sup.expect("agent_state")
        assert s["name"] == h.center.agents[s["agent"]]["name"] and isinstance(s["engagements"], list)
        assert s["activity"] in ("idle", "ringing", "busy", "wrap_up")
    frame = await sup.expect("queue_stats")
    assert {"offline", "ready", "not_ready"} <= set(frame["agents"]) and isinstance(frame["available"], int)
    queue = h.center.find_queue("a manual voice queue", channel="voice", acceptance="manual")
    sock, ring = await h.call(h.center.able(queue["id"])[0], queue["id"])
    busy = await sup.expect("agent_state", agent=sock.welcome["agent"], activity="busy")
    assert busy["engagements"] == [ring["engagement"]["id"]]


async def test_agent_state_and_queue_stats_follow_changes(h: Harness) -> None:
    queue = h.center.find_queue("a manual voice queue", channel="voice", acceptance="manual")
    agent_id = h.center.able(queue["id"])[0]
    sup = await h.supervisor()
    await sup.expect("queue_stats", queue=queue["id"])
    eid = (await h.create(queue["id"]))["id"]
    waiting = await sup.expect("queue_stats", queue=queue["id"], where=lambda f: f["waiting"] >= 1)
    assert waiting["longest_wait_s"] >= 0
    sock = await h.agent(agent_id, ready=True)
    ringing = await sup.expect("agent_state", agent=agent_id, activity="ringing")
    assert ringing["status"] == "ready"
    ring = await sock.expect("ring", where=of(eid))
    await sock.ok({"type": "accept", "offer": ring["offer"]})
    await sup.expect("agent_state", agent=agent_id, activity="busy")
    await sup.expect("queue_stats", queue=queue["id"], where=lambda f: f["waiting"] == waiting["waiting"] - 1)


async def test_set_agent_status(h: Harness) -> None:
    agent_id = h.center.order[0]
    sock = await h.agent(agent_id)
    sup = await h.supervisor()
    await sup.ok({"type": "set_agent_status", "agent": agent_id, "status": "ready"})
    await sock.expect("status", status="ready")
    await sup.expect("agent_state", agent=agent_id, status="ready")
    await sup.ok({"type": "set_agent_status", "agent": agent_id, "status": "not_ready", "reason": "coaching"})
    await sock.expect("status", status="not_ready", reason="coaching")
    await sup.refused({"type": "set_agent_status", "agent": "nobody-by-that-name", "status": "ready"}, "unknown_agent")
    absent = await h.not_signed_in()
    if absent:  # an agent who is not signed in cannot be made ready
        await sup.refused({"type": "set_agent_status", "agent": absent[0], "status": "ready"}, "invalid_state")


@pytest.mark.extension
async def test_supervisor_ok_replies_name_what_they_did(h: Harness) -> None:
    """`ok` answers `set_agent_status` with the status and reason, and the engagement frames with the engagement."""
    agent_id = h.center.order[0]
    await h.agent(agent_id)
    sup = await h.supervisor()
    reply = await sup.ok({"type": "set_agent_status", "agent": agent_id, "status": "ready"})
    assert (reply["status"], reply["reason"]) == ("ready", None)
    reply = await sup.ok({"type": "set_agent_status", "agent": agent_id, "status": "not_ready", "reason": "coaching"})
    assert (reply["status"], reply["reason"]) == ("not_ready", "coaching")
    queue = h.center.find_queue("a manual voice queue", channel="voice", acceptance="manual")
    eid = (await h.create(queue["id"]))["id"]
    assert (await sup.ok({"type": "watch", "engagement": eid}))["engagement"] == eid
    await sup.ok({"type": "unwatch", "engagement": eid})
    assert (await sup.ok({"type": "force_end", "engagement": eid}))["engagement"] == eid
    assert (await h.engagement(eid))["state"] == "closed"  # waiting -> closed


async def test_watch_sends_the_snapshot_the_transcript_and_every_change_until_unwatch(h: Harness) -> None:
    queue = h.center.find_queue(
        "a voice queue with transcription", channel="voice", acceptance="manual", transcription=True
    )
    sock, ring = await h.call(h.center.able(queue["id"])[0], queue["id"])
    eid = ring["engagement"]["id"]
    await h.api.post(f"/v1/engagements/{eid}/transcript", json={"fragments": [{"speaker": "consumer", "text": "Allo"}]})
    sup = await h.supervisor()
    reply = await sup.ok({"type": "watch", "engagement": eid})
    snapshot = await sup.expect("engagement", where=of(eid, "active"))
    assert snapshot["engagement"]["agent"] == sock.welcome["agent"]
    so_far = await sup.expect("transcript", engagement=eid)
    assert [f["text"] for f in so_far["fragments"]] == ["Allo"]
    order = [id(f) for f in sup.log]
    assert order.index(id(snapshot)) < order.index(id(so_far)) < order.index(id(reply))  # events, then the reply
    await h.api.post(f"/v1/engagements/{eid}/transcript", json={"fragments": [{"speaker": "agent", "text": "Bonjour"}]})
    live = await sup.expect("transcript", engagement=eid)
    assert [f["text"] for f in live["fragments"]] == ["Bonjour"]
    await sock.ok({"type": "end", "engagement": eid})
    await sup.expect("engagement", where=of(eid, "wrap_up"))
    await sup.ok({"type": "unwatch", "engagement": eid})
    await h.api.post(f"/v1/engagements/{eid}/transcript", json={"fragments": [{"speaker": "agent", "text": "Bye"}]})
    await sock.expect("transcript", engagement=eid)
    await sup.quiet("transcript", where=lambda f: f["engagement"] == eid)
    await sup.refused({"type": "watch", "engagement": "e-no-such-engagement"}, "not_found")


async def test_force_end_and_force_wrap_up_done_are_in_the_history(h: Harness) -> None:
    queue = h.center.find_queue("a manual voice queue", channel="voice", acceptance="manual")
    sock, ring = await h.call(h.center.able(queue["id"])[0], queue["id"])
    eid = ring["engagement"]["id"]
    sup = await h.supervisor()
    sup_actor = f"supervisor:{h.target.supervisor}"
    await sup.refused({"type": "force_wrap_up_done", "engagement": eid}, "invalid_state")  # still talking
    await sup.ok({"type": "force_end", "engagement": eid})
    await sock.expect("engagement", where=of(eid, "wrap_up"))
    await sup.ok({"type": "force_wrap_up_done", "engagement": eid})  # no disposition needed
    await sock.expect("engagement", where=of(eid, "closed"))
    history = (await h.engagement(eid))["history"]
    assert [e["actor"] for e in history][-2:] == [sup_actor, sup_actor]  # each act is in the history
    await sup.refused({"type": "force_end", "engagement": eid}, "invalid_state")
    await sup.refused({"type": "force_end", "engagement": "e-no-such-engagement"}, "not_found")


async def test_force_end_closes_a_waiting_engagement(h: Harness) -> None:
    queue = h.center.find_queue("a manual voice queue", channel="voice", acceptance="manual")
    eid = (await h.create(queue["id"]))["id"]
    sup = await h.supervisor()
    await sup.ok({"type": "force_end", "engagement": eid})
    record = await h.engagement(eid)
    assert record["state"] in ("closed", "abandoned") and actors(record)[-1] == f"supervisor:{h.target.supervisor}"


async def test_force_transfer_moves_a_call_to_another_agent(h: Harness) -> None:
    queue = h.center.find_queue("a manual voice queue", channel="voice", acceptance="manual")
    holder_id = h.center.able(queue["id"])[0]
    target_id = next(a for a in h.center.order if a != holder_id and h.center.capacity(a, "voice") > 0)
    holder, ring = await h.call(holder_id, queue["id"])
    eid = ring["engagement"]["id"]
    target = await h.agent(target_id)
    sup = await h.supervisor()
    await sup.refused({"type": "force_transfer", "engagement": eid, "agent": "nobody-by-that-name"}, "unknown_agent")
    await sup.ok({"type": "force_transfer", "engagement": eid, "agent": target_id})
    rung = await target.expect("ring", where=of(eid))
    await holder.refused({"type": "end", "engagement": eid}, "not_yours")
    assert f"supervisor:{h.target.supervisor}" in actors(await h.engagement(eid))
    # a transfer ring that is declined goes back to the engagement's queue
    await target.ok({"type": "decline", "offer": rung["offer"]})
    await target.expect("ring_cancelled", offer=rung["offer"], reason="declined")
    back = await h.engagement(eid)
    assert back["queue"] == queue["id"] and back["state"] in ("queued", "offered")
    assert back["agent"] is None


@pytest.mark.extension
async def test_force_transfer_extensions(h: Harness) -> None:
    """The former holder's last `engagement` event; the ring's engagement is `offered`; `transferred` by the
    supervisor in the history."""
    queue = h.center.find_queue("a manual voice queue", channel="voice", acceptance="manual")
    holder_id = h.center.able(queue["id"])[0]
    target_id = next(a for a in h.center.order if a != holder_id and h.center.capacity(a, "voice") > 0)
    holder, ring = await h.call(holder_id, queue["id"])
    eid = ring["engagement"]["id"]
    target = await h.agent(target_id)
    sup = await h.supervisor()
    assert (await sup.ok({"type": "force_transfer", "engagement": eid, "agent": target_id}))["engagement"] == eid
    await holder.expect(
        "engagement", where=lambda f: f["engagement"]["id"] == eid and f["engagement"]["agent"] != holder_id
    )
    rung = await target.expect("ring", where=of(eid))
    assert rung["engagement"]["state"] == "offered"
    moved = [e for e in (await h.engagement(eid))["history"] if e["event"] == "transferred"]
    assert moved and moved[0]["actor"] == f"supervisor:{h.target.supervisor}"


async def test_force_end_resolves_an_email_and_closes_nothing_twice(h: Harness) -> None:
    queue = h.center.find_queue("an email queue", channel="email")
    sock = await h.agent(h.center.able(queue["id"])[0], ready=True)
    eid = (await h.create(queue["id"], subject="Hi", body="Hello"))["id"]
    await sock.expect("engagement", where=of(eid, "assigned"))
    sup = await h.supervisor()
    await sup.ok({"type": "force_end", "engagement": eid})
    resolved = await sock.expect("engagement", where=of(eid, "resolved"))
    assert resolved["engagement"]["history"][-1]["actor"] == f"supervisor:{h.target.supervisor}"
    await sup.refused({"type": "force_end", "engagement": eid}, "invalid_state")


async def test_each_role_is_forbidden_the_others_frames(h: Harness) -> None:
    queue = h.center.find_queue("a manual voice queue", channel="voice", acceptance="manual")
    agent, ring = await h.call(h.center.able(queue["id"])[0], queue["id"])
    eid = ring["engagement"]["id"]
    sup = await h.supervisor()
    for frame in (
        {"type": "accept", "offer": ring["offer"]},
        {"type": "decline", "offer": ring["offer"]},
        {"type": "note", "engagement": eid, "text": "a supervisor's note"},
        {"type": "send", "engagement": eid, "text": "hello"},
        {"type": "end", "engagement": eid},
        {"type": "set_status", "status": "ready"},
    ):
        await sup.refused(frame, "forbidden")
    for frame in (
        {"type": "watch", "engagement": eid},
        {"type": "unwatch", "engagement": eid},
        {"type": "force_end", "engagement": eid},
        {"type": "force_wrap_up_done", "engagement": eid},
        {"type": "force_transfer", "engagement": eid, "queue": queue["id"]},
        {"type": "set_agent_status", "agent": agent.welcome["agent"], "status": "not_ready"},
    ):
        await agent.refused(frame, "forbidden")
    record = await h.engagement(eid)
    assert record["state"] == "active" and record["notes"] == ""


async def test_supervisor_events_are_numbered_per_socket(h: Harness) -> None:
    sup = await h.supervisor()  # the socket checks seq follows welcome.seq one by one
    await sup.expect("agent_state")
    await sup.ping()
    seqs = [f["seq"] for f in sup.log if "seq" in f and f["type"] != "welcome"]
    if not seqs:
        pytest.fail("no supervisor events")
    assert seqs == list(range(seqs[0], seqs[0] + len(seqs)))
