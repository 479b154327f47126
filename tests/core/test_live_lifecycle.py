"""The live-engagement lifecycle in the pure core: rings, declines, timeouts, wrap-up, hang-ups."""

from __future__ import annotations

import pytest

from protocol.codes import ErrorCode
from protocol.frames import EngagementEvent, Ring, RingCancelled, StatusEvent
from protocol.model import Activity, AgentStatus, CancelReason, Consumer, EngagementState
from server.core import lifecycle
from server.core.tx import activity
from tests.support import World, agent, make_config, refused, voice_queue

S = EngagementState
READY, NOT_READY = AgentStatus.READY, AgentStatus.NOT_READY


def world(**queue: object) -> World:
    dispositions = [{"code": "resolved", "label": "Resolved"}, {"code": "callback"}]
    config = make_config(
        [voice_queue("q", dispositions=dispositions, **queue)],
        [agent("ann", "q"), agent("ben", "q"), agent("cat", "q")],
        address_book=[{"id": "c1", "name": "Jeanne", "phone": "+33 6 12 34 56 78", "fields": {"tier": "gold"}}],
    )
    w = World(config)
    w.sign_in("ann", "ben", "cat")
    return w


def test_ring_goes_to_longest_idle_agent_with_consumer_context():
    w = world()
    eid = w.create(
        consumer=Consumer(phone="+33612345678"),
        variables={"intent": "refund"},
        summary="Bot: wants a refund for order 42",
    )
    assert w.engagement(eid).state is S.OFFERED
    ring = w.events("ann")[-1]
    assert isinstance(ring, Ring)
    assert ring.engagement.variables == {"intent": "refund"}
    assert ring.engagement.summary == "Bot: wants a refund for order 42"
    assert ring.engagement.profile.contact == "c1"
    assert ring.engagement.profile.name == "Jeanne"
    assert ring.engagement.profile.fields == {"tier": "gold", "intent": "refund"}
    assert ring.expires_at == pytest.approx(w.now + 10)
    assert w.tags("ben") == []


def test_declined_ring_moves_to_next_agent_then_back_to_first_when_no_one_else():
    w = world()
    eid = w.create()
    w.do(lambda tx: lifecycle.decline(tx, "ann", w.offer_of("ann"), "busy"))
    assert w.tags("ann")[-1] == "ring_cancelled"
    w.do(lambda tx: lifecycle.decline(tx, "ben", w.offer_of("ben"), None))
    w.do(lambda tx: lifecycle.decline(tx, "cat", w.offer_of("cat"), None))
    # everyone has declined: it is offered again rather than left waiting with agents free
    eng = w.engagement(eid)
    assert eng.state is S.OFFERED
    assert [o.agent for o in eng.offers] == ["ann"]
    assert set(eng.tried) == {"ann", "ben", "cat"}
    assert "offered again" in eng.history[-1].routing.rule


def test_decline_emits_ring_cancelled_declined_and_keeps_agent_ready():
    w = world()
    w.create()
    offer = w.offer_of("ann")
    w.events("ann")
    w.do(lambda tx: lifecycle.decline(tx, "ann", offer, None))
    (cancel,) = w.events("ann")
    assert isinstance(cancel, RingCancelled)
    assert (cancel.offer, cancel.reason) == (offer, CancelReason.DECLINED)
    assert w.agent("ann").status is READY


def test_unanswered_ring_times_out_agent_goes_not_ready_missed_and_next_agent_rings():
    w = world()
    eid = w.create()
    w.events("ann")
    w.advance(10.0)
    events = w.events("ann")
    assert isinstance(events[0], RingCancelled) and events[0].reason is CancelReason.TIMEOUT
    assert isinstance(events[1], StatusEvent) and events[1].status is NOT_READY and events[1].reason == "missed"
    assert w.agent("ann").status is NOT_READY
    assert [o.agent for o in w.engagement(eid).offers] == ["ben"]
    w.advance(10.0)
    w.advance(10.0)
    # three missed rings: no one is ready any more, so it waits in the queue
    eng = w.engagement(eid)
    assert eng.state is S.QUEUED
    assert [e.engagement for e in w.queue("q").waiting] == [eid]
    assert [h.event for h in eng.history].count("expired") == 3


