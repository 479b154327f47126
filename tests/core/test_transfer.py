"""Transfer and release in the pure core: for calls, chats and emails, to queues and to agents."""

from __future__ import annotations

from protocol.codes import ErrorCode
from protocol.frames import Ring, RingCancelled
from protocol.model import AgentStatus, EngagementState
from server.core import lifecycle
from tests.support import World, agent, make_config, refused, voice_queue

S = EngagementState
NOT_READY = AgentStatus.NOT_READY


def center() -> World:
    config = make_config(
        [
            voice_queue("sales"),
            voice_queue("billing"),
            {"id": "chat", "channel": "chat", "acceptance": "auto"},
            {"id": "mail", "channel": "email"},
        ],
        [
            agent("ann", "sales", "chat", "mail"),
            agent("ben", "billing", "chat", "mail"),
            agent("cat", "sales", "billing", "mail"),
        ],
    )
    w = World(config)
    w.sign_in("ann", "ben", "cat")
    return w


def talking(w: World, who: str, queue: str = "sales") -> str:
    eid = w.create(queue)
    offer = w.offer_of(who)
    w.do(lambda tx: lifecycle.accept(tx, who, offer))
    return eid


def test_a_call_transferred_to_a_queue_waits_there_with_its_notes_and_the_former_agent_is_free():
    w = center()
    eid = talking(w, "ann")
    w.do(lambda tx: lifecycle.note(tx, "ann", eid, "wants a refund"))
    for a in ("ben", "cat"):
        w.do(lambda tx, a=a: lifecycle.set_status(tx, a, NOT_READY, "meeting", f"agent:{a}"))
    w.do(lambda tx: lifecycle.transfer(tx, eid, "agent:ann", by="ann", queue="billing"))
    eng = w.engagement(eid)
    assert (eng.queue, eng.state, eng.agent, eng.notes) == ("billing", S.QUEUED, None, "wants a refund")
    assert eng.history[-1].event == "transferred" and eng.history[-1].queue == "billing"
    assert eng.history[-1].actor == "agent:ann" and eng.history[-1].former == "ann"
    assert w.agent("ann").holds == {}
    with refused(ErrorCode.NOT_YOURS):
        w.do(lambda tx: lifecycle.note(tx, "ann", eid, "still mine?"))
    w.do(lambda tx: lifecycle.set_status(tx, "ben", AgentStatus.READY, None, "agent:ben"))
    assert [o.agent for o in w.engagement(eid).offers] == ["ben"]


def test_a_call_transferred_to_an_agent_rings_them_whatever_their_status():
    w = center()
    eid = talking(w, "ann")
    w.do(lambda tx: lifecycle.set_status(tx, "cat", NOT_READY, "training", "agent:cat"))
    w.events("cat")
    w.do(lambda tx: lifecycle.transfer(tx, eid, "agent:ann", by="ann", agent="cat"))
    ring = w.events("cat")[-1]
    assert isinstance(ring, Ring) and ring.engagement.id == eid
    assert w.engagement(eid).history[-1].reason == "transfer by agent:ann"
    w.do(lambda tx: lifecycle.accept(tx, "cat", ring.offer))
    assert (w.engagement(eid).agent, w.engagement(eid).state) == ("cat", S.ACTIVE)
    assert w.agent("ann").holds == {}


def test_a_declined_transfer_goes_back_to_the_engagements_queue():
    w = center()
    eid = talking(w, "ann")
    w.do(lambda tx: lifecycle.transfer(tx, eid, "agent:ann", by="ann", agent="cat"))
    w.do(lambda tx: lifecycle.decline(tx, "cat", w.offer_of("cat"), "busy"))
    # back in sales, where ann (free again) is the one left to ring
    assert [o.agent for o in w.engagement(eid).offers] == ["ann"]


def test_an_email_transferred_to_an_agent_lands_in_their_open_list():
    w = center()
    eid = w.create("mail", subject="Invoice", body="Where is it?")
    holder = w.engagement(eid).agent
    assert holder == "ann"
    w.do(lambda tx: lifecycle.transfer(tx, eid, "agent:ann", by="ann", agent="ben"))
    eng = w.engagement(eid)
    assert (eng.state, eng.agent) == (S.ASSIGNED, "ben")
    assert eng.messages[0].text == "Where is it?"
    assert eid in w.agent("ben").holds and eid not in w.agent("ann").holds


def test_a_chat_transferred_to_a_queue_is_taken_at_once_by_its_auto_accept():
    w = center()
    eid = w.create("chat")
    assert w.engagement(eid).agent == "ann"
    w.do(lambda tx: lifecycle.transfer(tx, eid, "supervisor:sue", by=None, agent="ben"))
    eng = w.engagement(eid)
    assert eng.state is S.OFFERED  # a transfer to an agent rings, even from an auto queue
    assert eng.history[-2].actor == "supervisor:sue"


