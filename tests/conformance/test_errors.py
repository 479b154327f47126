"""Bad input gets a typed `error` (with `re` when the request had an `id`, `null` otherwise), nothing
else changes, and the socket stays open; acting on what is not yours is refused."""

from __future__ import annotations

import pytest

from tests.conformance.harness import Harness
from tests.conformance.wire import Frame


async def test_malformed_frames_are_bad_frame(h: Harness) -> None:
    sock = await h.agent(h.center.order[0])
    for payload in ("{not json", "[1, 2]", '"hello"', "42"):
        await sock.send(payload)
        error = await sock.expect("error")
        assert error["code"] == "bad_frame" and error["re"] is None, (payload, error)
    await sock.ping()  # still open


async def test_unknown_types_and_bad_fields(h: Harness) -> None:
    sock = await h.agent(h.center.order[0])
    await sock.refused({"type": "teleport", "id": 1}, "unknown_type")
    wrong = await sock.refused({"type": "accept", "offer": 42}, "invalid_field")
    assert "offer" in wrong["message"]
    missing = await sock.refused({"type": "note", "text": "for which engagement?"}, "invalid_field")
    assert "engagement" in missing["message"]
    extra = await sock.refused({"type": "ping", "colour": "blue"}, "invalid_field")
    assert "colour" in extra["message"]
    untyped = await sock.refused({"offer": "x"}, "invalid_field")
    assert "type" in untyped["message"]
    await sock.refused({"type": "set_status", "status": "sleeping"}, "invalid_field")


async def test_a_failing_frame_without_id_gets_an_error_with_re_null(h: Harness) -> None:
    sock = await h.agent(h.center.order[0])
    await sock.send({"type": "decline"})
    error = await sock.expect("error")
    assert error["re"] is None and error["code"] == "invalid_field"
    await sock.send({"type": "accept", "offer": "e-no-such-engagement-o1"})
    error = await sock.expect("error")
    assert error["re"] is None and error["code"] == "not_found"
    await sock.send({"type": "set_status", "status": "not_ready", "reason": "quiet"})  # succeeds: no reply
    await sock.expect("status", reason="quiet")
    await sock.ping()
    assert not [f for f in sock.log if f["type"] == "ok"]


async def test_bad_input_changes_nothing(h: Harness) -> None:
    queue = h.center.find_queue("a manual voice queue", channel="voice", acceptance="manual")
    sock = await h.agent(h.center.able(queue["id"])[0], ready=True)
    eid = (await h.create(queue["id"]))["id"]
    ring = await sock.expect("ring")
    before = await h.engagement(eid)
    for frame in (
        {"type": "accept", "offer": 1},
        {"type": "accept", "offer": ring["offer"], "extra": True},
        {"type": "end", "engagement": eid},
        {"type": "note", "engagement": eid, "text": "not yet"},
        {"type": "wrap_up_done", "engagement": eid},
        {"type": "force_end", "engagement": eid},
    ):
        reply = await sock.request(frame)
        assert reply["type"] == "error", (frame, reply)
    assert await h.engagement(eid) == before
    await sock.ok({"type": "accept", "offer": ring["offer"]})


async def test_unknown_offers_and_engagements_are_not_found(h: Harness) -> None:
    sock = await h.agent(h.center.order[0])
    await sock.refused({"type": "accept", "offer": "e-no-such-engagement-o1"}, "not_found")
    await sock.refused({"type": "decline", "offer": "e-no-such-engagement-o1"}, "not_found")
    extra: dict[str, Frame] = {"note": {"text": "x"}, "search": {"query": "x"}, "send": {"text": "x"}}
    extra["disposition"] = {"codes": []}
    for kind in ("note", "end", "wrap_up_done", "open", "release", "search", "send", "disposition"):
        frame = {"type": kind, "engagement": "e-no-such-engagement", **extra.get(kind, {})}
        await sock.refused(frame, "not_found")


async def test_only_the_holder_may_act_on_an_engagement(h: Harness) -> None:
    queue = h.center.find_queue("a manual voice queue", channel="voice", acceptance="manual", transcription=True)
    holder_id = h.center.able(queue["id"])[0]
    other_id = next(a for a in h.center.order if a != holder_id)
    _, ring = await h.call(holder_id, queue["id"])
    eid = ring["engagement"]["id"]
    other = await h.agent(other_id)
    code = queue["dispositions"][0]["code"] if queue["dispositions"] else "x"
    for frame in (
        {"type": "note", "engagement": eid, "text": "mine now"},
        {"type": "disposition", "engagement": eid, "codes": [code]},
        {"type": "search", "engagement": eid, "query": "anything"},
        {"type": "end", "engagement": eid},
        {"type": "wrap_up_done", "engagement": eid},
        {"type": "transfer", "engagement": eid, "agent": other_id},
        {"type": "release", "engagement": eid},
        {"type": "open", "engagement": eid},
    ):
        await other.refused(frame, "not_yours")
    record = await h.engagement(eid)
    assert record["agent"] == holder_id and record["state"] == "active" and record["notes"] == ""


async def test_transfer_to_an_agent_without_room_is_no_capacity(h: Harness) -> None:
    queue = h.center.find_queue("a manual voice queue", channel="voice", acceptance="manual", members=2)
    a_id, b_id = h.center.able(queue["id"])[:2]
    a, ring_a = await h.call(a_id, queue["id"])
    await h.call(b_id, queue["id"])  # b is busy on voice: no room for another call
    await a.refused({"type": "transfer", "engagement": ring_a["engagement"]["id"], "agent": b_id}, "no_capacity")
    assert (await h.engagement(ring_a["engagement"]["id"]))["agent"] == a_id


async def test_a_live_queue_cannot_take_a_transfer_from_another_channel(h: Harness) -> None:
    voice = h.center.find_queue("a manual voice queue", channel="voice", acceptance="manual")
    other = next((q for q in h.center.queues.values() if q["channel"] != "voice"), None)
    if other is None:
        pytest.skip("every queue is a voice queue")
    sock, ring = await h.call(h.center.able(voice["id"])[0], voice["id"])
    reply = await sock.request({"type": "transfer", "engagement": ring["engagement"]["id"], "queue": other["id"]})
    assert reply["type"] == "error" and reply["code"] == "invalid_field", reply
    assert (await h.engagement(ring["engagement"]["id"]))["state"] == "active"