def test_missed_status_can_be_configured_to_stay_ready():
    config = make_config([voice_queue()], [agent("ann", "q"), agent("ben", "q")], server={"missed_status": "ready"})
    w = World(config)
    w.sign_in("ann", "ben")
    w.create()
    w.advance(10.0)
    assert w.agent("ann").status is READY


def test_accept_starts_the_conversation_and_agent_is_busy():
    w = world()
    eid = w.create()
    offer = w.offer_of("ann")
    eng = w.do(lambda tx: lifecycle.accept(tx, "ann", offer))
    assert eng.state is S.ACTIVE and eng.agent == "ann"
    assert w.agent("ann").offers == {}
    assert activity(w.agent("ann")) is Activity.BUSY
    last = w.events("ann")[-1]
    assert isinstance(last, EngagementEvent) and last.engagement.state is S.ACTIVE
    # the ring timer is gone: nothing happens when its deadline passes
    w.advance(20.0)
    assert w.engagement(eid).state is S.ACTIVE


def test_full_call_note_end_disposition_wrap_up_then_ready_for_the_next():
    w = world(disposition_required=True)
    eid = w.create()
    second = w.create()
    w.do(lambda tx: lifecycle.accept(tx, "ann", w.offer_of("ann")))
    w.do(lambda tx: lifecycle.note(tx, "ann", eid, "Customer wants a refund"))
    w.do(lambda tx: lifecycle.end(tx, "ann", eid))
    eng = w.engagement(eid)
    assert eng.state is S.WRAP_UP and eng.wrap_up_until == pytest.approx(w.now + 30)
    with refused(ErrorCode.DISPOSITION_REQUIRED):
        w.do(lambda tx: lifecycle.wrap_up_done(tx, eid, "agent:ann", agent_id="ann"))
    with refused(ErrorCode.UNKNOWN_DISPOSITION):
        w.do(lambda tx: lifecycle.dispose(tx, "ann", eid, ["resolved", "made_up"]))
    w.do(lambda tx: lifecycle.dispose(tx, "ann", eid, ["resolved"]))
    # ben has the second call meanwhile; ann is free again once wrap-up is done
    w.do(lambda tx: lifecycle.accept(tx, "ben", w.offer_of("ben")))
    third = w.create()
    assert [o.agent for o in w.engagement(third).offers] == ["cat"]
    w.do(lambda tx: lifecycle.decline(tx, "cat", w.offer_of("cat"), None))
    assert w.engagement(third).state is S.OFFERED  # offered to cat again (no one else free)
    w.do(lambda tx: lifecycle.set_status(tx, "cat", NOT_READY, "coffee", "agent:cat"))
    assert w.engagement(third).state is S.QUEUED
    w.do(lambda tx: lifecycle.wrap_up_done(tx, eid, "agent:ann", agent_id="ann"))
    closed = w.engagement(eid)
    assert closed.state is S.CLOSED
    assert closed.notes == "Customer wants a refund"
    assert closed.dispositions == ("resolved",)
    assert w.agent("ann").holds == {}
    assert w.engagement(second).agent == "ben"
    assert any(o.agent == "ann" for o in w.engagement(third).offers)
    events = [h.event for h in closed.history]
    assert events == ["created", "offered", "accepted", "ended", "disposition", "closed"]
    assert [h.actor for h in closed.history] == ["api", "system", "agent:ann", "agent:ann", "agent:ann", "agent:ann"]