def test_transfers_that_cannot_work_are_refused_and_change_nothing():
    w = center()
    eid = talking(w, "ann")
    before = w.engagement(eid)
    with refused(ErrorCode.INVALID_FIELD):
        w.do(lambda tx: lifecycle.transfer(tx, eid, "agent:ann", by="ann"))
    with refused(ErrorCode.INVALID_FIELD):
        w.do(lambda tx: lifecycle.transfer(tx, eid, "agent:ann", by="ann", queue="billing", agent="ben"))
    with refused(ErrorCode.INVALID_FIELD):
        w.do(lambda tx: lifecycle.transfer(tx, eid, "agent:ann", by="ann", queue="chat"))  # voice to chat
    with refused(ErrorCode.UNKNOWN_QUEUE):
        w.do(lambda tx: lifecycle.transfer(tx, eid, "agent:ann", by="ann", queue="nowhere"))
    with refused(ErrorCode.UNKNOWN_AGENT):
        w.do(lambda tx: lifecycle.transfer(tx, eid, "agent:ann", by="ann", agent="zed"))
    with refused(ErrorCode.NOT_YOURS):
        w.do(lambda tx: lifecycle.transfer(tx, eid, "agent:ben", by="ben", queue="billing"))
    other = talking(w, "ben", "billing")
    with refused(ErrorCode.NO_CAPACITY):
        w.do(lambda tx: lifecycle.transfer(tx, eid, "agent:ann", by="ann", agent="ben"))  # ben is on a call
    w.do(lambda tx: lifecycle.disconnect(tx, "cat", "n1"))
    with refused(ErrorCode.NO_CAPACITY):
        w.do(lambda tx: lifecycle.transfer(tx, eid, "agent:ann", by="ann", agent="cat"))  # cat is gone
    assert w.engagement(eid) == before
    assert w.engagement(other).agent == "ben"


def test_release_puts_it_back_and_another_agent_gets_it_first():
    w = center()
    eid = talking(w, "ann")
    w.do(lambda tx: lifecycle.release(tx, "ann", eid))
    eng = w.engagement(eid)
    assert eng.history[-2].event == "released" and eng.history[-2].actor == "agent:ann"
    assert [o.agent for o in eng.offers] == ["cat"]
    assert w.agent("ann").holds == {}


def test_a_released_email_goes_to_another_agent():
    w = center()
    eid = w.create("mail", subject="Hello", body="Hi")
    w.do(lambda tx: lifecycle.open_engagement(tx, "ann", eid))
    w.do(lambda tx: lifecycle.release(tx, "ann", eid))
    eng = w.engagement(eid)
    assert eng.state is S.ASSIGNED and eng.agent == "ben"
    assert [(h.event, h.agent) for h in eng.history][-2:] == [("released", "ann"), ("assigned", "ben")]


def test_a_supervisor_moves_a_ringing_call_its_rings_are_rescinded_as_taken():
    config = make_config(
        [voice_queue("sales", strategy="ring_all"), voice_queue("billing")],
        [agent("ann", "sales"), agent("ben", "sales"), agent("cat", "billing")],
    )
    w = World(config)
    w.sign_in("ann", "ben", "cat")
    eid = w.create("sales")
    rung = {a: w.offer_of(a) for a in ("ann", "ben")}
    for a in rung:
        w.events(a)
    w.do(lambda tx: lifecycle.transfer(tx, eid, "supervisor:sue", by=None, queue="billing"))
    for a, offer in rung.items():
        (cancelled,) = w.events(a)
        assert isinstance(cancelled, RingCancelled) and (cancelled.offer, cancelled.reason) == (offer, "taken")
        assert w.agent(a).offers == {} and w.agent(a).status is AgentStatus.READY
    eng = w.engagement(eid)
    assert (eng.queue, eng.state, [o.agent for o in eng.offers]) == ("billing", S.OFFERED, ["cat"])
    by_sue = [(h.event, h.agent, h.reason) for h in eng.history if h.actor == "supervisor:sue"]
    assert by_sue == [
        ("rescinded", "ann", "transferred by supervisor:sue"),
        ("rescinded", "ben", "transferred by supervisor:sue"),
        ("transferred", None, None),
    ]
    assert "ann" not in eng.tried and "ben" not in eng.tried  # nobody declined it


def test_a_ringing_call_can_be_moved_to_the_agent_it_rings_whose_room_it_holds():
    w = center()
    eid = w.create("sales")
    first = w.offer_of("ann")
    w.do(lambda tx: lifecycle.transfer(tx, eid, "supervisor:sue", by=None, agent="ann"))
    again = w.offer_of("ann")
    assert again != first and [o.agent for o in w.engagement(eid).offers] == ["ann"]
    assert w.engagement(eid).history[-1].reason == "transfer by supervisor:sue"