def test_wrap_up_limit_closes_it_and_agent_is_ready_again():
    w = world()
    eid = w.create()
    w.do(lambda tx: lifecycle.accept(tx, "ann", w.offer_of("ann")))
    w.do(lambda tx: lifecycle.end(tx, "ann", eid))
    w.advance(29.0)
    assert w.engagement(eid).state is S.WRAP_UP
    w.advance(1.0)
    eng = w.engagement(eid)
    assert eng.state is S.CLOSED
    assert eng.history[-1].actor == "system" and eng.history[-1].reason == "wrap_up_limit"
    assert w.agent("ann").status is READY and w.agent("ann").holds == {}


def test_next_status_while_busy_applies_when_wrap_up_ends():
    w = world()
    eid = w.create()
    w.do(lambda tx: lifecycle.accept(tx, "ann", w.offer_of("ann")))
    ann = w.do(lambda tx: lifecycle.set_status(tx, "ann", NOT_READY, "lunch", "agent:ann"))
    assert ann.status is READY and ann.next is not None and ann.next.reason == "lunch"
    status = w.events("ann")[-1]
    assert isinstance(status, StatusEvent) and status.next_status is NOT_READY and status.next_reason == "lunch"
    w.do(lambda tx: lifecycle.end(tx, "ann", eid))
    w.do(lambda tx: lifecycle.wrap_up_done(tx, eid, "agent:ann", agent_id="ann"))
    assert (w.agent("ann").status, w.agent("ann").reason, w.agent("ann").next) == (NOT_READY, "lunch", None)
    # and no new call rings her
    w.create()
    assert w.agent("ann").offers == {}


def test_going_not_ready_while_ringing_declines_the_ring():
    w = world()
    eid = w.create()
    w.do(lambda tx: lifecycle.set_status(tx, "ann", NOT_READY, "break", "agent:ann"))
    assert w.agent("ann").offers == {}
    assert [o.agent for o in w.engagement(eid).offers] == ["ben"]


def test_consumer_hangs_up_while_queued_then_while_ringing_then_while_talking():
    w = world()
    for a in ("ann", "ben", "cat"):
        w.do(lambda tx, a=a: lifecycle.set_status(tx, a, NOT_READY, "meeting", f"agent:{a}"))
    queued = w.create()
    w.do(lambda tx: lifecycle.consumer_end(tx, queued))
    assert w.engagement(queued).state is S.ABANDONED
    assert w.queue("q").waiting == ()

    w.do(lambda tx: lifecycle.set_status(tx, "ann", READY, None, "agent:ann"))
    ringing = w.create()
    offer = w.offer_of("ann")
    w.events("ann")
    w.do(lambda tx: lifecycle.consumer_end(tx, ringing))
    (cancel,) = w.events("ann")
    assert isinstance(cancel, RingCancelled) and cancel.reason is CancelReason.ABANDONED and cancel.offer == offer
    assert w.engagement(ringing).state is S.ABANDONED
    assert w.agent("ann").offers == {}

    talking = w.create()
    w.do(lambda tx: lifecycle.accept(tx, "ann", w.offer_of("ann")))
    w.do(lambda tx: lifecycle.consumer_end(tx, talking))
    assert w.engagement(talking).state is S.WRAP_UP
    assert w.engagement(talking).history[-1].actor == "consumer"
    # hanging up again changes nothing
    w.do(lambda tx: lifecycle.consumer_end(tx, talking))
    assert w.engagement(talking).state is S.WRAP_UP


def test_auto_accept_starts_on_the_agent_without_a_ring():
    config = make_config([voice_queue("q", acceptance="auto")], [agent("ann", "q")])
    w = World(config)
    w.sign_in("ann")
    eid = w.create()
    eng = w.engagement(eid)
    assert eng.state is S.ACTIVE and eng.agent == "ann"
    tags = w.tags("ann")
    assert "ring" not in tags and tags[-1] == "engagement"
    assert [h.event for h in eng.history] == ["created", "assigned", "accepted"]


def test_priority_first_then_time_waiting():
    w = world()
    for a in ("ann", "ben", "cat"):
        w.do(lambda tx, a=a: lifecycle.set_status(tx, a, NOT_READY, None, f"agent:{a}"))
    old = w.create()
    w.now += 5
    newer = w.create()
    w.now += 5
    urgent = w.create(priority=5)
    assert [e.engagement for e in w.queue("q").waiting] == [urgent, old, newer]
    w.do(lambda tx: lifecycle.set_status(tx, "ann", READY, None, "agent:ann"))
    assert w.engagement(urgent).state is S.OFFERED
    assert w.engagement(old).state is S.QUEUED


def test_declined_engagement_keeps_its_place_in_line():
    w = world()
    for a in ("ben", "cat"):
        w.do(lambda tx, a=a: lifecycle.set_status(tx, a, NOT_READY, None, f"agent:{a}"))
    first = w.create()
    w.now += 1
    second = w.create()
    w.do(lambda tx: lifecycle.set_status(tx, "ann", NOT_READY, None, "agent:ann"))  # declines `first`
    assert [e.engagement for e in w.queue("q").waiting] == [first, second]


def test_refused_commands_change_nothing():
    w = world()
    eid = w.create()
    offer = w.offer_of("ann")
    before = (w.engagement(eid), w.agent("ann"), w.agent("ben"), w.queue("q"))
    with refused(ErrorCode.NOT_YOURS):
        w.do(lambda tx: lifecycle.accept(tx, "ben", offer))
    with refused(ErrorCode.NOT_FOUND):
        w.do(lambda tx: lifecycle.accept(tx, "ann", "nope"))
    with refused(ErrorCode.NOT_YOURS):
        w.do(lambda tx: lifecycle.end(tx, "ben", eid))
    with refused(ErrorCode.NOT_YOURS):
        w.do(lambda tx: lifecycle.note(tx, "ann", eid, "not yet mine"))
    with refused(ErrorCode.NOT_FOUND):
        w.do(lambda tx: lifecycle.end(tx, "ann", "missing"))
    w.do(lambda tx: lifecycle.accept(tx, "ann", offer))
    with refused(ErrorCode.INVALID_STATE):
        w.do(lambda tx: lifecycle.wrap_up_done(tx, eid, "agent:ann", agent_id="ann"))
    with refused(ErrorCode.NOT_FOUND):
        w.do(lambda tx: lifecycle.accept(tx, "ann", offer))  # already accepted
    assert w.engagement(eid).state is S.ACTIVE
    assert before[2] == w.agent("ben")
    assert w.queue("q") == before[3]


def test_history_explains_why_the_agent_was_chosen():
    w = world()
    eid = w.create()
    offered = next(h for h in w.engagement(eid).history if h.event == "offered")
    assert offered.agent == "ann" and offered.routing is not None
    assert offered.routing.strategy == "longest_idle"
    assert offered.routing.eligible == 3
    assert [c.agent for c in offered.routing.candidates] == ["ann", "ben", "cat"]
    idle = {c.agent: c.idle_s for c in offered.routing.candidates}
    assert idle["ann"] > idle["ben"] > idle["cat"]
    assert "longest idle" in offered.routing.rule


def test_supervisor_force_end_and_force_wrap_up_done_are_recorded():
    w = world(disposition_required=True)
    eid = w.create()
    w.do(lambda tx: lifecycle.accept(tx, "ann", w.offer_of("ann")))
    w.do(lambda tx: lifecycle.force_end(tx, eid, "supervisor:sue"))
    assert w.engagement(eid).state is S.WRAP_UP
    w.do(lambda tx: lifecycle.wrap_up_done(tx, eid, "supervisor:sue"))
    eng = w.engagement(eid)
    assert eng.state is S.CLOSED
    assert [h.actor for h in eng.history[-2:]] == ["supervisor:sue", "supervisor:sue"]
    assert w.agent("ann").holds == {}
